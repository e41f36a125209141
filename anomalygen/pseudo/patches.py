"""Pseudo-anomalous patches (3DzAL, Sec. 3.2, Fig. 4): "adding" and "removing" point patches.

A patch is the `k` points nearest an anchor (scipy's KD-tree), returned with a per-point
label (1 = pseudo-anomalous) and the anchor:

adding    a cluster of points of interest of a task-irrelevant sample (a random one of them
          and its nearest interest neighbours) is attached to a normal sample ON its surface, as
          the paper's Fig. 3 shows a bump sits on the object: the cluster is randomly rotated
          (and shrunk to half the patch radius when wider, so that it lands in the patch), then
          placed at the anchor with its lowest point on the anchor's tangent plane, on the outer
          side (the local normal, from the anchor's k neighbours, points toward `viewpoint`, the
          camera of a scan, or away from the cloud's centroid). The patch is the k points of the
          normal cloud plus the cluster nearest the center of the cluster and its surrounding
          normal points (the paper's moved anchor), so it holds normal and added points.
          Label 1 = an added point.
removing  an anchor on the normal surface; a random share of its neighbourhood (the points
          nearest a hole center drawn inside it) is removed, and the patch is searched among
          the remaining points, so it surrounds the hole. Label 1 = a kept point that had a
          removed point among its `RIM_NEIGHBOURS` nearest neighbours: the hole's rim.

`pseudo_patches` draws n patches, adding and removing 1:1, at random anchors of the normal
cloud or at anchors the caller gives (e.g. inside the cell of the normal patch they contrast
with). Every k-nearest search runs on the normal cloud's one KD-tree (built once per cloud and
reused through `tree`): the k nearest points of the cloud plus a cluster are among the cluster
and the cloud's k nearest, and the k nearest kept points among the k + removed nearest ones.
Pure functions: arrays and a numpy Generator in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

ADDING, REMOVING = "adding", "removing"
INSERTED, LIFTED = "inserted", "lifted"  # how an adding cluster is attached (PatchSettings.attach)
RIM_NEIGHBOURS = 4  # neighbours that decide whether a kept point borders the removed region


@dataclass(frozen=True)
class PatchSettings:
    """k          points per patch (3DzAL: 64, the PointNet++ input resolution)
    cluster      (min, max) share of k taken from the task-irrelevant interest points when adding
    remove       (min, max) share of the neighbourhood removed when removing
    neighbourhood  the neighbourhood of a removing patch, in multiples of k
    viewpoint    where the surface is seen from (a scan's camera, (0, 0, 0) in camera coordinates):
                 the outer side an adding cluster sits on; None = away from the cloud's centroid
    attach       inserted: the cluster's points join the patch (the paper); lifted: the patch's own points
                 are raised onto the cluster (a scan's sampling kept; see `_lifted`)
    height       (min, max) factor on a lifted cluster's height
    """

    k: int = 64
    cluster: tuple[float, float] = (0.25, 0.5)
    remove: tuple[float, float] = (0.2, 0.5)
    neighbourhood: float = 2.0
    viewpoint: tuple[float, float, float] | None = None
    attach: str = INSERTED
    height: tuple[float, float] = (0.25, 1.0)


def _rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,3,3) uniformly random rotations (unit quaternions from a 4-D normal draw)."""
    q = rng.normal(size=(n, 4))
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                     np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                     np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], 1)


