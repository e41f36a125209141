"""PCD (Point Cloud Library) files, ASCII and binary, read and written exactly.

Why our own reader instead of open3d's: open3d converts every field to float64
xyz (+ rgb/normals), drops other fields (labels, intensity), cannot write float32
ASCII that round-trips bit-exactly, and costs ~1 s to import. This module keeps
the stored dtype of every field, so write -> read is bit-exact. The rare
`binary_compressed` variant (LZF) is delegated to open3d.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anomalygen.errors import FormatError
from anomalygen.io._text import Table, table_problem
from anomalygen.io.atomic import write_bytes_atomic

_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4",
          ("I", 8): "i8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8"}
_HEADER_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")


@dataclass
class PcdData:
    """Fields of a PCD file by name, each an (N,) or (N, COUNT) array of its stored dtype."""

    fields: dict[str, np.ndarray]
    width: int
    height: int
    data: str  # ascii | binary | binary_compressed
    viewpoint: tuple[float, ...] = (0, 0, 0, 1, 0, 0, 0)
    extra_header: dict[str, str] = field(default_factory=dict)

    @property
    def xyz(self) -> np.ndarray:
        try:
            return np.stack([self.fields["x"], self.fields["y"], self.fields["z"]], axis=1)
        except KeyError as exc:
            raise FormatError(f"PCD has no {exc.args[0]!r} field (fields: {list(self.fields)})") from None


def _parse_header(raw: bytes, path: Path) -> tuple[dict[str, list[str]], int]:
    header: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0:
            raise FormatError(f"{path}: PCD header ends before DATA")
        line = raw[pos:end].decode("ascii", errors="replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *vals = line.split()
        header[key.upper()] = vals
        if key.upper() == "DATA":
            return header, pos


def read_pcd(path: str | os.PathLike) -> PcdData:
    """Read a PCD file (ascii, binary, or binary_compressed via open3d)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such PCD file")
    raw = path.read_bytes()
    if not raw.lstrip().startswith((b"#", b"VERSION", b"FIELDS")):
        raise FormatError(f"{path}: not a PCD file (bad header)")
    header, offset = _parse_header(raw, path)
    try:
        names = header["FIELDS"]
        sizes = [int(s) for s in header.get("SIZE", ["4"] * len(names))]
        types = header.get("TYPE", ["F"] * len(names))
        counts = [int(c) for c in header.get("COUNT", ["1"] * len(names))]
        width = int(header["WIDTH"][0])
        height = int(header.get("HEIGHT", ["1"])[0])
        npts = int(header.get("POINTS", [str(width * height)])[0])
        data = header["DATA"][0].lower()
        viewpoint = tuple(float(v) for v in header.get("VIEWPOINT", ["0", "0", "0", "1", "0", "0", "0"]))
    except (KeyError, ValueError, IndexError) as exc:
        missing = f"no {exc.args[0]} line" if isinstance(exc, KeyError) else "a value that is not a number"
        raise FormatError(f"{path}: malformed PCD header ({missing})") from None
    if not (len(names) == len(sizes) == len(types) == len(counts)):
        raise FormatError(f"{path}: FIELDS/SIZE/TYPE/COUNT lengths differ")
    try:
        dtype = np.dtype([(n, "<" + _TYPES[(t.upper(), s)], (c,) if c > 1 else ())
                          for n, s, t, c in zip(names, sizes, types, counts)])
    except KeyError:
        raise FormatError(f"{path}: unsupported PCD TYPE/SIZE {list(zip(types, sizes))}") from None

    if data == "ascii":
        text = raw[offset:].decode("ascii", errors="replace")
        try:
            table = np.loadtxt(io.StringIO(text), dtype=np.float64, ndmin=2) if text.strip() else np.zeros((0, sum(counts)))
        except ValueError as exc:
            raise FormatError(f"{path}: corrupt ASCII PCD body, "
                              f"{table_problem(exc, f'{sum(counts)} numbers ({chr(32).join(names)})')}") from None
        if table.shape != (npts, sum(counts)):
            raise FormatError(f"{path}: header says {npts} points x {sum(counts)} values, body has {table.shape[0]} x {table.shape[1] if table.ndim == 2 else 0}")
        fields, col = {}, 0
        for n, c in zip(names, counts):
            block = table[:, col:col + c]
            fields[n] = (block[:, 0] if c == 1 else block).astype(dtype[n].base)
            col += c
    elif data == "binary":
        body = raw[offset:]
        need = npts * dtype.itemsize
        if len(body) < need:
            raise FormatError(f"{path}: binary PCD truncated ({len(body)} of {need} bytes)")
        rec = np.frombuffer(body[:need], dtype=dtype, count=npts)
        fields = {n: np.ascontiguousarray(rec[n]) for n in names}
    elif data == "binary_compressed":
        import open3d as o3d  # LZF decoding: delegate, xyz only

        pc = o3d.io.read_point_cloud(str(path))
        xyz = np.asarray(pc.points)
        if len(xyz) != npts:
            raise FormatError(f"{path}: open3d read {len(xyz)} of {npts} points")
        fields = {"x": xyz[:, 0].copy(), "y": xyz[:, 1].copy(), "z": xyz[:, 2].copy()}
    else:
        raise FormatError(f"{path}: unknown PCD DATA kind {data!r}")
    extra = {k: " ".join(v) for k, v in header.items() if k not in _HEADER_KEYS}
    return PcdData(fields=fields, width=width, height=height, data=data, viewpoint=viewpoint, extra_header=extra)


