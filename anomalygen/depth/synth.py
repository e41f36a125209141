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
from anomalygen.depth.kernels import convolve_same, skew_normal_kernel, ternary_mask
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


def depth_defect(z: np.ndarray, fg: np.ndarray, params: DefectParams, cfg: DAS3DConfig, scale: float = 1.0) -> DepthDefect:
    """Eq. 1-7 for one depth image `z` (H, W) with foreground `fg` (H, W) bool; magnitudes times `scale`."""
    fg = fg if fg.dtype == bool else fg.astype(bool)
    noise = perlin_grid_np(z.shape, params.res, params.perm, cfg.octaves, cfg.persistence, cfg.lacunarity,
                           offset=params.offset)
    m_t = ternary_mask(noise, cfg.t_p)
    m_t *= fg
    if not m_t.any():
        delta = np.zeros(z.shape, np.float32)
    else:
        k = skew_normal_kernel(params.sigma, params.alpha)
        delta = convolve_same(m_t.astype(np.float64), k)  # fftconvolve(..., mode="same"), bit for bit
        delta[np.abs(delta) < FFT_EPS] = 0.0
        delta *= fg
        delta = delta.astype(np.float32)
    change = np.float32(params.p_z * scale) * delta
    mask = ((np.abs(change) >= cfg.t_h * scale) & fg & (delta != 0)).astype(np.uint8)
    z_a = (z + change).astype(np.float32)
    return DepthDefect(z_a, delta, mask, m_t, params)


def mix_rgb(rgb: np.ndarray, mask: np.ndarray, texture: np.ndarray, beta: float) -> np.ndarray:
    """Eq. 8: I_a = (1-M*) I + M* ((1-beta) I_u + beta I); uint8 in, uint8 out; unchanged where M* = 0."""
    idx = np.flatnonzero(mask)  # flat pixel indices: cheaper than a boolean (H, W) mask over (H, W, 3)
    return mix_rgb_at(rgb, idx, texture.reshape(-1, rgb.shape[-1])[idx], beta)


def mix_rgb_at(rgb: np.ndarray, idx: np.ndarray, texture: np.ndarray, beta: float) -> np.ndarray:
    """Eq. 8 with M* given as flat pixel indices `idx` and I_u as its (N, 3) pixels there."""
    out = rgb.copy()
    flat = out.reshape(-1, rgb.shape[-1])
    mixed = (1.0 - beta) * texture.astype(np.float32) + beta * flat[idx].astype(np.float32)
    flat[idx] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out


def move_along_rays(xyz: np.ndarray, z_a: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """New xyz with Z = z_a on the foreground and (X, Y) scaled by Z_a / Z (points stay on their rays)."""
    z = xyz[..., 2]
    sel = fg & (z != 0)
    f = np.ones_like(z)
    np.divide(z_a, z, out=f, where=sel)
    out = xyz * f[..., None]  # X and Y scaled; Z replaced below
    out[..., 2] = np.where(sel, z_a, z)
    return out.astype(np.float32, copy=False)


def measured(xyz: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with any non-zero coordinate (`np.any(xyz != 0, axis=-1)`, channel by channel:
    a reduction over a length-3 axis is ~10x slower)."""
    return (xyz[..., 0] != 0) | (xyz[..., 1] != 0) | (xyz[..., 2] != 0)


def object_scale(xyz: np.ndarray, fg: np.ndarray) -> float:
    """The larger side of the foreground's X/Y bounding box (metres for MVTec 3D-AD)."""
    pts = xyz[fg]
    if len(pts) == 0:
        raise AnomalygenError("no foreground pixel: cannot place a defect")
    return float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1e-9))


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


def textured(rgb: np.ndarray, mask: np.ndarray, beta: float, rng: np.random.Generator, textures=None):
    """Eq. 8 with a texture I_u drawn from `textures` (default: the offline TextureSource):
    (I_a, texture name). A source with `draw_at` makes only the pixels under M*; any other
    object with `draw(shape, rng)` gives the whole texture."""
    from anomalygen.depth.textures import TextureSource

    textures = textures if textures is not None else TextureSource()
    idx = np.flatnonzero(mask)
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
    fg = fg.astype(bool) & measured(xyz)
    scale = object_scale(xyz, fg) if scale is None else float(scale)
    for tries in range(1, cfg.max_tries + 1):
        params = draw_params(rng, cfg, xyz.shape[:2])
        d = depth_defect(xyz[..., 2], fg, params, cfg, scale)
        if ratio_accepted(d.mask, cfg):
            break
    else:
        raise no_defect_error(cfg, fg)
    d.info["scale"] = scale
    out_rgb, tex_name = None, None
    if rgb is not None:
        out_rgb, tex_name = textured(rgb, d.mask, params.beta, rng, textures)
    return Synthesized(move_along_rays(xyz, d.z_a, fg), out_rgb, d.mask, d.delta, d, tex_name, tries)


def augmentation_dropout(rgb, rgb_a, z, z_a, mask, rng: np.random.Generator, p_d: float):
    """Eq. 12: d_I, d_Z ~ B(1, p_d); returns (I~_a, Z~_a, M~*, d_I, d_Z). M~* is empty iff both are dropped."""
    d_i = int(rng.random() < p_d)
    d_z = int(rng.random() < p_d)
    rgb_t = rgb if d_i else rgb_a
    z_t = z if d_z else z_a
    mask_t = mask * (1 - d_i * d_z)
    return rgb_t, z_t, mask_t, d_i, d_z
