"""DAS3D synthesis keeps the paper's properties (Eq. 1-8, 12)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from anomalygen.depth.kernels import dilate, kernel_radius, skew_normal_kernel, ternary_mask
from anomalygen.depth.synth import (FFT_EPS, augmentation_dropout, depth_defect, draw_params,
                                    mix_rgb, move_along_rays, synthesize)
from anomalygen.depth.textures import TextureSource
from anomalygen.builds.settings import das3d_config
from anomalygen.perlin import perlin_grid_np
from anomalygen.recipes import load_recipe

H = 96


@pytest.fixture(scope="module")
def cfg():
    return das3d_config(load_recipe("das3d"))


@pytest.fixture(scope="module")
def scene():
    """A dome object (radius 30 px) over a plane, seen by a pinhole camera (f = 120 px)."""
    yy, xx = np.mgrid[0:H, 0:H].astype(np.float64)
    r2 = ((yy - 48) ** 2 + (xx - 50) ** 2) / 30 ** 2
    fg = r2 < 1
    z = np.where(fg, 0.5 - 0.05 * np.sqrt(np.clip(1 - r2, 0, 1)), 0.52)
    xyz = np.stack([(xx - 48) * z / 120, (yy - 48) * z / 120, z], -1).astype(np.float32)
    xyz[:4, :4] = 0  # a few invalid pixels
    rgb = np.random.default_rng(0).integers(0, 256, (H, H, 3), dtype=np.uint8)
    return xyz, rgb, fg


def test_ternary_mask_eq1():
    p = np.array([-0.9, -0.5, -0.2, 0.0, 0.2, 0.5, 0.9])
    assert ternary_mask(p, 0.4).tolist() == [-1, -1, 0, 0, 0, 1, 1]


def test_skew_kernel_sums_to_one_and_skews_with_alpha():
    k0 = skew_normal_kernel((3.0, 3.0), (0.0, 0.0))
    assert k0.shape == (2 * kernel_radius((3.0, 3.0)) + 1,) * 2
    assert k0.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k0, k0[::-1, ::-1])  # alpha = 0: a centred Gaussian
    t = np.arange(k0.shape[0]) - k0.shape[0] // 2
    kp = skew_normal_kernel((3.0, 3.0), (0.5, 0.0))
    km = skew_normal_kernel((3.0, 3.0), (-0.5, 0.0))
    assert (kp.sum(1) * t).sum() > 0.5 > 0 > -0.5 > (km.sum(1) * t).sum()  # mass moves along +rows for alpha_row > 0
    assert abs((kp.sum(0) * t).sum()) < 1e-9  # no skew along columns


def _many(cfg, scene, n=12, seed=1):
    xyz, rgb, fg = scene
    rng = np.random.default_rng(seed)
    return [depth_defect(xyz[..., 2], fg, draw_params(rng, cfg, (H, H)), cfg, 0.1) for _ in range(n)]


def test_mask_inside_foreground_and_delta_zero_off_dilated_mask(cfg, scene):
    _, _, fg = scene
    checked = 0
    for d in _many(cfg, scene):
        assert not (d.mask.astype(bool) & ~fg).any()          # M* subset of M_f
        assert not (d.delta[~fg] != 0).any()
        support = dilate(d.m_t != 0, kernel_radius(d.params.sigma))
        assert not (d.delta[~support] != 0).any()             # Delta_Z = 0 off the dilated ternary mask
        checked += int(d.mask.any())
    assert checked >= 6  # the draws did make defects


def test_sign_of_delta_matches_ternary_mask(cfg, scene):
    for d in _many(cfg, scene, seed=2):
        r = kernel_radius(d.params.sigma)
        pos_only = (d.m_t == 1) & ~dilate(d.m_t == -1, r)  # no -1 pixel within the kernel's reach
        neg_only = (d.m_t == -1) & ~dilate(d.m_t == 1, r)
        assert (d.delta[pos_only] > 0).all()
        assert (d.delta[neg_only] < 0).all()
        # the depth moves the way the mask says: +1 farther (dent), -1 nearer (bump)
        dz = d.z_a - scene[0][..., 2]
        assert (dz[pos_only] > 0).all() and (dz[neg_only] < 0).all()


def _whole_image_defect(z, fg, p, cfg, scale):
    """Eq. 1-7 written over the whole image with scipy's fftconvolve (what depth_defect computes in boxes)."""
    from scipy.signal import fftconvolve

    noise = perlin_grid_np(z.shape, p.res, p.perm, cfg.octaves, cfg.persistence, cfg.lacunarity, offset=p.offset)
    m_t = ternary_mask(noise, cfg.t_p) * fg
    delta = fftconvolve(m_t.astype(np.float64), skew_normal_kernel(p.sigma, p.alpha), mode="same")
    delta[np.abs(delta) < FFT_EPS] = 0.0
    delta = (delta * fg).astype(np.float32)
    change = np.float32(p.p_z * scale) * delta
    mask = ((np.abs(change) >= cfg.t_h * scale) & fg & (delta != 0)).astype(np.uint8)
    return (z + change).astype(np.float32), delta, mask, m_t


