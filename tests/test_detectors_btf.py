"""BTF / PatchCore-FPFH on easy synthetic sets the test writes in the public layouts."""

import numpy as np
import pytest
import torch

from anomalygen.detectors import available_detectors, get_detector
from anomalygen.detectors.base import Detector
from anomalygen.detectors.toydata import write_toy_image_dataset, write_toy_point_dataset
from anomalygen.errors import AnomalygenError, RecipeError
from anomalygen.io import open_dataset
from anomalygen.metrics import aupro, image_auroc, point_auroc

FAST_POINTS = {"points": {"n_points": 512}}
FAST_IMAGES = {"images": {"image_size": 48, "feature_grid": 24}}


@pytest.fixture(scope="module")
def point_data(tmp_path_factory):
    # Spheres with large bulges/dents: 4 train normals, 4 good + 4 defective test clouds.
    return open_dataset(write_toy_point_dataset(tmp_path_factory.mktemp("pc"), shapes=("sphere",), n_points=2000))


@pytest.fixture(scope="module")
def image_data(tmp_path_factory):
    return open_dataset(write_toy_image_dataset(tmp_path_factory.mktemp("im"), n_good=3, n_anomalous=3))


def _split(ds, cls):
    return [r.load() for r in ds.samples(cls, "train")], [r.load() for r in ds.samples(cls, "test")]


def test_registry_names_btf_and_rejects_unknown():
    assert "btf" in available_detectors()
    with pytest.raises(AnomalygenError, match="unknown detector 'nope'; available: .*btf"):
        get_detector("nope")


def test_btf_points_detects_large_bulges_and_localizes_them(point_data, tmp_path):
    train, test = _split(point_data, "sphere0")
    det = get_detector("btf")(FAST_POINTS, device="cpu").fit(train)
    res = [det.score(s) for s in test]
    assert all(m.shape == s.labels.shape for (_, m), s in zip(res, test))
    i_auroc = image_auroc([s.anomalous for s in test], [r[0] for r in res])
    p_auroc = point_auroc([s.labels for s in test], [r[1] for r in res])
    assert i_auroc >= 0.9, i_auroc  # bound: well above chance on large bulges (measured 1.0)
    assert p_auroc >= 0.8, p_auroc  # measured 0.96
    # batched scoring (one bank search for several samples) equals scoring one by one
    batched = det.score_batch(test[:3])
    assert [b[0] for b in batched] == pytest.approx([r[0] for r in res[:3]])
    assert all(np.allclose(b[1], r[1]) for b, r in zip(batched, res[:3]))
    # fitting again gives the same bank (seeded coreset, FPS from point 0): runs reproduce
    again = get_detector("btf")(FAST_POINTS, device="cpu").fit(train)
    assert again.score(test[0])[0] == res[0][0]
    # save/load gives the same detector: identical scores
    back = Detector.load(det.save(tmp_path / "m"), device="cpu")
    assert back.config == det.config and back.settings == det.settings
    s2, m2 = back.score(test[-1])
    assert s2 == pytest.approx(res[-1][0]) and np.allclose(m2, res[-1][1])


def test_btf_images_detects_and_localizes_bumps(image_data):
    train, test = _split(image_data, "dome")
    det = get_detector("btf")(FAST_IMAGES, device="cpu").fit(train)
    res = [det.score(s) for s in test]
    assert all(m.shape == s.mask.shape for (_, m), s in zip(res, test))
    assert image_auroc([s.anomalous for s in test], [r[0] for r in res]) >= 0.9  # measured 1.0
    assert aupro([s.mask for s in test], [r[1] for r in res]) >= 0.8  # measured 0.997
    batched = det.score_batch(test)
    assert [b[0] for b in batched] == pytest.approx([r[0] for r in res])
    assert all(np.allclose(b[1], r[1], atol=1e-5) for b, r in zip(batched, res))


def test_btf_rejects_bad_settings_and_misuse(point_data, image_data):
    with pytest.raises(RecipeError, match="btf.points.coreset_fraction"):
        get_detector("btf")({"points": {"coreset_fraction": 0}}, device="cpu")
    with pytest.raises(RecipeError, match="unknown setting btf.points.npoints"):
        get_detector("btf")({"points": {"npoints": 10}}, device="cpu")
    det = get_detector("btf")(FAST_POINTS, device="cpu")
    with pytest.raises(AnomalygenError, match="before fit"):
        det.score(point_data.samples("sphere0", "test")[0].load())
    with pytest.raises(AnomalygenError, match="no training samples"):
        det.fit([])
    det.fit([r.load() for r in point_data.samples("sphere0", "train")[:2]])
    with pytest.raises(AnomalygenError, match="fitted on points"):
        det.score(image_data.samples("dome", "test")[0].load())


def test_btf_images_removes_the_background_plane_like_btf():
    from anomalygen.detectors.toydata import toy_depth_scan

    xyz, _, _ = toy_depth_scan(48, np.random.default_rng(3))
    det = get_detector("btf")(FAST_IMAGES, device="cpu")
    kept = np.any(det._prepare_xyz(xyz) != 0, axis=-1)
    lin = np.linspace(-0.3, 0.3, 48)
    r = np.hypot(*np.meshgrid(lin, lin))
    assert kept[r < 0.12].all()  # the dome (radius 0.2, raised above the plane) stays
    assert not kept[r > 0.2].any()  # the plane around it goes
    off = get_detector("btf")({**FAST_IMAGES, "images": {**FAST_IMAGES["images"], "remove_background": False}}, "cpu")
    np.testing.assert_array_equal(np.any(off._prepare_xyz(xyz) != 0, axis=-1), np.any(xyz != 0, axis=-1))


