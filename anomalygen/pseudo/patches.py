"""Pseudo-anomalous patches (3DzAL, Sec. 3.2, Fig. 4): "adding" and "removing" point patches.

A patch is the `k` points nearest an anchor (scipy's KD-tree), returned with a per-point
label (1 = pseudo-anomalous) and the anchor:

adding    a cluster of points of interest of a task-irrelevant sample (a random one of them
          and its nearest interest neighbours) is attached to a normal sample: its geometric
          center is moved onto an anchor on the normal surface (randomly rotated, and shrunk to
          half the patch radius when wider, so that it lands in the patch), and the patch is searched in the normal cloud plus the cluster, so it holds normal
          points and added points. Label 1 = an added point.
removing  an anchor on the normal surface; a random share of its neighbourhood (the points
          nearest a hole center drawn inside it) is removed, and the patch is searched among
          the remaining points, so it surrounds the hole. Label 1 = a kept point that had a
          removed point among its `RIM_NEIGHBOURS` nearest neighbours: the hole's rim.

`pseudo_patches` draws n patches, adding and removing 1:1. Pure functions: arrays and a numpy
Generator in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

ADDING, REMOVING = "adding", "removing"
RIM_NEIGHBOURS = 4  # neighbours that decide whether a kept point borders the removed region


@dataclass(frozen=True)
class PatchSettings:
    """k          points per patch (3DzAL: 64, the PointNet++ input resolution)
    cluster      (min, max) share of k taken from the task-irrelevant interest points when adding
    remove       (min, max) share of the neighbourhood removed when removing
    neighbourhood  the neighbourhood of a removing patch, in multiples of k
    """

    k: int = 64
    cluster: tuple[float, float] = (0.25, 0.5)
    remove: tuple[float, float] = (0.2, 0.5)
    neighbourhood: float = 2.0


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def adding_patch(normal: np.ndarray, interest: np.ndarray, rng: np.random.Generator,
                 settings: PatchSettings = PatchSettings()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patch (k,3), labels (k,) uint8, anchor (3,)): a cluster of `interest` points (a task-irrelevant
    sample's points of interest, (M,3)) attached to the normal cloud (N,3) around a random anchor."""
    normal, interest = np.asarray(normal, np.float64), np.asarray(interest, np.float64)
    k = min(settings.k, len(normal))
    size = int(round(rng.uniform(*settings.cluster) * k))
    size = max(1, min(size, len(interest), k - 1))
    seed_point = interest[rng.integers(len(interest))]
    _, idx = cKDTree(interest).query(seed_point, k=size)
    cluster = interest[np.atleast_1d(idx)]
    cluster = (cluster - cluster.mean(0)) @ _random_rotation(rng).T
    anchor = normal[rng.integers(len(normal))]
    # a cluster wider than the patch would leave the patch without added points: shrink it (never
    # enlarge) to half the radius of the anchor's k normal neighbours, so its points all make the patch
    reach, _ = cKDTree(normal).query(anchor, k=k)
    spread = float(np.linalg.norm(cluster, axis=1).max())
    limit = 0.5 * float(np.max(reach))
    if spread > limit > 0:
        cluster *= limit / spread
    cloud = np.concatenate([normal, cluster + anchor])
    _, near = cKDTree(cloud).query(anchor, k=k)
    near = np.sort(np.atleast_1d(near))
    labels = (near >= len(normal)).astype(np.uint8)
    return cloud[near].astype(np.float32), labels, anchor.astype(np.float32)


def removing_patch(normal: np.ndarray, rng: np.random.Generator, settings: PatchSettings = PatchSettings(),
                   tree: cKDTree | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patch (k,3), labels (k,) uint8, anchor (3,)): the k points nearest a random anchor of the normal
    cloud (N,3) after a random share of the anchor's neighbourhood was removed; labels mark the hole's rim."""
    normal = np.asarray(normal, np.float64)
    tree = tree or cKDTree(normal)
    anchor = normal[rng.integers(len(normal))]
    big = int(min(len(normal), max(settings.k + 1, round(settings.neighbourhood * settings.k))))
    _, hood = tree.query(anchor, k=big)
    hood = np.atleast_1d(hood)
    share = rng.uniform(*settings.remove)
    n_remove = int(np.clip(round(share * len(hood)), 1, len(normal) - settings.k))
    hole_center = normal[hood[rng.integers(min(len(hood), settings.k // 2 + 1))]]
    _, removed = tree.query(hole_center, k=n_remove)
    removed = np.atleast_1d(removed)
    keep = np.ones(len(normal), bool)
    keep[removed] = False
    kept = np.flatnonzero(keep)
    k = min(settings.k, len(kept))
    _, near = cKDTree(normal[kept]).query(anchor, k=k)
    chosen = kept[np.sort(np.atleast_1d(near))]
    _, nb = tree.query(normal[chosen], k=min(RIM_NEIGHBOURS + 1, len(normal)))
    labels = (~keep[nb[:, 1:]]).any(1).astype(np.uint8)
    return normal[chosen].astype(np.float32), labels, anchor.astype(np.float32)


def pseudo_patches(normal: np.ndarray, interest: list[np.ndarray], n: int, rng: np.random.Generator,
                   settings: PatchSettings = PatchSettings(), kinds: tuple[str, ...] = (ADDING, REMOVING)) -> list[dict]:
    """n pseudo-anomalous patches of one normal cloud, each {"kind", "points" (k,3), "labels" (k,),
    "anchor" (3,)}: the `kinds` in turn (adding and removing 1:1 by default; which comes first is drawn).

    interest: the points of interest of task-irrelevant samples, one (M_i,3) array each; an adding
    patch takes its cluster from one of them at random."""
    unknown = set(kinds) - {ADDING, REMOVING}
    if unknown or not kinds:
        raise ValueError(f"pseudo-anomaly kinds must be among {ADDING}, {REMOVING}; got {kinds!r}")
    pools = [np.asarray(p) for p in interest if len(p)]
    if ADDING in kinds and not pools:
        raise ValueError("adding patches need points of interest of at least one task-irrelevant sample")
    first = int(rng.integers(len(kinds)))
    tree = cKDTree(np.asarray(normal, np.float64)) if REMOVING in kinds else None
    out = []
    for i in range(n):
        kind = kinds[(i + first) % len(kinds)]
        if kind == ADDING:
            pts, lab, anchor = adding_patch(normal, pools[rng.integers(len(pools))], rng, settings)
        else:
            pts, lab, anchor = removing_patch(normal, rng, settings, tree)
        out.append({"kind": kind, "points": pts, "labels": lab, "anchor": anchor})
    return out


def normal_patch(normal: np.ndarray, rng: np.random.Generator, k: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(patch (k,3), anchor (3,)): the k points of the normal cloud nearest a random anchor (a positive)."""
    normal = np.asarray(normal, np.float64)
    anchor = normal[rng.integers(len(normal))]
    _, near = cKDTree(normal).query(anchor, k=min(k, len(normal)))
    return normal[np.sort(np.atleast_1d(near))].astype(np.float32), anchor.astype(np.float32)
