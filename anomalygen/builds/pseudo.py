"""`pseudo-anomalies` driver: a labeled sample of 3DzAL pseudo-anomalous patches, and what the random CNN picked.

Input: an MVTec 3D-AD-layout tree, or (no path) the rendered default. The training samples of
one class are the normal samples; training samples of the other classes are the task-irrelevant
data whose points of interest (anomalygen.pseudo, an untrained ResNet-50) are attached to them.
Every cloud is prepared as the 3DzAL detector prepares it: resized (nearest) to `size` and its
background removed (anomalygen.scans).

Output, under the output-folder rule of every writing command (anomalygen.io.output_dir: an empty
folder, an earlier pseudo-anomalies output, which is written again, or any folder with --overwrite;
locked against a second writer). Each file is written atomically and manifest.json last, so a
folder with a manifest is complete:
    patches.npz     points (n,k,3) float32, labels (n,k) uint8 (1 = pseudo-anomalous point),
                    kind (n,) "adding" | "removing", anchor (n,3), normal (n,) source sample
    interest.npz    per task-irrelevant sample: its name, its points of interest and soft mask A
    preview.png     one row per task-irrelevant sample: relief | soft mask A | the points picked
    manifest.json   inputs, settings, seed, and per patch its kind, source and labeled count
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from anomalygen.builds.depth import list_sources, parse_input
from anomalygen.errors import AnomalygenError
from anomalygen.io import atomic_path, write_text_atomic
from anomalygen.io.atomic import clean_temp
from anomalygen.io.output_dir import check_out_path, check_owner, claim_output
from anomalygen.pseudo import ADDING, REMOVING, PatchSettings, points_of_interest, pseudo_patches
from anomalygen.scans import BackgroundConfig, remove_background, resize_sample
from anomalygen.seeds import path_seed


COMMAND = "pseudo-anomalies"
MANIFEST = "manifest.json"


def prepare(xyz: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """xyz resized to size x size (nearest), background zeroed (BTF's plane + DBSCAN removal)."""
    small, _, _ = resize_sample(np.asarray(xyz, np.float32), None, None, size)
    small = small.copy()
    if np.any(small != 0):
        small[~remove_background(small, BackgroundConfig(), np.random.default_rng(seed))] = 0
    return small


def pseudo_anomalies(out, input_spec: str = "mvtec3d", normal_class: str | None = None,
                     irrelevant: list[str] | None = None, n_patches: int = 32, points: int = 64,
                     tau: float = 0.001, size: int = 224, per_class: int = 2, seed: int = 0, cnn_seed: int = 0,
                     kinds: tuple[str, ...] = (ADDING, REMOVING), device: str = "cpu", progress=None,
                     overwrite: bool = False) -> Path:
    """Write OUT (see the module doc); returns its path. `progress(iterable, total)` wraps the sample loop."""
    out = Path(out)
    check_out_path(out)
    check_owner(out, COMMAND, overwrite)
    for name, value, lo in (("--patches", n_patches, 1), ("--points", points, 4), ("--size", size, 16),
                            ("--per-class", per_class, 1)):
        if value < lo:
            raise AnomalygenError(f"{name} must be at least {lo}, got {value}")
    if not 0 < tau <= 1:
        raise AnomalygenError(f"--tau must be in (0, 1], got {tau}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise AnomalygenError("--device cuda requested but no CUDA GPU is available; use --device cpu")
    input_path = parse_input(input_spec)
    if input_path is not None and not input_path.is_dir():
        raise AnomalygenError(f"{input_path}: no such directory")
    sources = list_sources(input_path, None, seed)
    classes = list(sources)
    normal_class = normal_class or classes[0]
    if normal_class not in classes:
        raise AnomalygenError(f"class {normal_class!r} is not in the input; it holds: {', '.join(classes)}")
    others = [c for c in classes if c != normal_class] if irrelevant is None else irrelevant
    for c in others:
        if c not in classes or c == normal_class:
            raise AnomalygenError(f"task-irrelevant class {c!r} must be one of the input's other classes: "
                                  f"{', '.join(x for x in classes if x != normal_class)}")
    if ADDING in kinds and not others:
        raise AnomalygenError("adding patches need at least one task-irrelevant class besides the normal one")
    created = not out.exists()
    claim_output(out, COMMAND, overwrite)  # every input checked: now the folder is ours, locked
    try:
        return _make(out, sources, normal_class, others, n_patches, points, tau, size, per_class, seed, cnn_seed,
                     kinds, device, progress, input_spec)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _make(out: Path, sources: dict, normal_class: str, others: list[str], n_patches: int, points: int, tau: float,
          size: int, per_class: int, seed: int, cnn_seed: int, kinds: tuple[str, ...], device: str, progress,
          input_spec: str) -> Path:
    pick = lambda c: _spread([s for s in sources[c] if s.split == "train"], per_class)  # noqa: E731
    normals, aux = pick(normal_class), [s for c in others for s in pick(c)]
    todo = [("normal", s) for s in normals] + [("irrelevant", s) for s in aux]
    wrap = progress or (lambda it, total: it)
    grids: dict[str, list] = {"normal": [], "irrelevant": []}
    for role, src in wrap(todo, len(todo)):
        grids[role].append((f"{src.cls}/{src.split}/{src.name}", prepare(src.load().xyz, size, seed)))
    interest = []
    if grids["irrelevant"]:  # one batch through the random CNN
        batch = np.stack([x for _, x in grids["irrelevant"]])
        masks, softs = points_of_interest(batch, tau, cnn_seed, device)
        interest = [(name, x, m & np.any(x != 0, axis=-1), a)
                    for (name, x), m, a in zip(grids["irrelevant"], masks, softs)]
    rng = np.random.default_rng(path_seed(seed, "pseudo-anomalies", normal_class))
    settings = PatchSettings(k=points)
    pools = [x[m] for _, x, m, _ in interest]
    patches, origin = [], []
    for i in range(n_patches):
        name, x = grids["normal"][i % len(grids["normal"])]
        cloud = x[np.any(x != 0, axis=-1)]
        if len(cloud) <= points:
            raise AnomalygenError(f"{name}: {len(cloud)} object points at --size {size}, a patch needs more than {points}")
        patches += pseudo_patches(cloud, pools, 1, rng, settings, _kind_order(kinds, i))
        origin.append(name)
    return _write(out, patches, origin, interest, {
        "input": input_spec, "normal_class": normal_class, "irrelevant_classes": others, "patches": n_patches,
        "points": points, "tau": tau, "size": size, "per_class": per_class, "seed": seed, "cnn_seed": cnn_seed,
        "kinds": list(kinds)})


def _kind_order(kinds: tuple[str, ...], i: int) -> tuple[str, ...]:
    """The i-th patch's kind, in turn: 1:1 between the kinds whatever the count."""
    return (kinds[i % len(kinds)],)


def _spread(items: list, n: int) -> list:
    idx = np.unique(np.linspace(0, len(items) - 1, min(n, len(items))).round().astype(int)) if items else []
    return [items[i] for i in idx]


def _write(out: Path, patches: list[dict], origin: list[str], interest: list, settings: dict) -> Path:
    """The four files, each atomically; manifest.json (removed first) last, so it marks a complete output."""
    (out / MANIFEST).unlink(missing_ok=True)
    with atomic_path(out / "patches.npz") as tmp:
        np.savez_compressed(tmp, points=np.stack([p["points"] for p in patches]),
                            labels=np.stack([p["labels"] for p in patches]),
                            kind=np.array([p["kind"] for p in patches]),
                            anchor=np.stack([p["anchor"] for p in patches]), normal=np.array(origin))
    with atomic_path(out / "interest.npz") as tmp:
        np.savez_compressed(tmp, names=np.array([n for n, *_ in interest]),
                            masks=np.stack([m for _, _, m, _ in interest]) if interest else np.zeros((0, 1, 1), bool),
                            soft=np.stack([a for *_, a in interest]) if interest else np.zeros((0, 1, 1), np.float32))
    with atomic_path(out / "preview.png") as tmp:
        _preview(tmp, interest)
    records = [{"kind": p["kind"], "normal": o, "anomalous_points": int(p["labels"].sum())}
               for p, o in zip(patches, origin)]
    counts = {k: sum(r["kind"] == k for r in records) for k in (ADDING, REMOVING)}
    write_text_atomic(out / MANIFEST, json.dumps({"settings": settings, "counts": counts, "patches": records},
                                                 indent=2))
    clean_temp(out)
    return out


def _preview(path: Path, interest: list) -> None:
    """relief | soft mask A | relief with the points of interest (red), one row per task-irrelevant sample."""
    from PIL import Image, ImageDraw

    from anomalygen.preview.images import TILE, mask_overlay, relief

    rows = max(1, len(interest))
    sheet = Image.new("RGB", (3 * TILE, rows * TILE), (30, 30, 30))
    for r, (name, x, mask, soft) in enumerate(interest):
        shade = relief(x)
        heat = (np.stack([soft, soft ** 2, 1 - soft], -1) * 255).astype(np.uint8)
        grown = mask.copy()
        for axis in (0, 1):  # a 0.1 % mask is a few pixels: thicken it so the tile shows it
            grown |= np.roll(grown, 1, axis) | np.roll(grown, -1, axis)
        for c, (img, label) in enumerate(((shade, name), (heat, "random-CNN soft mask A"),
                                          (mask_overlay(shade, grown), f"points of interest ({int(mask.sum())})"))):
            tile = Image.fromarray(img).resize((TILE, TILE), Image.NEAREST)
            ImageDraw.Draw(tile).text((4, 4), label, fill=(255, 255, 0))
            sheet.paste(tile, (c * TILE, r * TILE))
    sheet.save(path)
