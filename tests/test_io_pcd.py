"""PCD and GT text files round-trip bit-exactly and stay readable by open3d."""

import numpy as np
import pytest

from anomalygen.errors import FormatError
from anomalygen.io import read_gt_txt, read_pcd, read_pcd_xyz, write_gt_txt, write_pcd
from anomalygen.io.pcd import pcd_bytes


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pcd_roundtrip_is_bit_exact(tmp_path, rng, binary, dtype):
    pts = (rng.normal(size=(1000, 3)) * rng.choice([1e-4, 1.0, 1e3], size=(1000, 1))).astype(dtype)
    p = write_pcd(tmp_path / "a.pcd", pts, binary=binary)
    back = read_pcd_xyz(p)
    assert back.dtype == dtype
    assert back.tobytes() == pts.tobytes()


def test_pcd_extra_fields_keep_their_dtype(tmp_path, rng):
    pts = rng.random((50, 3)).astype(np.float32)
    label = (rng.random(50) > 0.5).astype(np.uint8)
    for binary in (False, True):
        d = read_pcd(write_pcd(tmp_path / f"l{binary}.pcd", pts, binary=binary, extra_fields={"label": label}))
        assert d.fields["label"].dtype == np.uint8
        assert np.array_equal(d.fields["label"], label)


@pytest.mark.parametrize("binary", [False, True])
def test_open3d_reads_what_we_write_and_we_read_what_open3d_writes(tmp_path, rng, binary):
    o3d = pytest.importorskip("open3d")
    pts = rng.random((200, 3)).astype(np.float32)
    pc = o3d.io.read_point_cloud(str(write_pcd(tmp_path / "ours.pcd", pts, binary=binary)))
    assert np.allclose(np.asarray(pc.points), pts, atol=1e-6)
    theirs = tmp_path / "theirs.pcd"
    o3d.io.write_point_cloud(str(theirs), pc, write_ascii=not binary)
    assert np.allclose(read_pcd_xyz(theirs), pts, atol=1e-6)
    o3d.io.write_point_cloud(str(tmp_path / "c.pcd"), pc, write_ascii=False, compressed=True)
    assert np.allclose(read_pcd_xyz(tmp_path / "c.pcd"), pts, atol=1e-6)


def test_corrupt_pcds_raise_format_errors(tmp_path, rng):
    good = pcd_bytes(rng.random((10, 3)).astype(np.float32), binary=True)
    (tmp_path / "trunc.pcd").write_bytes(good[:-7])
    (tmp_path / "junk.pcd").write_bytes(b"\x89PNG not a point cloud")
    (tmp_path / "rows.pcd").write_bytes(pcd_bytes(rng.random((10, 3)).astype(np.float32)).rsplit(b"\n", 3)[0])
    for name, needle in (("trunc.pcd", "truncated"), ("junk.pcd", "not a PCD"), ("rows.pcd", "body has"),
                         ("missing.pcd", "no such")):
        with pytest.raises(FormatError, match=needle):
            read_pcd(tmp_path / name)


@pytest.mark.parametrize("delim", [",", " "])
def test_gt_txt_roundtrip(tmp_path, rng, delim):
    pts = rng.normal(size=(300, 3)).astype(np.float32)
    lab = (rng.random(300) > 0.9).astype(np.uint8)
    p = write_gt_txt(tmp_path / "g.txt", pts, lab, delim)
    first = p.read_text().splitlines()[0]
    assert first.count(delim) == 3 and first.endswith(("0", "1"))
    back_pts, back_lab = read_gt_txt(p)  # delimiter sniffed
    assert np.array_equal(back_pts.astype(np.float32), pts)
    assert np.array_equal(back_lab, lab)


def test_gt_txt_rejects_wrong_column_count(tmp_path):
    (tmp_path / "g.txt").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(FormatError, match="4 columns"):
        read_gt_txt(tmp_path / "g.txt")


