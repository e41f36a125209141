"""Point operations every 3D detector needs, in pure PyTorch (CPU or GPU unchanged).

Peers ship these as custom CUDA extensions (pointnet2_ops, KNN_CUDA, chamfer_dist)
that often fail to build; these are vectorized torch versions with the same
semantics. All functions accept a batch (B,N,D) or a single cloud (N,D).
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch

# Pairwise-distance blocks are computed in chunks of queries so that memory stays
# bounded (chunk x N floats) on 30K-point clouds.
DEFAULT_CHUNK = 4096


@contextlib.contextmanager
def _single_cpu_thread(device: torch.device):
    """Run a loop of small sequential kernels on one CPU thread.

    FPS is n dependent steps over (B,D,N) arrays: thread fork/join costs more than it saves,
    and on a busy machine it collapses (measured on our 2-core CI box under load: 1024 of
    30,000 points in 0.16 s on 1 thread vs 2.3-7.1 s on 2). GPU work is unaffected.
    """
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def float32(fn):
    """`fn` runs with autocast off and its half-precision tensor arguments (bf16, fp16) in float32.

    For distances, losses and score maps under bf16 autocast (`run.precision`): bf16 keeps 8 bits
    of mantissa, so |a|^2 + |b|^2 - 2ab cancels to noise and nearby scores tie or swap ranks.
    The networks' own layers stay in bf16; only what compares their outputs is lifted."""
    def lift(x):
        return x.float() if isinstance(x, torch.Tensor) and x.dtype in (torch.bfloat16, torch.float16) else x

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next((a.device.type for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), "cpu")
        # autocast exists on cpu and cuda; other devices (meta: shapes only) have nothing to turn off
        with torch.autocast(device, enabled=False) if device in ("cpu", "cuda") else contextlib.nullcontext():
            return fn(*(lift(a) for a in args), **{k: lift(v) for k, v in kwargs.items()})
    return wrapper


