"""`anomalygen view DIR --out page.html`: one self-contained HTML page to turn every sample in 3D.

Dispatches on what DIR is, as `preview` does: a detector run (run.json) -> the run's tasks
(anomalygen.detectors.reports.view.run_groups), any dataset layout -> its classes
(anomalygen.view.datasets.dataset_groups); anomalygen.view.page.write_page writes the page.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from anomalygen.view.page import claim_page, write_page


def view(directory: str | Path, out: str | Path | None = None, classes: list[str] | None = None,
         max_points: int = 30_000, max_mb: float = 45.0, overwrite: bool = False, progress=None):
    """Write the page for a dataset or run folder; returns its PageSummary."""
    directory = Path(directory)
    out = Path(out) if out else directory.resolve().parent / f"{directory.resolve().name}.html"
    claim_page(out, overwrite)
    if (directory / "run.json").is_file():
        from anomalygen.detectors.reports.view import run_groups

        groups, about = run_groups(directory, classes)
        kind, title = "run", f"{directory.resolve().name}: {about.get('detector')} on {Path(str(about.get('data'))).name}"
    else:
        from anomalygen.view.datasets import dataset_groups

        groups, about = dataset_groups(directory, classes)
        kind, title = "dataset", f"{directory.resolve().name} ({about['layout']})"
    return write_page(out, groups, title, about, kind=kind, max_points=max_points, max_mb=max_mb, progress=progress)


@click.command("view")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="HTML file to write (default: DIR.html, beside the folder).")
@click.option("--classes", default=None, help="Comma-separated classes (a run: tasks testing them). Default: all.")
@click.option("--max-points", type=click.IntRange(256), default=30_000, show_default=True,
              help="Most points shown per sample; larger clouds are thinned (farthest-point sampling).")
@click.option("--max-mb", type=click.FloatRange(1, 2000), default=45.0, show_default=True,
              help="Page size budget in MB; clouds are thinned further as needed to stay under it.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file that is not an anomalygen page.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(directory, out, classes, max_points, max_mb, overwrite, quiet):
    """A self-contained HTML page to look at every sample in 3D: turn, zoom, step through.

    Opens in any browser with WebGL, offline (the viewer library and the data are inside the
    file). Lists classes and their samples; each sample is an orbitable point cloud with its
    anomalous points red (an MVTec 3D-AD scan: its points in their RGB) beside its manifest
    record. For a detector run (train-detector output): the predicted map beside the ground
    truth, with a threshold slider. Clouds are thinned to fit --max-points and --max-mb; the
    page states how many points it shows of how many. For PNG contact sheets: `anomalygen preview`.

    \b
    Examples:
      anomalygen view out/anomaly-shapenet --out out/anomaly-shapenet.html
      anomalygen view out/small --classes bowl0 --max-points 8000 --out bowl0.html
      anomalygen view runs/btf --out runs/btf.html
    """
    from tqdm import tqdm

    bar = None if quiet else (lambda it, total: tqdm(it, total=total, desc="view", unit="sample", file=sys.stderr))
    page = view(directory, out, classes.split(",") if classes else None, max_points, max_mb, overwrite, bar)
    click.echo(str(page.path))
    what = "task" if (Path(directory) / "run.json").is_file() else "class"
    click.echo(f"{page.bytes / 1e6:.1f} MB, {page.samples} samples in {page.groups} "
               f"{what if page.groups == 1 else what + ('s' if what == 'task' else 'es')}", err=True)
    if page.thinned:
        click.echo(f"{page.thinned} clouds thinned for the page (fewest points shown: {page.fewest_shown:,}; largest cloud: "
                   f"{page.largest:,}); raise --max-points or --max-mb, or pick --classes, for denser ones", err=True)
