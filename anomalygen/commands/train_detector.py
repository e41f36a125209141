"""`anomalygen train-detector`: fit a detector per class and (by default) evaluate it."""

from __future__ import annotations

import click

from anomalygen.detectors import available_detectors
from anomalygen.recipes import parse_overrides


@click.command("train-detector")
@click.option("--detector", "detector", required=True,
              help=f"Detector to train: {', '.join(available_detectors())}. Its settings: the recipe section of that name.")
@click.option("--data", required=True, type=click.Path(), help="Dataset folder (Anomaly-ShapeNet, Real3D-AD or MVTec 3D-AD layout).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to create (models, run.json, metrics).")
@click.option("--classes", default=None, help="Comma-separated classes (default: every class of --data).")
@click.option("--train-class", "train_class", default=None,
              help="Zero-shot: train on these classes (comma-separated) ...")
@click.option("--test-class", "test_class", default=None, help="... and test on each of these (3DzAL protocol).")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: recipe run.device = auto).")
@click.option("--recipe", default="detectors", show_default=True, help="Recipe name or YAML path holding the settings.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set btf.points.n_points=4096 (repeatable).")
@click.option("--evaluate/--no-evaluate", default=None, help="Score the test split after training (default: recipe run.evaluate).")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(detector, data, out, classes, train_class, test_class, device, recipe, overrides, evaluate, overwrite, quiet):
    """Train a detector on the normal training samples of each class and save it to OUT.

    Each class gets its own model (OUT/models/<class>); with --train-class A --test-class B
    one model is trained on A and tested on B (zero-shot). Unless --no-evaluate, the test
    split is scored right away and the metrics table printed (same as `anomalygen evaluate OUT`).

    \b
    Examples:
      anomalygen train-detector --detector btf --data out/anomaly-shapenet --out runs/btf
      anomalygen train-detector --detector btf --data mvtec3d --classes bagel,rope --out runs/btf-mv
      anomalygen train-detector --detector btf --data mvtec3d --train-class bagel --test-class carrot,rope --out runs/zs
    """
    from anomalygen.detectors.engine import train_detector
    from anomalygen.detectors.reports import markdown_table

    run = train_detector(detector, data, out, classes=classes, train_classes=train_class, test_classes=test_class,
                         recipe=recipe, overrides=parse_overrides(overrides), device=device, evaluate=evaluate,
                         overwrite=overwrite, progress=not quiet)
    click.echo(f"trained {detector} on {len(run['trained'])} training set(s) -> {out}")
    if "metrics" in run:
        click.echo(markdown_table(run["metrics"]))
    else:
        click.echo(f"next: anomalygen evaluate {out}")
