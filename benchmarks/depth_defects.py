"""Throughput of DAS3D synthesis at 256 x 256: numpy (1 core), torch batched, and the pnoise2 reference.

    python benchmarks/depth_defects.py [--size 256] [--batch 32] [--seconds 3] [--device cpu|cuda]

Prints Perlin noise images/s (pnoise2 per pixel vs vectorized numpy vs batched torch) and
full depth+RGB defect samples/s (Eq. 1-8 on a rendered scene). numpy runs on one core
(BLAS/OpenMP threads pinned to 1 before import); torch on cpu too unless --torch-threads. Figures depend on the machine and on its other load.
"""

from __future__ import annotations

import argparse
import os
import time
import timeit

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def rate(fn, seconds: float, per_call: int = 1) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n * per_call / (time.perf_counter() - t0)


def best_rate(fn, seconds: float, per_call: int = 1) -> float:
    """Best of 3 windows: other processes on a shared machine only ever slow a window down."""
    return max(rate(fn, seconds / 3, per_call) for _ in range(3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--torch-threads", type=int, default=0, help="default: 1 on cpu (like numpy), all on cuda")
    a = ap.parse_args()

    import noise
    import torch

    from anomalygen.depth.perlin import perlin_grid_np, perlin_grid_torch
    from anomalygen.depth.synth import DAS3DConfig, draw_params, synthesize
    from anomalygen.depth.synth_torch import depth_defect_batch
    from anomalygen.depth.preprocess import remove_background
    from anomalygen.depth.textures import TextureSource
    from anomalygen.recipes import load_recipe
    from anomalygen.render.dataset import RenderConfig, render_sample

    torch.set_num_threads(a.torch_threads or (1 if a.device == "cpu" else torch.get_num_threads()))
    s, b = a.size, a.batch
    print(f"size {s}x{s}, torch batch {b}, device {a.device}, torch threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}, load avg {os.getloadavg()[0]:.2f} (other processes share these cores)")

    # --- Perlin noise images/s: pnoise2 per pixel vs the grid implementations
    rng = np.random.default_rng(0)
    print("\nPerlin noise images/s (one octave; best of several timing runs)")
    print(f"  {'size':>5s} {'lattice cells':>14s} {'pnoise2 loop':>13s} {'numpy grid':>11s} {'ratio':>6s}")
    ref_rates = []
    for size, res in ((s, (4, 4)), (s, (64, 64)), (800, (4, 4)), (800, (64, 64))):
        ys = (np.arange(size) * res[0] / size).astype(np.float32)
        xs = (np.arange(size) * res[1] / size).astype(np.float32)

        def ref_image():
            return [[noise.pnoise2(float(x), float(y)) for x in xs] for y in ys]

        r_ref = 1.0 / min(timeit.repeat(ref_image, number=1, repeat=3))
        if size == s:
            ref_rates.append(r_ref)  # pnoise2's cost does not depend on the lattice
        got = perlin_grid_np((size, size), res)
        assert np.abs(got - np.array(ref_image())).max() < 1e-5
        r_np = best_rate(lambda: perlin_grid_np((size, size), res), a.seconds)
        print(f"  {size:5d} {str(res):>14s} {r_ref:13.2f} {r_np:11.1f} {r_np / r_ref:5.0f}x")
    mix = [(2 ** int(rng.integers(0, 7)), 2 ** int(rng.integers(0, 7))) for _ in range(b)]
    perms = np.stack([rng.permutation(256) for _ in range(b)])
    r_np_mix = best_rate(lambda: [perlin_grid_np((s, s), mix[k], perms[k]) for k in range(b)], a.seconds, b)

    def torch_noise():
        out = perlin_grid_torch(b, (s, s), np.array(mix), perm=perms, device=a.device)
        if a.device != "cpu":
            torch.cuda.synchronize()
        return out

    r_t = best_rate(torch_noise, a.seconds, b)
    r_ref = float(np.mean(ref_rates))
    print(f"  DRAEM mix of cells 2^U{{0..6}} per axis at {s}: numpy {r_np_mix:.1f} images/s "
          f"({r_np_mix / r_ref:.0f}x pnoise2's {r_ref:.1f}), torch batched ({b}) {r_t:.1f} images/s")

    # --- full synthesis samples/s on a rendered scene
    rcfg = RenderConfig.from_recipe({**load_recipe("render-mvtec3d"), "size": s})
    sample, _ = render_sample("potato", "train", "good", 0, 0, rcfg)
    fg = remove_background(sample.xyz)
    cfg = DAS3DConfig.from_recipe(load_recipe("das3d"))
    tex = TextureSource()
    rng = np.random.default_rng(0)
    r_full = rate(lambda: synthesize(sample.xyz, sample.rgb, fg, cfg, rng, tex), a.seconds)
    r_depth_np = rate(lambda: synthesize(sample.xyz, None, fg, cfg, rng, tex), a.seconds)
    z = torch.as_tensor(np.stack([sample.xyz[..., 2]] * b), device=a.device)
    fgt = torch.as_tensor(np.stack([fg] * b), device=a.device)
    sc = torch.full((b,), 0.1, device=a.device)

    def torch_depth():
        params = [draw_params(rng, cfg, (s, s)) for _ in range(b)]
        out = depth_defect_batch(z, fgt, params, cfg, sc)
        if a.device != "cpu":
            torch.cuda.synchronize()
        return out

    r_depth_t = rate(torch_depth, a.seconds, b)
    print("\nDAS3D synthesis samples/s")
    print(f"  {'numpy depth only (Eq. 1-7), 1 core':34s} {r_depth_np:10.2f}")
    print(f"  {'numpy depth + RGB (Eq. 1-8), 1 core':34s} {r_full:10.2f}")
    print(f"  {'torch batched depth (Eq. 1-7)':34s} {r_depth_t:10.2f}")
    print("  (numpy figures include redraws until M* meets depth.anomaly_ratio; torch: one draw per item)")


if __name__ == "__main__":
    main()
