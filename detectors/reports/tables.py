"""Metric tables of a detector run: the one place that knows their columns and formats.

A metrics dict (what `evaluate_run` returns and metrics.json holds) has the run's
detector, data, layout, kind ('points' or 'images'), device, one row per task and the
mean row. From it come metrics.md (the table the CLI prints), metrics.csv (every column,
full precision) and metrics.json (NaN written as null).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from anomalygen.io import write_text_atomic

METRIC_COLUMNS = {
    "points": [("i_auroc", "I-AUROC"), ("point_auroc", "point AUROC")],
    "images": [("i_auroc", "I-AUROC"), ("p_auroc", "P-AUROC"), ("aupro", "AUPRO@0.3")],
}
COST_COLUMNS = [("ms_per_sample", "ms/sample"), ("peak_rss_mib", "peak RSS MiB"), ("gpu_max_allocated_mib", "GPU MiB")]
METRIC_FILES = ("metrics.json", "metrics.csv", "metrics.md")


def _mean(values):
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def summarize(rows: list[dict], kind: str) -> dict:
    """The mean row: metrics and time averaged over tasks, peak memory the largest of them."""
    mean = {"task": "mean", "samples": sum(r["samples"] for r in rows), "anomalous": sum(r["anomalous"] for r in rows)}
    for key, _ in METRIC_COLUMNS[kind] + COST_COLUMNS:
        mean[key] = _mean([r.get(key) for r in rows])
    mean["peak_rss_mib"] = max((r["peak_rss_mib"] for r in rows), default=None)
    gpu = [r["gpu_max_allocated_mib"] for r in rows if r.get("gpu_max_allocated_mib") is not None]
    mean["gpu_max_allocated_mib"] = max(gpu) if gpu else None
    return mean


def _fmt(v, key) -> str:
    if v is None:
        return "n/a"
    if key in ("ms_per_sample", "peak_rss_mib", "gpu_max_allocated_mib"):
        return f"{v:.1f}" if key == "ms_per_sample" else f"{v:.0f}"
    return f"{v:.3f}"


def markdown_table(metrics: dict) -> str:
    """metrics.md: one row per task and the mean, then what the columns measure and any metric not computed."""
    kind = metrics["kind"]
    cols = [("task", "class")] + METRIC_COLUMNS[kind] + [("samples", "test samples")] + COST_COLUMNS
    if not any(r.get("gpu_max_allocated_mib") is not None for r in metrics["rows"]):
        cols = cols[:-1]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in metrics["rows"] + [metrics["mean"]]:
        cells = [str(r[k]) if k in ("task", "samples") else _fmt(r.get(k), k) for k, _ in cols]
        if r is metrics["mean"]:
            cells[0] = "**mean**"
        lines.append("| " + " | ".join(cells) + " |")
    foot = (f"\n{metrics['detector']} on {metrics['data']} ({metrics['layout']}), device {metrics['device']}. "
            "ms/sample: score() only (no file loading). peak RSS: the process's peak resident memory while scoring "
            f"the class{' (lifetime peak: could not reset)' if any(r.get('peak_rss_scope') == 'process' for r in metrics['rows']) else ''}."
            + (f" AUPRO {metrics['aupro_variant']}." if kind == "images" and metrics.get("aupro_variant") else "")
            + (f" {metrics['detector']}: {metrics['description']}." if metrics.get("description") else ""))
    notes = [f"- {r['task']}: {n}" for r in metrics["rows"] for n in r.get("notes", [])]
    return "\n".join(lines) + "\n" + foot + ("\n\nNot computed:\n" + "\n".join(notes) if notes else "") + "\n"


def csv_table(metrics: dict) -> str:
    """metrics.csv: task, counts and every metric and cost column, full precision; empty = not computed."""
    keys = ["task", "samples", "anomalous"] + [k for k, _ in METRIC_COLUMNS[metrics["kind"]] + COST_COLUMNS]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    for r in metrics["rows"] + [metrics["mean"]]:
        w.writerow(["" if r.get(k) is None else r.get(k) for k in keys])
    return buf.getvalue()


def metrics_json(metrics: dict) -> str:
    return json.dumps(metrics, indent=2, default=_nan_safe)


def write_metrics(out: str | Path, metrics: dict) -> list[Path]:
    """Write metrics.json, metrics.csv and metrics.md into `out`; returns their paths."""
    out = Path(out)
    texts = (metrics_json(metrics), csv_table(metrics), markdown_table(metrics))
    return [write_text_atomic(out / name, text) for name, text in zip(METRIC_FILES, texts)]


def _nan_safe(x):
    if isinstance(x, (np.floating, np.integer)):
        v = x.item()
        return None if isinstance(v, float) and math.isnan(v) else v
    raise TypeError(f"not JSON-serializable: {type(x).__name__}")
