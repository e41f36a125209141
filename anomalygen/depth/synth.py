"""DAS3D dual-modal anomaly synthesis (DAS3D, ECCV 2024, Section 3.2): pure functions.

    M_p = ternary(P, t_p)                     Eq. 1   P: Perlin noise image
    M_t = M_f * M_p                           Eq. 2   M_f: foreground mask
    Delta_Z = norm(G_s) * M_t                 Eq. 3-5 G_s: 2-D skew-normal kernel
    Z_a = Z + p_z Delta_Z                     Eq. 6
    M* = [p_z |Delta_Z| >= t_h]               Eq. 7
    I_a = (1-M*) I + M* ((1-beta) I_u + beta I)   Eq. 8
    dropout: d_I, d_Z ~ B(1, p_d)             Eq. 12

Choices the paper leaves open (documented here, set in recipes/das3d.yaml, read by
anomalygen.builds.settings.das3d_config):
  * Delta_Z and M* are restricted to the foreground (the convolution spreads M_t past
    the object's silhouette; a change there would invent depth where nothing was measured).
  * p_z and t_h are fractions of the object's extent (`scale`), so one recipe fits a
    10 cm bagel and a rendered 0.2-unit mesh.
  * On xyz images, each point moves along its camera ray: (X, Y) scale by Z_a / Z, so
    its pixel does not change for a pinhole camera with the optical axis through X=Y=0
    (MVTec 3D-AD's and our renderer's convention).
  * A draw is accepted only when M* covers `anomaly_ratio` of the image; otherwise the
    rng draws again (deterministic for a given seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anomalygen.errors import AnomalygenError
from anomalygen.depth.kernels import convolve_full, skew_normal_kernel, ternary_mask
from anomalygen.perlin import perlin_grid_np, random_permutation

FFT_EPS = 1e-5  # float32 FFT round-off below this (Delta_Z is in [-1, 1]) is zeroed: the exact convolution is 0 there


@dataclass(frozen=True)
class DAS3DConfig:
    """Typed, range-checked settings of recipes/das3d.yaml."""

    scale_exp: tuple[int, int] = (0, 6)
    octaves: int = 1
    persistence: float = 0.5
    lacunarity: float = 2.0
    t_p: float = 0.4
    sigma: tuple[float, float] = (2.0, 6.0)
    alpha: tuple[float, float] = (-0.5, 0.5)
    p_z: tuple[float, float] = (0.01, 0.05)
    t_h: float = 0.002
    anomaly_ratio: tuple[float, float] = (0.002, 0.35)
    max_tries: int = 30
    beta: tuple[float, float] = (0.0, 0.8)
    p_d: float = 0.5


@dataclass
class DefectParams:
    """Every random draw of one synthetic defect (JSON-serializable via .to_json())."""

    res: tuple[int, int]
    offset: tuple[float, float]
    perm: np.ndarray
    sigma: tuple[float, float]
    alpha: tuple[float, float]
    p_z: float
    beta: float

    def to_json(self) -> dict:
        return {"perlin_res": list(self.res), "perlin_offset": [round(v, 6) for v in self.offset],
                "sigma_px": [round(v, 4) for v in self.sigma], "alpha": [round(v, 4) for v in self.alpha],
                "p_z": round(self.p_z, 6), "beta": round(self.beta, 4)}


def draw_params(rng: np.random.Generator, cfg: DAS3DConfig, shape: tuple[int, int]) -> DefectParams:
    """Draw one defect's random parameters. Kernel sigma is in px@256, scaled to `shape`."""
    lo, hi = cfg.scale_exp
    res = (2 ** int(rng.integers(lo, hi + 1)), 2 ** int(rng.integers(lo, hi + 1)))
    offset = (0.0, 0.0)  # the fresh permutation already makes an independent field; a fixed grid lets
    perm = random_permutation(rng)  # perlin_grid_np reuse its cached per-resolution geometry
    f = max(shape) / 256.0
    sigma = (float(rng.uniform(*cfg.sigma)) * f, float(rng.uniform(*cfg.sigma)) * f)
    alpha = (float(rng.uniform(*cfg.alpha)), float(rng.uniform(*cfg.alpha)))
    return DefectParams(res, offset, perm, sigma, alpha, float(rng.uniform(*cfg.p_z)), float(rng.uniform(*cfg.beta)))