def read_pcd_xyz(path: str | os.PathLike) -> np.ndarray:
    """(N, 3) coordinates of a PCD file, in their stored dtype."""
    return read_pcd(path).xyz


def pcd_bytes(points: np.ndarray, *, binary: bool = False, extra_fields: dict[str, np.ndarray] | None = None,
              body: str | bytes | None = None) -> bytes:
    """Serialize (N,3) points (+ optional (N,) extra fields) as PCD v0.7 bytes. `body`: the ASCII rows
    already formatted (`ascii_columns(...).bytes()` of the same arrays), when the caller needs them for
    a GT file too."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {pts.shape}")
    if pts.dtype not in (np.float32, np.float64):
        pts = pts.astype(np.float32)
    cols: dict[str, np.ndarray] = {"x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2]}
    for name, arr in (extra_fields or {}).items():
        arr = np.asarray(arr)
        if arr.shape != (len(pts),):
            raise ValueError(f"extra field {name!r} must be ({len(pts)},), got {arr.shape}")
        cols[name] = arr
    rev = {v: k for k, v in _TYPES.items()}
    tsz = [rev[c.dtype.str.lstrip("<>|=")] for c in cols.values()]
    n = len(pts)
    head = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        f"FIELDS {' '.join(cols)}\nSIZE {' '.join(str(s) for _, s in tsz)}\n"
        f"TYPE {' '.join(t for t, _ in tsz)}\nCOUNT {' '.join('1' for _ in cols)}\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {'binary' if binary else 'ascii'}\n"
    )
    if binary:
        rec = np.empty(n, dtype=np.dtype([(k, "<" + v.dtype.str.lstrip("<>|=")) for k, v in cols.items()]))
        for k, v in cols.items():
            rec[k] = v
        return head.encode("ascii") + rec.tobytes()
    if body is None:
        body = ascii_columns(pts, extra_fields).bytes()
    return head.encode("ascii") + (body.encode("ascii") if isinstance(body, str) else body)


def ascii_columns(points: np.ndarray, extra_fields: dict[str, np.ndarray] | None = None) -> Table:
    """The columns of an ASCII PCD body (x y z [extra ...]) formatted, every value exact: `.text()` is
    the body; a GT file of the same points reuses them (anomalygen.io.gt_txt)."""
    pts = np.asarray(points)
    if pts.dtype not in (np.float32, np.float64):
        pts = pts.astype(np.float32)
    return Table([pts[:, 0], pts[:, 1], pts[:, 2]] + [np.asarray(a) for a in (extra_fields or {}).values()])


def write_pcd(path: str | os.PathLike, points: np.ndarray, *, binary: bool = False,
              extra_fields: dict[str, np.ndarray] | None = None, body: str | bytes | None = None) -> Path:
    """Write points as a PCD file atomically. ASCII by default (what Anomaly-ShapeNet ships)."""
    return write_bytes_atomic(path, pcd_bytes(points, binary=binary, extra_fields=extra_fields, body=body))
