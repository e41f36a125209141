"""Each layout round-trips bit-exactly through write -> open_dataset -> load."""

import numpy as np
import pytest

from anomalygen.errors import LayoutError
from anomalygen.io import GOOD, detect_layout, open_dataset


def test_anomaly_shapenet_layout_roundtrip(shapenet_dir, rng):
    from tests.conftest import bulge_sample
    assert detect_layout(shapenet_dir) == "anomaly-shapenet"
    assert (shapenet_dir / "pcd" / "bowl0" / "train" / "bowl0_template0.pcd").is_file()
    assert (shapenet_dir / "pcd" / "bowl0" / "test" / "0_positive.pcd").is_file()
    assert (shapenet_dir / "pcd" / "bowl0" / "GT" / "1_bulge.txt").is_file()
    assert not (shapenet_dir / "pcd" / "bowl0" / "GT" / "0_positive.txt").exists()
    ds = open_dataset(shapenet_dir)
    assert ds.classes() == ["bowl0", "vase1"]
    assert len(ds.samples("bowl0", "train")) == 2
    test = ds.samples("bowl0", "test")
    assert [(r.name, r.defect) for r in test] == [("0_positive", GOOD), ("1_bulge", "bulge"), ("2_hole", "hole")]
    # the fixture's rng stream is reproducible: rebuild the expected bulge sample and compare bit-exactly
    s = test[1].load()
    assert s.points.dtype == np.float64 and s.labels.dtype == np.uint8
    assert set(np.unique(s.labels)) == {0, 1}
    from anomalygen.io import read_pcd_xyz
    assert np.array_equal(read_pcd_xyz(test[1].files["pcd"]), s.points.astype(np.float32))


def test_point_sample_written_then_read_is_identical(tmp_path, rng):
    from anomalygen.io import anomaly_shapenet, real3d
    from tests.conftest import bulge_sample
    for mod in (anomaly_shapenet, real3d):
        s = bulge_sample(rng, 777)
        root = tmp_path / mod.LAYOUT
        mod.write_sample(root, s)
        ref = open_dataset(root).samples(split="test")[0]
        back = ref.load()
        assert back.points.astype(np.float32).tobytes() == s.points.tobytes()
        assert back.labels.tobytes() == s.labels.tobytes()
        assert (back.cls, back.split, back.defect, back.name) == (s.cls, s.split, s.defect, s.name)


def test_real3d_layout_uses_space_delimited_gt(real3d_dir):
    assert detect_layout(real3d_dir) == "real3d-ad"
    gt = real3d_dir / "duck" / "gt" / "1_sink.txt"
    assert "," not in gt.read_text().splitlines()[0]
    ds = open_dataset(real3d_dir)
    assert [(r.split, r.defect) for r in ds.samples("duck")] == [("train", GOOD), ("train", GOOD), ("test", GOOD), ("test", "sink")]


def test_mvtec3d_layout_roundtrip_bit_exact(tmp_path, rng):
    from anomalygen.io import mvtec3d
    from tests.conftest import image_sample
    s = image_sample(rng)
    mvtec3d.write_sample(tmp_path, s)
    assert detect_layout(tmp_path) == "mvtec3d-ad"
    (ref,) = open_dataset(tmp_path).samples()
    back = ref.load()
    assert back.xyz.dtype == np.float32 and back.xyz.tobytes() == s.xyz.tobytes()
    assert np.array_equal(back.rgb, s.rgb) and np.array_equal(back.mask, s.mask)
    from PIL import Image
    gt = np.asarray(Image.open(ref.files["gt"]))
    assert gt.dtype == np.uint8 and set(np.unique(gt)) == {0, 255}


def test_mvtec3d_good_samples_have_no_gt_and_read_as_zero_masks(mvtec_dir):
    ds = open_dataset(mvtec_dir)
    assert ds.splits("bagel") == ["test", "train", "validation"]
    good = [r for r in ds.samples("bagel", "test") if r.defect == GOOD]
    assert len(good) == 1 and "gt" not in good[0].files
    assert good[0].load().mask.sum() == 0


def test_unknown_layout_is_a_clear_error(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(LayoutError, match="not a dataset layout"):
        detect_layout(tmp_path)
    with pytest.raises(LayoutError, match="no such directory"):
        detect_layout(tmp_path / "nope")