@dataclass
class DepthDefect:
    z_a: np.ndarray          # (H, W) augmented depth (Eq. 6), equal to Z off the foreground
    delta: np.ndarray        # (H, W) Delta_Z in [-1, 1] (Eq. 5), zero off the foreground
    mask: np.ndarray         # (H, W) uint8 M* (Eq. 7)
    m_t: np.ndarray          # (H, W) int8 M_t (Eq. 2)
    params: DefectParams
    info: dict = field(default_factory=dict)
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # (top, bottom, left, right): Delta_Z = 0 outside


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the non-zero pixels of a 2-D array, None if there is none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def depth_defect(z: np.ndarray, fg: np.ndarray, params: DefectParams, cfg: DAS3DConfig, scale: float = 1.0) -> DepthDefect:
    """Eq. 1-7 for one depth image `z` (H, W) with foreground `fg` (H, W) bool; magnitudes times `scale`."""
    fg = fg if fg.dtype == bool else fg.astype(bool)
    return _depth_defect(z, fg, bounding_box(fg), params, cfg, scale)


def _depth_defect(z, fg, fg_box, params: DefectParams, cfg: DAS3DConfig, scale: float) -> DepthDefect:
    """`depth_defect` given fg's bounding box, with work confined to boxes.

    M_t = 0 outside fg's box. Delta_Z (Eq. 5) is non-zero only within the kernel's reach of M_t's
    support box (`band`), so the convolution runs over that box alone: the full linear convolution of
    the support box, one FFT at fast lengths over (support + kernel) instead of over (image + kernel).
    That is the whole-image `fftconvolve(..., mode="same")` over the band up to float64 round-off
    (the FFT length differs, ~1e-16 relative), and about half its time. The round-off reaches the
    float32 outputs only where a value sits within it of a float32 rounding boundary, FFT_EPS or the
    t_h threshold: over 2,400 samples of `synthesize` (3 rendered objects, 2 crops, a texture folder,
    200 seeds) no byte of xyz, rgb, M*, Z_a, the records or the rng state changed, and 4 of 39 million
    Delta_Z values (600 defects) moved by one float32 ulp. Outside the band the
    whole-image form gives round-off far below FFT_EPS, zeroed, so Delta_Z = +0.0, M* = 0 and
    Z_a = Z + p_z * 0 there, as here."""
    h, w = z.shape
    noise = perlin_grid_np(z.shape, params.res, params.perm, cfg.octaves, cfg.persistence, cfg.lacunarity,
                           offset=params.offset)
    m_t = np.zeros(z.shape, np.int8)
    delta = np.zeros(z.shape, np.float32)
    mask = np.zeros(z.shape, np.uint8)
    f = np.float32(params.p_z * scale)
    if z.dtype == np.float32:
        z_a = np.array(z)  # contiguous copy, then + f * 0 in place: (z + change) where Delta_Z = 0
        z_a += f * np.float32(0.0)
    else:
        z_a = (z + f * np.float32(0.0)).astype(np.float32)
    band = (0, 0, 0, 0)
    if fg_box is not None:
        t, b, l, r = fg_box
        sub = ternary_mask(noise[t:b, l:r], cfg.t_p)
        sub *= fg[t:b, l:r]
        m_t[t:b, l:r] = sub
        m_box = bounding_box(sub)
        if m_box is not None:
            k = skew_normal_kernel(params.sigma, params.alpha)
            y0, x0 = (k.shape[0] - 1) // 2, (k.shape[1] - 1) // 2
            mt, mb, ml, mr = m_box[0] + t, m_box[1] + t, m_box[2] + l, m_box[3] + l
            band = (max(mt - y0, 0), min(mb + k.shape[0] - 1 - y0, h), max(ml - x0, 0), min(mr + k.shape[1] - 1 - x0, w))
            win = (slice(band[0], band[1]), slice(band[2], band[3]))
            full = convolve_full(m_t[mt:mb, ml:mr].astype(np.float64), k)  # row i: image row mt - y0 + i
            d = full[band[0] - mt + y0:band[1] - mt + y0, band[2] - ml + x0:band[3] - ml + x0]
            d = np.where(np.abs(d) < FFT_EPS, 0.0, d)
            d *= fg[win]
            delta[win] = d
            d = delta[win]
            change = f * d
            mask[win] = (np.abs(change) >= cfg.t_h * scale) & fg[win] & (d != 0)
            z_a[win] = z[win] + change
    return DepthDefect(z_a, delta, mask, m_t, params, box=band)