def test_atomic_writer_leaves_no_partial_file(tmp_path, rng):
    with pytest.raises(ValueError):
        write_pcd(tmp_path / "bad.pcd", rng.random((5, 2)))
    with pytest.raises(RuntimeError):
        from anomalygen.io import atomic_path
        with atomic_path(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_gt_text_from_the_pcd_body_is_the_directly_formatted_gt_text():
    """The build formats an anomalous sample's floats once for its .pcd and GT file: same bytes as apart."""
    from anomalygen.io.gt_txt import gt_txt_bytes
    from anomalygen.io.pcd import ascii_columns, pcd_bytes

    rng = np.random.default_rng(4)
    for pts in (rng.normal(size=(400, 3)).astype(np.float32), (rng.normal(size=(50, 3)) * 1e-6).astype(np.float32),
                rng.normal(size=(30, 3)), np.zeros((0, 3), np.float32)):
        labels = (rng.random(len(pts)) < 0.3).astype(np.uint8)
        xyz = ascii_columns(pts)
        assert pcd_bytes(pts, body=xyz.text()) == pcd_bytes(pts)
        for delimiter in (",", " "):
            assert gt_txt_bytes(pts, labels, delimiter, xyz) == gt_txt_bytes(pts, labels, delimiter)


def test_text_tables_are_what_printf_writes():
    """ASCII .pcd/GT/OBJ numbers are formatted with numpy arithmetic: every value must come out as
    '%.9g' (float32) or '%d' (integers) writes it, so files keep their bytes and read back exactly."""
    from anomalygen.io._text import format_table

    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2 ** 32, 100_000, dtype=np.uint64).astype(np.uint32).view(np.float32)  # every exponent
    near = np.float32(10.0) ** np.arange(-6, 11).astype(np.float32)  # where the digit count changes
    ties = np.array([0.5, 2.5, 1e-4, 9.99999e-5, 999999999.0, 99999999.5, 0.00999999, 123456789, 1e9], np.float32)
    f = np.concatenate([bits, (rng.random(20_000) - 0.5).astype(np.float32), near, ties,
                        np.array([0.0, -0.0, np.nan, np.inf, -np.inf], np.float32)])
    with np.errstate(invalid="ignore"):  # nextafter of nan is nan
        f = np.concatenate([f, np.nextafter(f, np.float32(np.inf)), np.nextafter(f, np.float32(-np.inf)), -f])
    i = np.concatenate([rng.integers(-10 ** 12, 10 ** 12, 5_000), [0, -1, 9, 10, -10, 2 ** 63 - 1, -2 ** 63]])
    for cols, sep in (([f], " "), ([i], " "), ([f[:5_000], f[5_000:10_000], i[:5_000] % 2], ","),
                      ([i.astype(np.uint8), (i % 3 == 0)], " "), ([f[:100].astype(np.float64)], " ")):
        fmts = ["%.9g" if c.dtype == np.float32 else "%.17g" if c.dtype.kind == "f" else "%d" for c in cols]
        want = "".join(sep.join(fm % v for fm, v in zip(fmts, row)) + "\n" for row in zip(*[c.tolist() for c in cols]))
        with np.errstate(invalid="ignore"):
            assert format_table(cols, sep) == want


def test_durable_batch_shows_whole_groups_only(tmp_path, monkeypatch):
    """A batch's files appear at its end (after one sync); a rename failing mid-group removes that
    group's files and keeps the groups before it; an error in the block leaves nothing, no temp file."""
    import errno

    import anomalygen.io.atomic as atomic
    from anomalygen.io.atomic import OutputError, durable_batch, write_bytes_atomic

    (tmp_path / ".anomalygen").mkdir()
    with durable_batch() as batch:
        for g in range(3):
            batch.begin()
            write_bytes_atomic(tmp_path / f"a{g}.pcd", b"a")
            write_bytes_atomic(tmp_path / f"a{g}.txt", b"b")
        assert not list(tmp_path.glob("a*"))  # nothing visible before the commit
    assert sorted(p.name for p in tmp_path.glob("a*")) == ["a0.pcd", "a0.txt", "a1.pcd", "a1.txt", "a2.pcd", "a2.txt"]

    real = atomic._commit

    def fail_b1_txt(tmp, path):
        if path.name == "b1.txt":
            raise OSError(errno.ENOSPC, "full")
        real(tmp, path)

    monkeypatch.setattr(atomic, "_commit", fail_b1_txt)
    with pytest.raises(OutputError, match="b1.txt: no space"):
        with durable_batch() as batch:
            for g in range(3):
                batch.begin()
                write_bytes_atomic(tmp_path / f"b{g}.pcd", b"a")
                write_bytes_atomic(tmp_path / f"b{g}.txt", b"b")
    assert sorted(p.name for p in tmp_path.glob("b*")) == ["b0.pcd", "b0.txt"]
    with pytest.raises(KeyError):
        with durable_batch() as batch:
            write_bytes_atomic(tmp_path / "c.pcd", b"a")
            raise KeyError("sample failed")
    assert not list(tmp_path.glob("c*")) and not [p for p in (tmp_path / ".anomalygen").rglob("*") if p.is_file()]
