"""The loss curve of a fit: one CSV row per optimizer step, and a PNG drawn from the CSV.

The CSV is the record (epoch, step, loss, then each named part of the loss); the plot is
redrawn from it at the end of every fit, so a resumed fit draws the whole curve.
Epochs and steps count from 1.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from anomalygen.io import atomic_path, write_text_atomic

LEAD = ["epoch", "step"]


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    """(columns, rows) of a loss CSV; ([], []) when there is none."""
    if not path.is_file():
        return [], []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def keep_epochs(path: Path, epochs: int) -> None:
    """Drop rows past the first `epochs` epochs (what a resumed fit trains again)."""
    from anomalygen.detectors.stored import reading

    with reading(path, "loss curve"):
        columns, rows = read_rows(path)
        if not columns:
            return
        kept = [r for r in rows if int(r["epoch"]) <= epochs]
    write_text_atomic(path, _csv(columns, kept, header=True))


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append step rows; the first rows written decide the columns (a fit logs the same parts every step)."""
    if not rows:
        return
    columns, _ = read_rows(path)
    header = not columns
    if header:
        columns = LEAD + ["loss"] + sorted(k for k in rows[0] if k not in LEAD and k != "loss")
    with open(path, "a", newline="") as fh:
        fh.write(_csv(columns, rows, header))
        fh.flush()
        os.fsync(fh.fileno())


def _csv(columns: list[str], rows: list[dict], header: bool) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n", extrasaction="ignore")
    if header:
        w.writeheader()
    w.writerows({k: _fmt(v) for k, v in r.items()} for r in rows)
    return buf.getvalue()


def _fmt(v):
    return repr(v) if isinstance(v, float) else v  # repr: the shortest text that reads back exactly


def plot(csv_path: Path, png_path: Path, title: str) -> Path | None:
    """Per-step loss and named parts (thin), per-epoch means (dots); log scale when all positive."""
    columns, rows = read_rows(csv_path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    steps = [int(r["step"]) for r in rows]
    series = [c for c in columns if c not in LEAD]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    positive = True
    for i, name in enumerate(series):
        values = [float(r[name]) for r in rows]
        positive &= all(v > 0 for v in values if math.isfinite(v))
        color = f"C{i}"
        ax.plot(steps, values, color=color, lw=0.8, alpha=0.45 if len(rows) > 50 else 0.9, label=f"{name} (step)")
        ends, means = _epoch_means(rows, name)
        ax.plot(ends, means, "o-", color=color, ms=3, lw=1.5, label=f"{name} (epoch mean)")
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel(f"step ({int(rows[-1]['epoch'])} epochs)")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return Path(png_path)


def _epoch_means(rows: list[dict], name: str) -> tuple[list[int], list[float]]:
    groups: dict[int, list[dict]] = {}
    for r in rows:
        groups.setdefault(int(r["epoch"]), []).append(r)
    ends = [int(g[-1]["step"]) for g in groups.values()]
    means = [sum(float(r[name]) for r in g) / len(g) for g in groups.values()]
    return ends, means