def mix_rgb(rgb: np.ndarray, mask: np.ndarray, texture: np.ndarray, beta: float) -> np.ndarray:
    """Eq. 8: I_a = (1-M*) I + M* ((1-beta) I_u + beta I); uint8 in, uint8 out; unchanged where M* = 0."""
    idx = np.flatnonzero(mask)  # flat pixel indices: cheaper than a boolean (H, W) mask over (H, W, 3)
    return mix_rgb_at(rgb, idx, texture.reshape(-1, rgb.shape[-1])[idx], beta)


def mix_rgb_at(rgb: np.ndarray, idx: np.ndarray, texture: np.ndarray, beta: float) -> np.ndarray:
    """Eq. 8 with M* given as flat pixel indices `idx` and I_u as its (N, 3) pixels there."""
    out = rgb.copy()
    flat = out.reshape(-1, rgb.shape[-1])
    mixed = (1.0 - beta) * texture.astype(np.float32) + beta * np.take(flat, idx, axis=0).astype(np.float32)
    put_rows(flat, idx, np.clip(np.rint(mixed), 0, 255).astype(np.uint8))
    return out


def flat_indices(sub: np.ndarray, box: tuple[int, int, int, int], width: int) -> np.ndarray:
    """Flat indices, in an image `width` pixels wide, of the non-zero pixels of `sub`, its box
    (top, bottom, left, right): np.flatnonzero of the whole image, reading only the box."""
    q = np.flatnonzero(sub)
    w = box[3] - box[2]
    return q + (q // w) * (width - w) + (box[0] * width + box[2])


def put_rows(a: np.ndarray, idx: np.ndarray, rows: np.ndarray) -> None:
    """a[idx] = rows for a C-contiguous 2-D array, each row moved as one opaque item (`a[idx] = rows`
    copies element by element, ~3x slower for rows of 3)."""
    if not a.flags.c_contiguous:
        a[idx] = rows
        return
    item = np.dtype((np.void, a.shape[1] * a.itemsize))
    np.put(a.reshape(-1).view(item), idx, np.ascontiguousarray(rows, a.dtype).reshape(-1).view(item))


def move_along_rays(xyz: np.ndarray, z_a: np.ndarray, fg: np.ndarray,
                    box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """New xyz with Z = z_a on the foreground and (X, Y) scaled by Z_a / Z (points stay on their rays).

    box = (top, bottom, left, right): outside it z_a is Z plus a zero (Delta_Z = 0, `DepthDefect.box`),
    so Z_a / Z = 1 exactly at every finite Z and those points keep their coordinates; so do the points
    in the box whose Z_a equals Z. Only the others are computed (the whole image when some Z is inf or
    nan, where Z_a / Z is nan)."""
    if box is None or not np.isfinite(xyz[..., 2]).all():
        return _moved(xyz, z_a, fg)
    out = np.array(xyz, np.float32, order="C")
    p = flat_indices(z_a[box[0]:box[1], box[2]:box[3]] != xyz[box[0]:box[1], box[2]:box[3], 2], box, xyz.shape[1])
    rows = np.take(xyz.reshape(-1, 3), p, axis=0)
    put_rows(out.reshape(-1, 3), p, _moved(rows, np.take(z_a.reshape(-1), p), np.take(fg.reshape(-1), p)))
    return out


def _moved(xyz: np.ndarray, z_a: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """The whole-array formula of `move_along_rays`; any leading shape ((H, W) or (N,))."""
    z = xyz[..., 2]
    sel = fg & (z != 0)
    f = np.ones_like(z)
    np.divide(z_a, z, out=f, where=sel)
    out = np.empty(xyz.shape, np.result_type(xyz, f))  # xyz * f[..., None], one channel at a time (~6x faster)
    np.multiply(xyz[..., 0], f, out=out[..., 0])
    np.multiply(xyz[..., 1], f, out=out[..., 1])
    out[..., 2] = np.where(sel, z_a, z)
    return out.astype(np.float32, copy=False)


def measured(xyz: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with any non-zero coordinate (`np.any(xyz != 0, axis=-1)`, channel by channel:
    a reduction over a length-3 axis is ~10x slower)."""
    return (xyz[..., 0] != 0) | (xyz[..., 1] != 0) | (xyz[..., 2] != 0)


def object_scale(xyz: np.ndarray, fg: np.ndarray) -> float:
    """The larger side of the foreground's X/Y bounding box (metres for MVTec 3D-AD)."""
    x = xyz[..., 0][fg]  # channel by channel: gathering (N, 3) rows is ~10x slower
    if len(x) == 0:
        raise AnomalygenError("no foreground pixel: cannot place a defect")
    return float(max(np.ptp(x), np.ptp(xyz[..., 1][fg]), 1e-9))


@dataclass
class Synthesized:
    xyz: np.ndarray          # (H, W, 3) float32 augmented organized cloud
    rgb: np.ndarray | None   # (H, W, 3) uint8 augmented image
    mask: np.ndarray         # (H, W) uint8 M*
    delta: np.ndarray        # (H, W) float32 Delta_Z (unit-less, times p_z * scale = metres)
    depth: DepthDefect
    texture: str | None
    tries: int

    @property
    def anomaly_ratio(self) -> float:
        return float(self.mask.mean())

    def record(self) -> dict:
        return variant_record(self.depth.params, self.texture, self.tries, self.mask, self.depth.info.get("scale"))


def variant_record(params: DefectParams, texture: str | None, tries: int, mask: np.ndarray, scale) -> dict:
    """The manifest record of one synthesized variant: every draw, the texture, the tries, the ratio."""
    return {**params.to_json(), "texture": texture, "tries": tries, "anomaly_ratio": round(float(mask.mean()), 6),
            "scale": scale}


def ratio_accepted(mask: np.ndarray, cfg: DAS3DConfig) -> bool:
    """A draw is kept only when M* is not empty and covers cfg.anomaly_ratio of the image."""
    lo, hi = cfg.anomaly_ratio
    return bool(lo <= float(mask.mean()) <= hi and mask.any())


def no_defect_error(cfg: DAS3DConfig, fg: np.ndarray) -> AnomalygenError:
    lo, hi = cfg.anomaly_ratio
    return AnomalygenError(f"no defect with anomaly ratio in [{lo}, {hi}] after {cfg.max_tries} draws "
                           f"(foreground covers {fg.mean():.4f} of the image); widen depth.anomaly_ratio")


def textured(rgb: np.ndarray, mask: np.ndarray, beta: float, rng: np.random.Generator, textures=None,
             idx: np.ndarray | None = None):
    """Eq. 8 with a texture I_u drawn from `textures` (default: the offline TextureSource):
    (I_a, texture name). A source with `draw_at` makes only the pixels under M*; any other
    object with `draw(shape, rng)` gives the whole texture. `idx`: np.flatnonzero(mask) if known."""
    from anomalygen.depth.textures import TextureSource

    textures = textures if textures is not None else TextureSource()
    idx = np.flatnonzero(mask) if idx is None else idx
    if hasattr(textures, "draw_at"):
        tex, name = textures.draw_at(rgb.shape[:2], rng, idx)
    else:
        tex, name = textures.draw(rgb.shape[:2], rng)
        tex = tex.reshape(-1, rgb.shape[-1])[idx]
    return mix_rgb_at(rgb, idx, tex, beta), name


def synthesize(xyz: np.ndarray, rgb: np.ndarray | None, fg: np.ndarray, cfg: DAS3DConfig,
               rng: np.random.Generator, textures=None, scale: float | None = None) -> Synthesized:
    """One DAS3D anomalous pair from a normal organized cloud `xyz` (H, W, 3), image `rgb` and foreground `fg`.

    Redraws until M* covers cfg.anomaly_ratio of the image; raises AnomalygenError after cfg.max_tries.
    """
    fg = fg.astype(bool)
    box = bounding_box(fg)  # fg & measured(xyz) is False outside it: measured, scale and M_t run inside it
    win = (slice(0, 0), slice(0, 0)) if box is None else (slice(box[0], box[1]), slice(box[2], box[3]))
    fg[win] &= measured(xyz[win])
    scale = object_scale(xyz[win], fg[win]) if scale is None else float(scale)
    for tries in range(1, cfg.max_tries + 1):
        params = draw_params(rng, cfg, xyz.shape[:2])
        d = _depth_defect(xyz[..., 2], fg, box, params, cfg, scale)
        t, b, l, r = d.box
        idx = flat_indices(d.mask[t:b, l:r], d.box, xyz.shape[1])  # M* = 0 outside d.box
        lo, hi = cfg.anomaly_ratio
        if len(idx) and lo <= len(idx) / d.mask.size <= hi:  # ratio_accepted: mask.mean() is this quotient
            break
    else:
        raise no_defect_error(cfg, fg)
    d.info["scale"] = scale
    out_rgb, tex_name = None, None
    if rgb is not None:
        out_rgb, tex_name = textured(rgb, d.mask, params.beta, rng, textures, idx)
    return Synthesized(move_along_rays(xyz, d.z_a, fg, d.box), out_rgb, d.mask, d.delta, d, tex_name, tries)


def augmentation_dropout(rgb, rgb_a, z, z_a, mask, rng: np.random.Generator, p_d: float, keep_anomaly: bool = False):
    """Eq. 12: d_I, d_Z ~ B(1, p_d); returns (I~_a, Z~_a, M~*, d_I, d_Z). M~* is empty iff both are dropped.

    keep_anomaly: (d_I, d_Z) drawn from Eq. 12 given that not both are dropped (each modality kept alone
    when p_d = 1), so M~* stays the synthesized M*; the caller decides with one coin of its own which
    items are normal (DRAEM's "half normal" is one coin, not Eq. 12's p_d ** 2 on top of another)."""
    if keep_anomaly:
        p = float(p_d)
        w = np.array([(1 - p) ** 2, p * (1 - p), p * (1 - p)]) if p < 1 else np.array([0.0, 1.0, 1.0])
        d_i, d_z = ((0, 0), (1, 0), (0, 1))[int(rng.choice(3, p=w / w.sum()))]
    else:
        d_i = int(rng.random() < p_d)
        d_z = int(rng.random() < p_d)
    rgb_t = rgb if d_i else rgb_a
    z_t = z if d_z else z_a
    mask_t = mask * (1 - d_i * d_z)
    return rgb_t, z_t, mask_t, d_i, d_z