def test_depth_defect_matches_the_whole_image_formulas(cfg, scene):
    """Delta_Z comes from an FFT over M_t's support box, not the whole image: the float64 round-off differs
    (~1e-16), so a float32 Delta_Z may move by one ulp where it sits on a rounding boundary, and M* or Z_a
    only where a value sits within that of t_h or of a float32 boundary; everything else keeps its bytes,
    signed zeros included (Delta_Z is -0.0 off the foreground where the convolution is negative; Z_a
    keeps a background's -0.0 only where the change is -0.0). The object also touches the image border."""
    xyz, _, fg = scene
    z = xyz[..., 2].copy()
    z[~fg] = -0.0
    shifted = np.roll(fg, (40, -45), (0, 1))
    rng = np.random.default_rng(8)
    changed = 0
    for mask_fg in (fg, shifted):
        for _ in range(15):
            p = draw_params(rng, cfg, (H, H))
            d = depth_defect(z, mask_fg, p, cfg, 0.1)
            z_a, delta, mask, m_t = _whole_image_defect(z, mask_fg, p, cfg, 0.1)
            assert d.m_t.tobytes() == m_t.tobytes()
            near = np.abs(d.delta - delta) <= np.spacing(np.abs(delta))  # at most one float32 ulp
            assert near.all()
            changed += int((d.delta != delta).sum())
            same = d.delta == delta  # there every output is the whole-image one, bit for bit
            for got, want in ((d.delta, delta), (d.mask, mask), (d.z_a, z_a)):
                assert got.dtype == want.dtype and got[same].tobytes() == want[same].tobytes()
            t, b, l, r = d.box
            outside = np.ones(z.shape, bool)
            outside[t:b, l:r] = False
            assert not d.delta[outside].any()
    assert changed <= 3  # round-off moves a value across a float32 boundary rarely (4 in 39 million measured)


def test_moving_the_box_only_moves_the_same_points(cfg, scene):
    xyz, _, fg = scene
    xyz = xyz.copy()
    xyz[48, 50, 2], xyz[40, 40, 2], xyz[60, 30, 2] = np.nan, np.inf, -0.0  # non-finite Z: nan ratios, whole-image path
    rng = np.random.default_rng(9)
    for k in range(8):
        x = xyz if k % 2 else np.where(np.isfinite(xyz), xyz, 0.5).astype(np.float32)
        d = depth_defect(x[..., 2], fg, draw_params(rng, cfg, (H, H)), cfg, 0.1)
        with np.errstate(invalid="ignore"):
            assert move_along_rays(x, d.z_a, fg, d.box).tobytes() == move_along_rays(x, d.z_a, fg).tobytes()


def test_refined_mask_threshold_eq7(cfg, scene):
    for d in _many(cfg, scene, n=4, seed=3):
        change = np.abs(d.params.p_z * 0.1 * d.delta)
        assert ((change >= cfg.t_h * 0.1) == d.mask.astype(bool)).all()


def test_rgb_unchanged_outside_mask_and_mixed_inside(cfg, scene):
    xyz, rgb, fg = scene
    syn = synthesize(xyz, rgb, fg, cfg, np.random.default_rng(5), TextureSource())
    m = syn.mask.astype(bool)
    assert m.any()
    assert (syn.rgb[~m] == rgb[~m]).all()
    assert (syn.rgb[m] != rgb[m]).any()
    tex = np.full_like(rgb, 200)
    mixed = mix_rgb(rgb, syn.mask, tex, 0.25)
    np.testing.assert_allclose(mixed[m], np.rint(0.75 * 200 + 0.25 * rgb[m].astype(float)), atol=0.51)


def test_points_move_along_camera_rays(cfg, scene):
    xyz, rgb, fg = scene
    syn = synthesize(xyz, rgb, fg, cfg, np.random.default_rng(6), TextureSource())
    valid = np.any(xyz != 0, -1)
    np.testing.assert_allclose(syn.xyz[valid][:, :2] / syn.xyz[valid][:, 2:], xyz[valid][:, :2] / xyz[valid][:, 2:],
                               rtol=1e-5, atol=1e-7)
    assert (syn.xyz[~valid] == 0).all()
    assert ((syn.xyz[..., 2] != xyz[..., 2]) <= fg).all()


