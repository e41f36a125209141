"""Build a dataset on a Dask LocalCluster of worker processes, closed cleanly at the end (~1 min on 2 CPU cores).

    python examples/dask_local_cluster.py [OUT]    # OUT defaults to out/examples/dask_local_cluster
    ANOMALYGEN_EXAMPLE_SMALL=1 python examples/dask_local_cluster.py /tmp/x    # fewer samples and points: ~40 s
"""

import os
import sys
from pathlib import Path

from distributed import LocalCluster
from tqdm import tqdm

from anomalygen.builds.shapenet import build_dataset
from anomalygen.io import open_dataset
from anomalygen.recipes import load_recipe

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "out/examples/dask_local_cluster")
SMALL = os.environ.get("ANOMALYGEN_EXAMPLE_SMALL") == "1"

if __name__ == "__main__":  # worker processes start by importing this file: only the parent builds
    recipe = load_recipe("anomaly-shapenet", {"dataset.points": [4000, 6000]} if SMALL else None)
    # One single-threaded process per worker (the samples are CPU-bound numpy work); worker scratch files go
    # under OUT too. Leaving the `with` block closes the client connections, the workers and the scheduler.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      local_directory=OUT / "dask-scratch", silence_logs=40) as cluster:
        print("scheduler:", cluster.scheduler_address)
        # One task per sample on the cluster's workers; they write into OUT/dataset themselves, so on a real
        # cluster OUT must be a folder every machine mounts at the same path. Same bytes as a local build.
        result = build_dataset(OUT / "dataset", recipe, classes="bowl0" if SMALL else "bowl0,cup1,vase2",
                               train_per_class=1 if SMALL else 4, test_per_class=3 if SMALL else 12,
                               scheduler=cluster.scheduler_address,
                               progress=lambda samples, total: tqdm(samples, total=total, unit="sample"))
    print(result.table())
    print(f"{len(open_dataset(result.out))} samples in {result.out}, built in {result.seconds:.1f} s")
