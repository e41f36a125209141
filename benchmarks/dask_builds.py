"""Benchmark of builds on Dask vs the local process pool, and of the build driver's memory.

(1) samples/s of `build-shapenet` (numpy engine) with the local pool (--workers 2) and with a
    Dask LocalCluster of 2 worker processes x 1 thread (--scheduler), in alternating rounds,
    each into a fresh folder, with the load average beside every figure.
(2) peak resident memory of the driver process (the workers are other processes) while it
    builds N samples, N = 1,600 and 20,000. To make 20,000 samples cheap they are normal
    templates with 64-128 points (the same driver path: plan, resume scan, task submission,
    summary, streamed manifest); the driver's memory does not depend on what a sample costs.
    Peak = VmHWM of this process after resetting it (/proc/self/clear_refs), minus the RSS
    before the build.

    python benchmarks/dask_builds.py                       # 40 classes, 1 round, memory at 1600 and 20000 (pool)
    python benchmarks/dask_builds.py --classes 8 --rounds 2 --skip-memory
    python benchmarks/dask_builds.py --skip-rate --backends local,dask     # driver memory on Dask too
                                                   # (dask scheduler + dask worker processes beside this one)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from anomalygen.builds.shapenet import build_dataset
from anomalygen.recipes import load_recipe


def _load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def rate(classes: int, rounds: int) -> None:
    from distributed import LocalCluster

    recipe = load_recipe("anomaly-shapenet")
    figures: dict[str, list[float]] = {"local pool, 2 processes": [], "Dask LocalCluster, 2 workers x 1 thread": []}
    for r in range(rounds):
        for label in figures:
            out = Path(tempfile.mkdtemp(prefix="bench-dask-")) / "ds"
            # a fresh cluster each round (its start not timed): workers that built these classes before
            # would skip the per-class set-up, which a fresh local pool cannot
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, silence_logs=40) \
                if "Dask" in label else None
            kw = {"scheduler": cluster.scheduler_address} if cluster else {"workers": 2}
            before = _load()
            t0 = time.perf_counter()
            res = build_dataset(out, recipe, classes=classes, **kw)
            dt = time.perf_counter() - t0
            n = len(res.jobs)
            figures[label].append(n / dt)
            print(f"round {r + 1}: {label}: {n} samples, {classes} classes, {dt:.1f} s, {n / dt:.2f} samples/s "
                  f"(before: {before}; after: {_load()})", flush=True)
            if cluster:
                cluster.close()
            shutil.rmtree(out.parent, ignore_errors=True)
    base = figures["local pool, 2 processes"]
    for label, v in figures.items():
        print(f"{label}: mean {sum(v) / len(v):.2f} samples/s over {len(v)} round(s), "
              f"{sum(v) / sum(base):.2f} x the local pool")


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def memory(sizes: list[int], scheduler: bool) -> None:
    recipe = load_recipe("anomaly-shapenet", {"dataset.points": [64, 128], "dataset.write_meshes": "none"})
    cluster, warm = None, Path(tempfile.mkdtemp(prefix="bench-mem-"))
    if scheduler:  # `dask scheduler` and `dask worker` processes, as the README starts them: the driver alone is measured
        cluster = _start_cluster(warm / "scheduler.json")
    kw = {"scheduler": cluster[0]} if cluster else {"workers": 2}
    build_dataset(warm / "w", recipe, classes=2, train_per_class=20, test_per_class=0, **kw)  # imports, caches
    for n in sizes:
        out = warm / f"n{n}"
        per_class = n // 2  # 2 classes: the per-class set-up in the workers stays out of the way
        base = _rss_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        t0 = time.perf_counter()
        res = build_dataset(out, recipe, classes=2, train_per_class=per_class, test_per_class=0, **kw)
        dt = time.perf_counter() - t0
        peak = _rss_kib("VmHWM")
        size = res.manifest.stat().st_size / 2 ** 20
        print(f"driver memory, {'Dask (dask scheduler + dask worker --nworkers 2 --nthreads 1)' if cluster else 'local pool'}: {len(res.jobs)} samples in {dt:.0f} s: "
              f"RSS before {base / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB (+{(peak - base) / 1024:.1f} MiB); "
              f"manifest {size:.1f} MiB; {_load()}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    if cluster:
        for p in cluster[1]:
            p.terminate()
            p.wait(30)
    shutil.rmtree(warm, ignore_errors=True)


def _start_cluster(file: Path):
    import json
    import subprocess
    import sys

    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    sched = subprocess.Popen(dask + ["--scheduler-file", str(file), "--port", "0", "--dashboard-address", ":0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not file.is_file():
        time.sleep(0.5)
    time.sleep(1)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(file),
                               "--nworkers", "2", "--nthreads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = json.loads(file.read_text())["address"]
    from distributed import Client

    with Client(address) as c:
        c.wait_for_workers(2, timeout=120)
    return address, [worker, sched]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", type=int, default=40, help="classes of the rate build (40 = 1600 samples)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds of local pool vs LocalCluster")
    ap.add_argument("--memory", default="1600,20000", help="sample counts of the driver-memory builds")
    ap.add_argument("--backends", default="local", help="driver memory through: local (pool), dask (LocalCluster), or both")
    ap.add_argument("--skip-rate", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    a = ap.parse_args()
    print(f"cores {os.cpu_count()}, {_load()}")
    if not a.skip_rate:
        rate(a.classes, a.rounds)
    if not a.skip_memory:
        sizes = [int(s) for s in a.memory.split(",")]
        for b in a.backends.split(","):
            memory(sizes, b.strip() == "dask")


if __name__ == "__main__":
    main()