def test_dropout_empties_mask_exactly_when_both_dropped():
    rng = np.random.default_rng(0)
    rgb, rgb_a = np.zeros((4, 4, 3)), np.ones((4, 4, 3))
    z, z_a = np.zeros((4, 4)), np.ones((4, 4))
    mask = np.ones((4, 4), np.uint8)
    seen = set()
    for _ in range(200):
        i_t, z_t, m_t, d_i, d_z = augmentation_dropout(rgb, rgb_a, z, z_a, mask, rng, 0.5)
        seen.add((d_i, d_z))
        assert (m_t.sum() == 0) == (d_i == 1 and d_z == 1)
        assert (i_t is rgb) == bool(d_i) and (z_t is z) == bool(d_z)
    assert seen == {(0, 0), (0, 1), (1, 0), (1, 1)}
    never = [augmentation_dropout(rgb, rgb_a, z, z_a, mask, rng, 0.0)[3:] for _ in range(20)]
    assert set(never) == {(0, 0)}


def test_same_seed_same_arrays_other_seed_other(cfg, scene):
    xyz, rgb, fg = scene
    a = synthesize(xyz, rgb, fg, cfg, np.random.default_rng(11), TextureSource())
    b = synthesize(xyz, rgb, fg, cfg, np.random.default_rng(11), TextureSource())
    c = synthesize(xyz, rgb, fg, cfg, np.random.default_rng(12), TextureSource())
    assert np.array_equal(a.xyz, b.xyz) and np.array_equal(a.rgb, b.rgb) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.mask, c.mask)


def test_anomaly_ratio_bounds_are_honoured_or_named(cfg, scene):
    xyz, rgb, fg = scene
    syn = synthesize(xyz, rgb, fg, cfg, np.random.default_rng(2), TextureSource())
    assert cfg.anomaly_ratio[0] <= syn.anomaly_ratio <= cfg.anomaly_ratio[1]
    from anomalygen.errors import AnomalygenError

    impossible = dataclasses.replace(cfg, anomaly_ratio=(0.9, 1.0), max_tries=3)
    with pytest.raises(AnomalygenError, match="anomaly ratio"):
        synthesize(xyz, rgb, fg, impossible, np.random.default_rng(2), TextureSource())


def test_torch_batch_matches_numpy(cfg, scene):
    torch = pytest.importorskip("torch")
    from anomalygen.depth.synth_torch import depth_defect_batch

    xyz, _, fg = scene
    rng = np.random.default_rng(4)
    params = [draw_params(rng, cfg, (H, H)) for _ in range(5)]
    z = torch.as_tensor(np.stack([xyz[..., 2]] * 5))
    z_a, delta, mask, m_t = depth_defect_batch(z, torch.as_tensor(np.stack([fg] * 5)), params, cfg, torch.full((5,), 0.1))
    for i, p in enumerate(params):
        d = depth_defect(xyz[..., 2], fg, p, cfg, 0.1)
        assert np.array_equal(m_t[i].numpy(), d.m_t)
        np.testing.assert_allclose(delta[i].numpy(), d.delta, atol=2e-5)
        assert (mask[i].numpy() != d.mask).sum() <= 2  # only pixels exactly at the threshold may flip


def test_textures_from_a_folder(tmp_path):
    from PIL import Image

    sub = tmp_path / "images" / "banded"
    sub.mkdir(parents=True)
    Image.fromarray(np.full((40, 50, 3), 77, np.uint8)).save(sub / "banded_0001.jpg")
    src = TextureSource(tmp_path)
    tex, name = src.draw((20, 30), np.random.default_rng(0))
    assert tex.shape == (20, 30, 3) and name == "banded_0001.jpg" and abs(int(tex.mean()) - 77) <= 2
    from anomalygen.errors import AnomalygenError

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AnomalygenError, match="no images"):
        TextureSource(empty)
    with pytest.raises(AnomalygenError, match="no such directory"):
        TextureSource(tmp_path / "missing")


def test_default_textures_are_offline_and_sized():
    src = TextureSource()
    rng = np.random.default_rng(0)
    names = set()
    for _ in range(30):
        tex, name = src.draw((33, 47), rng)
        assert tex.shape == (33, 47, 3) and tex.dtype == np.uint8
        names.add(name.split(":")[0])
    assert names == {"skimage", "procedural"}
