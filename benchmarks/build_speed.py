"""The README's main job, `build-shapenet --classes 40` (1,600 samples, 2 workers), timed end to end
in alternating rounds against another checkout (e.g. the tree before a change), with the bytes of the
two outputs compared.

    python benchmarks/build_speed.py --other /path/to/other/checkout [--rounds 2] [--classes 40] [--workers 2]
    python benchmarks/build_speed.py                        # this checkout only

Anchor: issue 17's goal, <= 45 s wall on 2 cores on a quiet machine (62.7 s measured before the
change; 111-152 s before the earlier text and planning work). Each round runs the build in a fresh
process (imports included, as a user runs it) and prints wall seconds, CPU seconds of the build's
processes (user + system), and the 1-minute load average before and after: other processes on the
machine inflate wall time, so read a comparison from rounds taken side by side.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
JOB = ("from anomalygen.builds.shapenet import build_dataset; from anomalygen.recipes import load_recipe; "
       "import sys; build_dataset(sys.argv[1], load_recipe('anomaly-shapenet'), classes=int(sys.argv[2]), "
       "workers=int(sys.argv[3]))")


def tree_digest(root: Path) -> str:
    """sha256 over every output file's path and bytes (the build's own state folder excluded)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".anomalygen" not in p.relative_to(root).parts:
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def one_build(tree: Path, out: Path, classes: int, workers: int) -> tuple[float, float]:
    """(wall s, CPU s of the build's processes) of one build in a fresh process using `tree`'s code."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # run in `tree`: `python -c` puts the working folder first on sys.path, before PYTHONPATH
    subprocess.run([sys.executable, "-c", JOB, str(out), str(classes), str(workers)], env=env, cwd=tree, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--other", type=Path, help="another checkout to time against (its anomalygen is imported)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--classes", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    trees = {"this": HERE, **({"other": a.other.resolve()} if a.other else {})}
    tmp = Path(tempfile.mkdtemp(prefix="build-speed-"))
    digests: dict[str, str] = {}
    print(f"build-shapenet --classes {a.classes} --workers {a.workers}, {os.cpu_count()} cores")
    print(f"{'tree':6s} {'round':>5s} {'wall s':>8s} {'cpu s':>8s} {'load before':>12s} {'load after':>11s}")
    try:
        for r in range(a.rounds):
            for name, tree in (trees.items() if r % 2 == 0 else reversed(trees.items())):
                out = tmp / name
                shutil.rmtree(out, ignore_errors=True)
                la0 = os.getloadavg()[0]
                wall, cpu = one_build(tree, out, a.classes, a.workers)
                print(f"{name:6s} {r + 1:5d} {wall:8.1f} {cpu:8.1f} {la0:12.2f} {os.getloadavg()[0]:11.2f}", flush=True)
                digests.setdefault(name, tree_digest(out))
        if len(digests) == 2:
            same = len(set(digests.values())) == 1
            print(f"output trees: {'the same bytes' if same else 'DIFFERENT bytes'} ({', '.join(digests.values())})")
        print("anchor: <= 45 s wall on 2 cores, quiet machine (issue 17); 62.7 s before")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
