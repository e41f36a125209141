"""Predicted scores of one task's test split on disk: RUN/scores/<task>.npz.

One compressed npz per task holds, in test-split order, each sample's name and defect
type, its object score (float64) and its whole anomaly map. Maps of every shape are kept
in one flat float16 array with their shapes beside it ((N, 0) for a per-point map of N
points, (H, W) for a per-pixel map), so `anomalygen preview RUN` and later analysis can
read predictions back without rescoring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from anomalygen.io import atomic_path

SCORES_DIR = "scores"


def task_scores_file(run_dir: str | Path, task_name: str) -> Path:
    """Where a task's scores live in a run (or evaluation output) folder."""
    return Path(run_dir) / SCORES_DIR / f"{task_name.replace('/', '_')}.npz"


def write_scores(path: str | Path, names: Sequence[str], defects: Sequence[str], scores: Sequence[float],
                 maps: Sequence[np.ndarray]) -> Path:
    """Write one task's predictions atomically; maps are (N,) per point or (H,W) per pixel."""
    flat = np.concatenate([m.ravel() for m in maps]).astype(np.float16) if maps else np.zeros(0, np.float16)
    shapes = np.array([m.shape if m.ndim == 2 else (m.shape[0], 0) for m in maps], np.int64).reshape(-1, 2)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, names=np.array(names), defects=np.array(defects),
                                scores=np.array(scores, np.float64), maps=flat, shapes=shapes)
    return Path(path)


def read_scores(path: str | Path) -> dict:
    """A task's predictions: names, defects, scores (float64 array) and the list of maps (float32)."""
    from anomalygen.detectors.stored import reading

    with reading(path, "scores file"):
        z = np.load(path, allow_pickle=False)
        maps, off = [], 0
        for h, w in z["shapes"]:
            n = h * w if w else h
            m = z["maps"][off:off + n].astype(np.float32)
            maps.append(m.reshape(h, w) if w else m)
            off += n
        return {"names": list(z["names"]), "defects": list(z["defects"]), "scores": z["scores"], "maps": maps}
