"""`anomalygen validate DIR`."""

from __future__ import annotations

import os
import sys

import click
from tqdm import tqdm

from anomalygen.validate import Bounds, manifest_bounds, validate_dataset


@click.command("validate")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@click.option("--points", nargs=2, type=int, default=None, metavar="MIN MAX",
              help="Allowed points per sample (default: manifest.json's bounds, else unchecked).")
@click.option("--ratio", "ratio", nargs=2, type=float, default=None, metavar="MIN MAX",
              help="Allowed anomaly ratio of anomalous samples (default: manifest.json's, else unchecked).")
@click.option("--workers", type=click.IntRange(1), default=min(4, os.cpu_count() or 1), show_default=True,
              help="Processes reading samples in parallel.")
@click.option("--quiet", is_flag=True, help="No progress bar and no table; only problems.")
def command(directory, points, ratio, workers, quiet):
    """Check a dataset folder as a user's loader would read it.

    Detects the layout (Anomaly-ShapeNet, Real3D-AD, MVTec 3D-AD), checks every
    sample (readable files, finite coordinates, GT .txt holds exactly the .pcd's
    points, labels 0/1, masks the size of their image, anomaly ratio), prints a
    per-class summary and exits 2 listing each bad file when any check fails.

    \b
    Example:
      anomalygen validate out/anomaly-shapenet
      anomalygen validate ~/data/mvtec3d --ratio 0.001 0.5
    """
    bounds = manifest_bounds(directory)
    if points:
        bounds.points = tuple(points)
    if ratio:
        bounds.anomaly_ratio = tuple(ratio)
    bar = None if quiet else (lambda it, total: tqdm(it, total=total, desc="validate", unit="sample", file=sys.stderr))
    report = validate_dataset(directory, Bounds(bounds.points, bounds.anomaly_ratio), workers=workers, progress=bar)
    if not quiet:
        click.echo(f"{report.root}  layout: {report.layout}  samples: {len(report.stats)}")
        click.echo(report.table())
    if not report.ok:
        for p in report.problems:
            click.echo(str(p), err=True)
        click.echo(f"{len(report.problems)} problem(s) in {len({p.path for p in report.problems})} file(s)", err=True)
        sys.exit(2)
    if not quiet:
        click.echo("OK: every sample passed")