def _query(tree: cKDTree, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """cKDTree.query of (n,3) points, always (n,k) distances and indices (scipy drops the axis for k = 1)."""
    d, i = tree.query(points, k=k)
    return np.asarray(d).reshape(len(points), k), np.asarray(i).reshape(len(points), k)


def outer_normals(hoods: np.ndarray, outward: np.ndarray) -> np.ndarray:
    """(n,3) unit normals of the surfaces through hoods (n,m,3) (each one's least-variance direction),
    on the side of `outward` (n,3) (a direction from each anchor)."""
    c = hoods - hoods.mean(1, keepdims=True)
    normals = np.linalg.eigh(np.einsum("nmi,nmj->nij", c, c))[1][:, :, 0]
    return normals * np.where(np.einsum("ni,ni->n", normals, outward) >= 0, 1.0, -1.0)[:, None]


def _anchors(normal: np.ndarray, n: int, rng: np.random.Generator, anchors) -> np.ndarray:
    return normal[rng.integers(len(normal), size=n)] if anchors is None else np.asarray(anchors, np.float64).reshape(n, 3)


def adding_patches(normal: np.ndarray, pools: list[np.ndarray], n: int, rng: np.random.Generator,
                   settings: PatchSettings = PatchSettings(), tree: cKDTree | None = None,
                   anchors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n adding patches at once: (patches (n,k,3), labels (n,k) uint8, anchors (n,3)). Each takes a cluster
    of one of `pools` (task-irrelevant points of interest, (M_i,3) each) and attaches it on the surface of
    the normal cloud (N,3) at its anchor (default: random points of the cloud); see the module doc."""
    normal = np.asarray(normal, np.float64)
    tree = tree or cKDTree(normal)
    k = min(settings.k, len(normal))
    anchors = _anchors(normal, n, rng, anchors)
    which = rng.integers(len(pools), size=n)
    sizes = np.rint(rng.uniform(*settings.cluster, size=n) * k).astype(int)
    sizes = np.maximum(1, np.minimum(sizes, np.minimum([len(pools[w]) for w in which], k - 1)))
    width = int(sizes.max())
    clusters, inside = np.zeros((n, width, 3)), np.arange(width)[None, :] < sizes[:, None]
    for i, (w, size) in enumerate(zip(which, sizes)):  # a random interest point and its nearest interest points
        pool = np.asarray(pools[w], np.float64)
        seed_point = pool[rng.integers(len(pool))]
        clusters[i, :size] = pool[_nearest(pool, seed_point, size)]
    counts = sizes[:, None].astype(np.float64)
    clusters -= (clusters * inside[..., None]).sum(1, keepdims=True) / counts[:, :, None]
    clusters = np.einsum("nij,nsj->nsi", _rotations(n, rng), clusters) * inside[..., None]
    reach, hood = _query(tree, anchors, k)
    # a cluster wider than the patch would leave the patch without added points: shrink it (never
    # enlarge) to half the radius of the anchor's k normal neighbours, so its points all make the patch
    spread = np.linalg.norm(clusters, axis=-1).max(1)
    limit = 0.5 * reach.max(1)
    clusters *= np.where((spread > limit) & (limit > 0), limit / np.maximum(spread, 1e-300), 1.0)[:, None, None]
    view = None if settings.viewpoint is None else np.asarray(settings.viewpoint, np.float64)
    outward = (view[None] - anchors) if view is not None else (anchors - normal.mean(0))
    normals = outer_normals(normal[hood], outward)
    lift = np.where(inside, np.einsum("nsi,ni->ns", clusters, normals), np.inf).min(1)
    if settings.attach == LIFTED:
        return _lifted(normal, normal[hood], clusters - (normals * lift[:, None])[:, None, :], inside, normals,
                       anchors, rng, settings)
    clusters = clusters + (anchors - normals * lift[:, None])[:, None, :]  # lowest point on the tangent plane
    # the paper's moved anchor: the center of the cluster and as many of the anchor's surrounding normal points
    ring = np.arange(k)[None, :] < np.maximum(1, k - sizes)[:, None]
    centers = ((clusters * inside[..., None]).sum(1) + (normal[hood] * ring[..., None]).sum(1)) / \
        (sizes + ring.sum(1))[:, None]
    d_normal, near = _query(tree, centers, k)
    d_cluster = np.where(inside, np.linalg.norm(clusters - centers[:, None], axis=-1), np.inf)
    ids = np.concatenate([near, len(normal) + np.broadcast_to(np.arange(width), (n, width))], axis=1)
    points = np.concatenate([normal[near], clusters], axis=1)
    pick = np.argsort(np.concatenate([d_normal, d_cluster], axis=1), axis=1, kind="stable")[:, :k]
    pick = np.take_along_axis(pick, np.argsort(np.take_along_axis(ids, pick, 1), axis=1), 1)  # cloud order, added last
    patches = np.take_along_axis(points, pick[..., None], 1)
    labels = (np.take_along_axis(ids, pick, 1) >= len(normal)).astype(np.uint8)
    return patches.astype(np.float32), labels, anchors.astype(np.float32)


def _lifted(normal, hoods, clusters, inside, normals, anchors, rng, settings):
    """Adding as a scanner would see it: each patch point (hoods (n,k,3), the anchor's k nearest) is moved along
    the outward normal onto the attached cluster (clusters (n,S,3) relative to the anchor, heights >= 0 along
    `normals`, scaled by a draw from settings.height), whose surface is a max of Gaussian mounds, one per
    cluster point, as wide as the patch's point spacing. The points stay where the scan sampled them, only
    higher: no point is added, so the patch's density does not tell it apart. Label 1 = a point lifted by
    more than a tenth of the spacing."""
    n, k = hoods.shape[:2]
    rel = hoods - anchors[:, None, :]
    heights = np.einsum("nsi,ni->ns", clusters, normals) * rng.uniform(*settings.height, size=n)[:, None]
    flat = lambda v: v - np.einsum("n...i,ni->n...", v, normals)[..., None] * normals[:, None, :]  # noqa: E731
    lateral = np.linalg.norm(flat(rel)[:, :, None, :] - flat(clusters)[:, None, :, :], axis=-1)      # (n,k,S)
    spacing = np.median(np.sort(np.linalg.norm(rel[:, :, None] - rel[:, None], axis=-1), axis=2)[:, :, 1], axis=1)
    mounds = np.where(inside[:, None, :], heights[:, None, :] * np.exp(-0.5 * (lateral / spacing[:, None, None]) ** 2), 0)
    lift = mounds.max(2)                                                                             # (n,k)
    patches = hoods + lift[..., None] * normals[:, None, :]
    labels = (lift > 0.1 * spacing[:, None]).astype(np.uint8)
    return patches.astype(np.float32), labels, anchors.astype(np.float32)


def removing_patches(normal: np.ndarray, n: int, rng: np.random.Generator, settings: PatchSettings = PatchSettings(),
                     tree: cKDTree | None = None, anchors: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n removing patches at once: (patches (n,k,3), labels (n,k) uint8, anchors (n,3)). Each is the k points
    nearest its anchor (default: random points of the normal cloud (N,3)) after a random share of the
    anchor's neighbourhood was removed; labels mark the hole's rim."""
    normal = np.asarray(normal, np.float64)
    tree = tree or cKDTree(normal)
    anchors = _anchors(normal, n, rng, anchors)
    big = int(min(len(normal), max(settings.k + 1, round(settings.neighbourhood * settings.k))))
    _, hood = _query(tree, anchors, big)
    share = rng.uniform(*settings.remove, size=n)
    n_remove = np.clip(np.rint(share * big).astype(int), 1, max(1, len(normal) - settings.k))
    rows = np.arange(n)
    hole_centers = normal[hood[rows, rng.integers(min(big, settings.k // 2 + 1), size=n)]]
    _, removed = _query(tree, hole_centers, int(n_remove.max()))
    gone = np.zeros((n, len(normal)), bool)
    gone[np.repeat(rows, removed.shape[1]), removed.ravel()] = (np.arange(removed.shape[1])[None, :] <
                                                                n_remove[:, None]).ravel()
    k = min(settings.k, len(normal) - int(n_remove.max()))
    _, near = _query(tree, anchors, min(len(normal), k + int(n_remove.max())))  # the k nearest kept are among them
    order = np.argsort(gone[rows[:, None], near], axis=1, kind="stable")[:, :k]  # kept first, nearest first
    chosen = np.sort(np.take_along_axis(near, order, 1), axis=1)
    _, nb = _query(tree, normal[chosen.ravel()], min(RIM_NEIGHBOURS + 1, len(normal)))
    labels = gone[np.repeat(rows, k)[:, None], nb[:, 1:]].any(1).reshape(n, k).astype(np.uint8)
    return normal[chosen].astype(np.float32), labels, anchors.astype(np.float32)


def _nearest(points: np.ndarray, center: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k points nearest `center` (ties broken by index), nearest first."""
    d = np.linalg.norm(points - center, axis=1)
    return np.lexsort((np.arange(len(d)), d))[:k]


def adding_patch(normal: np.ndarray, interest: np.ndarray, rng: np.random.Generator,
                 settings: PatchSettings = PatchSettings(), tree: cKDTree | None = None,
                 anchor: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One adding patch: (patch (k,3), labels (k,) uint8, anchor (3,)); see `adding_patches`."""
    patches, labels, anchors = adding_patches(normal, [interest], 1, rng, settings, tree, anchor)
    return patches[0], labels[0], anchors[0]


def removing_patch(normal: np.ndarray, rng: np.random.Generator, settings: PatchSettings = PatchSettings(),
                   tree: cKDTree | None = None, anchor: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One removing patch: (patch (k,3), labels (k,) uint8, anchor (3,)); see `removing_patches`."""
    patches, labels, anchors = removing_patches(normal, 1, rng, settings, tree, anchor)
    return patches[0], labels[0], anchors[0]


def pseudo_patches(normal: np.ndarray, interest: list[np.ndarray], n: int, rng: np.random.Generator,
                   settings: PatchSettings = PatchSettings(), kinds: tuple[str, ...] = (ADDING, REMOVING),
                   tree: cKDTree | None = None, anchors: np.ndarray | None = None) -> list[dict]:
    """n pseudo-anomalous patches of one normal cloud, each {"kind", "points" (k,3), "labels" (k,),
    "anchor" (3,)}: the `kinds` in turn (adding and removing 1:1 by default; which comes first is drawn).

    interest: the points of interest of task-irrelevant samples, one (M_i,3) array each; an adding
    patch takes its cluster from one of them at random. tree: the normal cloud's cKDTree (built here
    when not given); anchors: (n,3) anchor points (default: random points of the cloud)."""
    unknown = set(kinds) - {ADDING, REMOVING}
    if unknown or not kinds:
        raise ValueError(f"pseudo-anomaly kinds must be among {ADDING}, {REMOVING}; got {kinds!r}")
    pools = [np.asarray(p) for p in interest if len(p)]
    if ADDING in kinds and not pools:
        raise ValueError("adding patches need points of interest of at least one task-irrelevant sample")
    if anchors is not None and len(anchors) != n:
        raise ValueError(f"{len(anchors)} anchors for {n} patches")
    normal = np.asarray(normal, np.float64)
    first = int(rng.integers(len(kinds)))
    tree = tree or cKDTree(normal)
    anchors = _anchors(normal, n, rng, anchors)
    order = [kinds[(i + first) % len(kinds)] for i in range(n)]
    out: list[dict] = [{} for _ in range(n)]
    for kind in kinds:
        idx = [i for i, kd in enumerate(order) if kd == kind]
        if not idx:
            continue
        if kind == ADDING:
            pts, lab, at = adding_patches(normal, pools, len(idx), rng, settings, tree, anchors[idx])
        else:
            pts, lab, at = removing_patches(normal, len(idx), rng, settings, tree, anchors[idx])
        for j, i in enumerate(idx):
            out[i] = {"kind": kind, "points": pts[j], "labels": lab[j], "anchor": at[j]}
    return out


def normal_patch(normal: np.ndarray, rng: np.random.Generator, k: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(patch (k,3), anchor (3,)): the k points of the normal cloud nearest a random anchor (a positive)."""
    normal = np.asarray(normal, np.float64)
    anchor = normal[rng.integers(len(normal))]
    _, near = cKDTree(normal).query(anchor, k=min(k, len(normal)))
    return normal[np.sort(np.atleast_1d(near))].astype(np.float32), anchor.astype(np.float32)
