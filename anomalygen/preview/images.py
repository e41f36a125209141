"""PNG contact sheets of MVTec 3D-AD-layout datasets: rgb | depth | Delta_Z | gt, one row per sample.

Delta_Z is the depth change against the normal image the sample was made from, read
from manifest.json (`train_name` of a depth-defects variant); red = farther (dent),
blue = nearer (bump). Without a source image the column says "n/a".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from anomalygen.errors import AnomalygenError
from anomalygen.io import GOOD, mvtec3d, open_dataset

TILE = 192


def surface_normals(xyz: np.ndarray) -> np.ndarray:
    """(H,W,3) unit normals of an organized cloud by finite differences over the pixel grid,
    facing the camera (-Z)."""
    du = np.gradient(xyz, axis=1)
    dv = np.gradient(xyz, axis=0)
    n = np.cross(du, dv)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    return n * np.where(n[..., 2:3] > 0, -1, 1)


def relief(xyz: np.ndarray) -> np.ndarray:
    """Shaded surface from the organized cloud (normals by finite differences), tinted by depth;
    dents and bumps of a millimetre show, which a flat depth colour map hides. Invalid: black."""
    valid = np.any(xyz != 0, axis=-1)
    out = np.zeros(xyz.shape[:2] + (3,), np.uint8)
    if not valid.any():
        return out
    n = surface_normals(xyz)
    light = np.array([-0.4, -0.5, -1.0]) / np.linalg.norm([-0.4, -0.5, -1.0])
    lam = np.clip(n @ light, 0, 1)
    z = xyz[..., 2]
    lo, hi = np.percentile(z[valid], [1, 99])
    t = np.clip((hi - z) / max(hi - lo, 1e-9), 0, 1)  # near = 1
    tint = np.stack([0.55 + 0.45 * t, 0.55 + 0.25 * t, 0.75 - 0.35 * t], -1)
    img = (0.15 + 0.85 * lam)[..., None] * tint
    out[valid] = (np.clip(img[valid], 0, 1) * 255).astype(np.uint8)
    return out


def _diverging(d: np.ndarray) -> np.ndarray:
    """Signed map: blue (negative) - white (0) - red (positive), scaled by its own max |d|."""
    m = float(np.abs(d).max())
    t = d / m if m > 0 else d
    r = np.where(t > 0, 1.0, 1.0 + t)
    b = np.where(t < 0, 1.0, 1.0 - t)
    g = 1.0 - np.abs(t)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def mask_overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with the mask's pixels tinted red and its outline yellow."""
    out = rgb.astype(np.float32).copy()
    m = mask > 0
    out[m] = 0.45 * out[m] + 0.55 * np.array([255, 0, 0])
    edge = m & ~np.pad(m, 1, mode="edge")[2:, 1:-1] | m & ~np.pad(m, 1, mode="edge")[:-2, 1:-1] \
        | m & ~np.pad(m, 1, mode="edge")[1:-1, 2:] | m & ~np.pad(m, 1, mode="edge")[1:-1, :-2]
    out[edge] = [255, 255, 0]
    return out.astype(np.uint8)


def _tile(img: np.ndarray, label: str = "") -> Image.Image:
    im = Image.fromarray(img).resize((TILE, TILE), Image.NEAREST)
    if label:
        ImageDraw.Draw(im).text((4, 4), label, fill=(255, 255, 0))
    return im


def _na() -> np.ndarray:
    return np.full((TILE, TILE, 3), 40, np.uint8)


def preview_image_dataset(directory: Path, out: Path, classes: list[str] | None = None, per_class: int = 8,
                          seed: int = 0, progress=None) -> list[Path]:
    """One sheet per class (anomalous samples first, picked with `seed`); returns the PNG paths."""
    directory, out = Path(directory), Path(out)
    ds = open_dataset(directory, mvtec3d.LAYOUT)
    known = ds.classes()
    for c in classes or []:
        if c not in known:
            raise AnomalygenError(f"{directory}: no class {c!r}; classes: {', '.join(known)}")
    records = {}
    mf = directory / "manifest.json"
    if mf.is_file():
        try:
            for r in json.loads(mf.read_text()).get("samples", []):
                records[(r.get("cls"), r.get("split"), r.get("defect"), r.get("name"))] = r
        except (json.JSONDecodeError, AttributeError):
            records = {}
    rng = np.random.default_rng(seed)
    paths = []
    todo = list(classes or known)
    for cls in (progress(todo, len(todo)) if progress else todo):
        refs = ds.samples(cls)
        bad = [r for r in refs if r.defect != GOOD]
        good = [r for r in refs if r.defect == GOOD]
        pick = [bad[i] for i in sorted(rng.permutation(len(bad))[:per_class])]
        pick += [good[i] for i in sorted(rng.permutation(len(good))[:max(0, per_class - len(pick))])]
        if not pick:
            continue
        train = {r.name: r for r in refs if r.split == "train"}
        rows = []
        for ref in pick:
            s = ref.load()
            rgb = s.rgb if s.rgb is not None else np.zeros(s.xyz.shape[:2] + (3,), np.uint8)
            if rgb.ndim == 2:
                rgb = np.repeat(rgb[..., None], 3, axis=2)
            rec = records.get((ref.cls, ref.split, ref.defect, ref.name), {})
            src = train.get(rec.get("train_name")) if rec else None
            if src is not None:
                z0 = src.load().xyz[..., 2]
                dz = np.where((z0 != 0) & (s.xyz[..., 2] != 0), s.xyz[..., 2] - z0, 0)
                dz_tile = _tile(_diverging(dz), f"dZ max {np.abs(dz).max() * 1000:.2f}e-3")
            else:
                dz_tile = _tile(_na(), "dZ n/a")
            label = f"{ref.split}/{ref.defect}/{ref.name}"
            ratio = f"gt {s.mask.mean() * 100:.2f}%"
            rows.append([_tile(rgb, label), _tile(relief(s.xyz), "depth (shaded xyz)"), dz_tile,
                         _tile(mask_overlay(rgb, s.mask), ratio)])
        sheet = Image.new("RGB", (4 * TILE, len(rows) * TILE))
        for i, row in enumerate(rows):
            for j, t in enumerate(row):
                sheet.paste(t, (j * TILE, i * TILE))
        out.mkdir(parents=True, exist_ok=True)
        p = out / f"{cls}.png"
        from anomalygen.io import atomic_path

        with atomic_path(p) as tmp:
            sheet.save(tmp)
        paths.append(p)
    return paths