def _batched(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if x.dim() == 2:
        return x.unsqueeze(0), True
    if x.dim() != 3:
        raise ValueError(f"expected (N,D) or (B,N,D), got shape {tuple(x.shape)}")
    return x, False


@float32
def farthest_point_sample(points: torch.Tensor, n: int, start: int | torch.Tensor | None = 0,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices (B,n) / (n,) of n points chosen greedily, each farthest from those already chosen.

    Works in any dimension D, so it doubles as PatchCore's greedy k-center coreset.
    `start`: index of the first point (int), per-batch tensor, or None for random (uses `generator`).
    The loop runs n times over vectorized (B,N) updates; there is no loop over points.
    """
    x, single = _batched(points)
    b, num, _ = x.shape
    if not 0 < n <= num:
        raise ValueError(f"cannot sample {n} of {num} points")
    if start is None:
        first = torch.randint(num, (b,), generator=generator, device="cpu").to(x.device)
    elif isinstance(start, torch.Tensor):
        first = start.to(x.device).long().reshape(b)
    else:
        first = torch.full((b,), int(start), dtype=torch.long, device=x.device)
    idx = torch.empty(b, n, dtype=torch.long, device=x.device)
    min_d = torch.full((b, num), float("inf"), dtype=x.dtype, device=x.device)
    # (B,D,N) layout: each update streams D contiguous rows instead of N short (D,) vectors (~2x on CPU).
    xt = x.transpose(1, 2).contiguous()
    dim = xt.shape[1]
    cur = first
    with _single_cpu_thread(x.device):
        for i in range(n):
            idx[:, i] = cur
            c = torch.gather(xt, 2, cur.view(b, 1, 1).expand(b, dim, 1))
            torch.minimum(min_d, (xt - c).square_().sum(1), out=min_d)
            cur = torch.argmax(min_d, dim=1)
    return idx[0] if single else idx


def farthest_point_indices(points: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """(n,) int64 indices of an (N, 3) float32 cloud: `farthest_point_sample` on the CPU, compiled.

    The `fpsample` package's vanilla FPS (C++) runs the same greedy rule in float32 as the torch
    loop, starting at the same point, and picks the same indices (tests/test_detectors_btf.py
    checks it); without the package the torch loop runs.
    """
    pts = np.ascontiguousarray(points, dtype=np.float32)
    if not 0 < n <= len(pts):
        raise ValueError(f"cannot sample {n} of {len(pts)} points")
    try:
        import fpsample
    except ImportError:
        return farthest_point_sample(torch.from_numpy(pts), n, start=start).numpy()
    return np.asarray(fpsample.fps_sampling(pts, n, start_idx=int(start)), dtype=np.int64)


@float32
def knn(query: torch.Tensor, ref: torch.Tensor, k: int, chunk: int = DEFAULT_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances and indices of the k nearest `ref` points of each `query` point, nearest first.

    query (B,M,D) or (M,D); ref (B,N,D) or (N,D). Returns (dist, idx) of shape (B,M,k) or (M,k).
    """
    q, single = _batched(query)
    r, _ = _batched(ref)
    if r.shape[0] != q.shape[0]:
        r = r.expand(q.shape[0], -1, -1)
    if not 0 < k <= r.shape[1]:
        raise ValueError(f"k={k} but the reference holds {r.shape[1]} points")
    dists, idxs = [], []
    for s in range(0, q.shape[1], chunk):
        qc = q[:, s:s + chunk]
        d = torch.cdist(qc, r)
        if k == 1:  # min() is a single pass; topk sorts
            _, ik = d.min(dim=-1, keepdim=True)
        else:
            _, ik = torch.topk(d, k, dim=-1, largest=False, sorted=True)
        # cdist's matrix-product form (|a|^2 + |b|^2 - 2ab) cancels badly for long feature vectors
        # (FPFH: ~1e-4 relative) and which kernel it takes depends on the batch shape, so the k
        # chosen distances are recomputed directly: exact, and the same batched or not
        dk = torch.linalg.norm(qc.unsqueeze(-2) - gather(r, ik), dim=-1)
        if k > 1:
            dk, order = dk.sort(dim=-1)
            ik = ik.gather(-1, order)
        dists.append(dk)
        idxs.append(ik)
    dist, idx = torch.cat(dists, 1), torch.cat(idxs, 1)
    return (dist[0], idx[0]) if single else (dist, idx)


def gather(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """points (B,N,D) indexed by idx (B,...) -> (B,...,D)."""
    b = points.shape[0]
    flat = idx.reshape(b, -1)
    out = torch.gather(points, 1, flat.unsqueeze(-1).expand(-1, -1, points.shape[-1]))
    return out.reshape(*idx.shape, points.shape[-1])


def group(points: torch.Tensor, n_centers: int, k: int, relative: bool = True,
          start: int | None = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split a cloud into patches: FPS centers and each center's k nearest points.

    Returns centers (B,G,3), idx (B,G,k) into the input, and neighbourhoods (B,G,k,3),
    expressed relative to their center when `relative` (Point-MAE / IMRNet convention).
    """
    x, single = _batched(points)
    c_idx = farthest_point_sample(x, n_centers, start=start)
    centers = gather(x, c_idx)
    _, idx = knn(centers, x, k)
    neigh = gather(x, idx)
    if relative:
        neigh = neigh - centers.unsqueeze(2)
    if single:
        return centers[0], idx[0], neigh[0]
    return centers, idx, neigh


@float32
def chamfer_distance(a: torch.Tensor, b: torch.Tensor, norm: str = "l2", chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Chamfer distance per batch item, (B,) or scalar, matching the chamfer_dist package:

    - 'l2': mean over a of squared NN distance + mean over b of squared NN distance (ChamferDistanceL2)
    - 'l1': (mean over a of NN distance + mean over b of NN distance) / 2          (ChamferDistanceL1)
    """
    if norm not in ("l1", "l2"):
        raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
    x, single = _batched(a)
    y, _ = _batched(b)
    d_ab, _ = knn(x, y, 1, chunk)
    d_ba, _ = knn(y, x, 1, chunk)
    d_ab, d_ba = d_ab[..., 0], d_ba[..., 0]
    if norm == "l2":
        out = (d_ab ** 2).mean(1) + (d_ba ** 2).mean(1)
    else:
        out = (d_ab.mean(1) + d_ba.mean(1)) / 2
    return out[0] if single else out