def test_btf_typed_config_keeps_the_recipe_keys_defaults_and_messages():
    import yaml

    from anomalygen.detectors.btf.detector import BTFConfig
    from anomalygen.detectors.settings import as_section
    from anomalygen.recipes import builtin_recipes

    shipped = yaml.safe_load(builtin_recipes()["detectors"].read_text())["btf"]
    cfg = BTFConfig.from_dict(shipped)
    assert as_section(cfg) == shipped  # every key of the recipe is a field, with the recipe's value
    assert as_section(BTFConfig()) == shipped  # and the defaults are the shipped values
    assert cfg.images.background.dbscan_min_points == 10 and cfg.points.n_points == 2048
    assert BTFConfig.from_dict(as_section(cfg)) == cfg  # what detector.json saves reloads to the same settings
    for given, message in [
        ({"points": {"npoints": 10}}, "unknown setting btf.points.npoints; did you mean btf.points.n_points? (known: "
                                      "coreset_fraction, fpfh, n_points, spread_k)"),
        ({"images": {"normal_radius": 0.02}}, "unknown setting btf.images.normal_radius; did you mean "
                                              "btf.images.coreset_fraction? "
                                              "(known: background, blur_sigma, coreset_fraction, feature_grid, fpfh, "
                                              "image_size, remove_background)"),
        ({"images": {"fpfh": {"normal_radius": 0.02}}},
         "btf.images.fpfh.normal_radius = 0.02: expected a number in [1.0, 10000]"),
        ({"images": {"background": {"eps": 1}}}, "unknown setting btf.images.background.eps; did you mean "
                                                 "btf.images.background.dbscan_eps? (known: border, dbscan_eps, "
                                                 "dbscan_min_points, plane_distance, ransac_iterations)"),
        ({"colour": 1}, "unknown setting btf.colour; did you mean btf.points? (known: images, points, "
                        "projection_dim, reweight_k, seed)"),
        ({"points": {"coreset_fraction": 0}}, "btf.points.coreset_fraction = 0: expected a number in [1e-06, 1.0]"),
        ({"points": {"n_points": 2.5}}, "btf.points.n_points = 2.5: expected an integer in [1, 10000000]"),
        ({"seed": True}, "btf.seed = True: expected an integer in [0, 9223372036854775807]"),
        ({"images": {"background": {"border": 0.9}}},
         "btf.images.background.border = 0.9: expected a number in [0.01, 0.5]"),
        ({"images": {"remove_background": "yes"}}, "btf.images.remove_background must be true or false"),
        ({"images": {"feature_grid": 300}}, "btf.images.feature_grid must not exceed btf.images.image_size"),
        ({"points": 5}, "btf.points must be a mapping, got 5"),
    ]:
        with pytest.raises(RecipeError) as info:
            BTFConfig.from_dict(given)
        assert str(info.value) == message


def test_compiled_fps_picks_the_torch_loop_points():
    """BTF's CPU subsample (fpsample when installed) is the greedy torch FPS, index for index."""
    from anomalygen.detectors.common.points import farthest_point_indices, farthest_point_sample

    pts = np.random.default_rng(5).normal(size=(3000, 3)).astype(np.float32)
    ref = farthest_point_sample(torch.from_numpy(pts), 256, start=0).numpy()
    assert np.array_equal(farthest_point_indices(pts, 256, start=0), ref)


def test_kdtree_spread_equals_the_torch_spread():
    from anomalygen.detectors.common.points import knn
    from anomalygen.detectors.common.spread import spread_to_points

    rng = np.random.default_rng(6)
    pts, centers = rng.random((2000, 3)).astype(np.float32), rng.random((100, 3)).astype(np.float32)
    s = rng.random(100).astype(np.float32)
    _, idx = knn(torch.from_numpy(pts), torch.from_numpy(centers), 1)
    got = spread_to_points(torch.from_numpy(pts), torch.from_numpy(centers), torch.from_numpy(s))
    assert np.array_equal(got.numpy(), s[idx[:, 0].numpy()])


@pytest.mark.parametrize("size,grid", [(224, 28), (224, 56), (48, 24), (100, 28)])
def test_patch_pooling_equals_torch_pooling(size, grid):
    # BTF's 3x3 mean + adaptive pool, computed as two matrix products: the same patch features
    # as torch's pooling layers (100 -> 28 has uneven, overlapping bins)
    import torch.nn.functional as F

    from anomalygen.detectors.btf.features import pool_features

    rng = np.random.default_rng(size + grid)
    fmap = (rng.random((size, size, 33)) * (rng.random((size, size, 1)) < 0.3) * 50).astype(np.float32)
    t = torch.from_numpy(fmap).permute(2, 0, 1)[None]
    ref = F.adaptive_avg_pool2d(F.avg_pool2d(t, 3, stride=1, padding=1), (grid, grid))[0].permute(1, 2, 0)
    got = pool_features(fmap, grid)
    assert got.shape == (grid * grid, 33)
    np.testing.assert_allclose(got.numpy(), ref.reshape(grid * grid, 33).numpy(), rtol=1e-5, atol=1e-4)


def test_btf_scores_scans_smaller_than_its_grid_at_their_own_size(image_data):
    # 48 px scans with the default 224 px grid: upsampling would repeat every point and FPFH over
    # duplicates gives every patch one feature (a constant map); they are scored at 48 px instead
    train, test = _split(image_data, "dome")
    det = get_detector("btf")({"images": {"image_size": 224, "feature_grid": 28}}, device="cpu").fit(train)
    res = [det.score(s) for s in test]
    assert all(m.shape == s.mask.shape and np.ptp(m) > 0 for (_, m), s in zip(res, test))
    assert image_auroc([s.anomalous for s in test], [r[0] for r in res]) >= 0.9
    assert aupro([s.mask for s in test], [r[1] for r in res]) >= 0.8
