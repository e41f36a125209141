"""`anomalygen preview DIR`: PNG contact sheets of a dataset or of a detector run.

Dispatches on what DIR is; each kind's renderer lives with the code that knows it:
  - a detector run (has run.json)         -> anomalygen.detectors.reports.preview_run
  - a point-cloud dataset (Anomaly-ShapeNet, Real3D-AD) -> anomalygen.preview.points.preview_point_dataset
  - an MVTec 3D-AD dataset                -> anomalygen.preview.images.preview_image_dataset
Each returns the list of PNG paths it wrote.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import click

from anomalygen.errors import AnomalygenError
from anomalygen.io import detect_layout
from anomalygen.io.atomic import clean_temp
from anomalygen.io.lock import lock_folder
from anomalygen.io.output_dir import check_out_path, claim_output
from anomalygen.limits import class_list

RENDERERS = {
    "run": ("anomalygen.detectors.reports", "preview_run"),
    "anomaly-shapenet": ("anomalygen.preview.points", "preview_point_dataset"),
    "real3d-ad": ("anomalygen.preview.points", "preview_point_dataset"),
    "mvtec3d-ad": ("anomalygen.preview.images", "preview_image_dataset"),
}


def preview(directory: str | Path, out: str | Path | None = None, classes: list[str] | None = None,
            per_class: int = 8, seed: int = 0, progress=None, overwrite: bool = False) -> list[Path]:
    """Write PNG previews of a dataset or detector run; returns their paths. `progress(iterable, total)`
    wraps the classes (e.g. tqdm) where the renderer takes it."""
    directory = Path(directory)
    kind = "run" if (directory / "run.json").is_file() else detect_layout(directory)
    module, func = RENDERERS[kind]
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        raise AnomalygenError(f"previews of {kind} folders are not available in this build") from None
    out = Path(out) if out else directory / "preview"
    if kind != "run":  # a run's renderer owns its folder layout
        from anomalygen.io import open_dataset

        have = open_dataset(directory, kind).classes()
        bad = [c for c in classes or [] if c not in have]
        if bad:  # before the output folder is made
            raise AnomalygenError(f"no class {', '.join(bad)} in {directory}; classes: {', '.join(have)}")
        claim_output(out, "preview", overwrite)
    else:  # a run's preview folder: locked against a second writer too
        check_out_path(out)
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        lock_folder(out)
    extra = {"progress": progress} if progress is not None and "progress" in inspect.signature(fn).parameters else {}
    try:
        paths = fn(directory, out=out, classes=classes, per_class=per_class, seed=seed, **extra)
    except BaseException:
        if kind == "run" and created and not any(out.iterdir()):
            out.rmdir()  # refused before it drew anything: no empty folder left
        raise
    clean_temp(out)
    return paths


@click.command("preview")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the PNGs (default: DIR/preview).")
@click.option("--classes", default=None, help="Comma-separated classes (default: all).")
@click.option("--per-class", type=click.IntRange(1), default=8, show_default=True, help="Samples shown per class sheet.")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=0, show_default=True, help="Which samples are picked.")
@click.option("--overwrite", is_flag=True, help="Write into an --out folder that holds other anomalygen output.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(directory, out, classes, per_class, seed, overwrite, quiet):
    """PNG contact sheets so a person can judge realism and labels at a glance.

    For a point-cloud dataset: per sample the shaded geometry seen from the defect's side,
    the same view with anomalous points red, and two more views.
    For an MVTec 3D-AD dataset: rgb, depth and gt side by side.
    For a detector run (train-detector output): predicted maps next to ground truth.
    To turn the samples in 3D instead: `anomalygen view DIR` (one self-contained HTML page).

    \b
    Example:
      anomalygen preview out/small --classes bowl0,vase1
    """
    from tqdm import tqdm

    bar = None if quiet else (lambda it, total: tqdm(it, total=total, desc="preview", unit="class", file=sys.stderr))
    paths = preview(directory, out, class_list(classes), per_class, seed, progress=bar,
                    overwrite=overwrite)
    for p in paths:
        click.echo(str(p))
    click.echo(f"to turn these samples in 3D (one HTML page, offline): anomalygen view {directory}", err=True)
