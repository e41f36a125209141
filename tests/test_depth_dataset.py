"""The on-the-fly torch Dataset and the batched (GPU) driver path agree with the numpy path."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from anomalygen.builds.depth import Job, list_sources, run_job, run_jobs_torch  # noqa: E402
from anomalygen.builds.settings import background_config, das3d_config, render_config  # noqa: E402
from anomalygen.detectors.das3d.data import DAS3DDataset  # noqa: E402
from anomalygen.io import open_dataset  # noqa: E402
from anomalygen.recipes import load_recipe  # noqa: E402


def _jobs(out, recipe):
    rr = load_recipe("render-mvtec3d")
    rr.update(size=48, counts={"train": 2, "validation": 0, "test_good": 0, "test_per_defect": 0})
    srcs = list_sources(None, ["potato"], 0, rr)["potato"]
    cfg, bg = das3d_config(recipe), background_config(recipe)
    return [Job(out, s, k, 2, 48, 0, "das3d", cfg, bg, None) for k, s in enumerate(srcs)]


def test_batched_torch_path_draws_the_same_defects_as_numpy(tmp_path):
    recipe = load_recipe("das3d")
    cpu = [r for j in _jobs(tmp_path / "np", recipe) for r in run_job(j)]
    bat = run_jobs_torch(_jobs(tmp_path / "t", recipe), "cpu", batch=3)
    key = lambda r: (r["split"], r["defect"], r["name"])  # noqa: E731
    cpu, bat = sorted(cpu, key=key), sorted(bat, key=key)
    assert [key(r) for r in cpu] == [key(r) for r in bat] and len(cpu) == 6
    for a, b in zip(cpu, bat):
        if a["defect"] == "das3d":
            assert a["perlin_res"] == b["perlin_res"] and a["p_z"] == b["p_z"] and a["texture"] == b["texture"]
            assert abs(a["anomaly_ratio"] - b["anomaly_ratio"]) < 1e-3
    ma = {r.name: r.load().mask for r in open_dataset(tmp_path / "np").samples("potato") if r.defect == "das3d"}
    mb = {r.name: r.load().mask for r in open_dataset(tmp_path / "t").samples("potato") if r.defect == "das3d"}
    assert ma.keys() == mb.keys() and all((ma[k] != mb[k]).sum() <= 2 for k in ma)


def test_dataset_items_follow_eq12_and_are_reproducible():
    from anomalygen.render.sample import render_sample

    cfg = render_config({**load_recipe("render-mvtec3d"), "size": 48})
    samples = [render_sample("cookie", "train", "good", i, 0, cfg)[0] for i in range(2)]
    ds = DAS3DDataset(samples, size=48, seed=3)
    seen = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            it = ds[i]
            assert it["rgb"].shape == (3, 48, 48) and it["depth"].shape == (1, 48, 48) and it["mask"].shape == (1, 48, 48)
            d_i, d_z = it["drop_rgb"], it["drop_depth"]
            seen.add((d_i, d_z))
            assert (it["mask"].sum() == 0) == (d_i == 1 and d_z == 1)
            assert torch.equal(it["rgb_aug"], it["rgb"]) == bool(d_i) or it["mask"].sum() == 0
            if d_z:
                assert torch.equal(it["depth_aug"], it["depth"])
            fg = it["foreground"][0]
            d_a = it["depth_aug"][0]  # the network input: scaled to (0, 1) by its own foreground range
            assert d_a[fg].min() == 0 and d_a[fg].max() == 1 and (d_a[~fg] == 1).all()
            assert (it["mask"][0][~fg] == 0).all()
    assert len(seen) >= 3
    ds.set_epoch(1)
    a, b = ds[0], DAS3DDataset(samples, size=48, seed=3)
    b.set_epoch(1)
    b = b[0]
    assert all(torch.equal(a[k], b[k]) for k in ("rgb_aug", "depth_aug", "mask"))
    keyed = DAS3DDataset(samples, size=48, seed=3, cache_size=1)[(1, 0)]  # the training loop's (epoch, index) key
    assert all(torch.equal(a[k], keyed[k]) for k in ("rgb_aug", "depth_aug", "mask"))
