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
@click.option("--resume", is_flag=True,
              help="Continue a killed or interrupted run in OUT (same command otherwise): saved models are kept, "
                   "the others continue from their last checkpoint to the same final weights.")
@click.option("--max-minutes", "max_minutes", type=float, default=None, metavar="M",
              help="Training time budget per task, in minutes: when spent, training stops cleanly and the model "
                   "is saved (network detectors).")
@click.option("--devices", type=int, default=1, show_default=True, metavar="N",
              help="N > 1 trains data-parallel (DDP) over N GPUs, or N CPU processes without a GPU (network detectors).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def command(ctx, detector, data, out, classes, train_class, test_class, device, recipe, overrides, evaluate, overwrite,
            resume, max_minutes, devices, quiet):
    """Train a detector on the normal training samples of each class and save it to OUT.

    Each class gets its own model (OUT/models/<class>); with --train-class A --test-class B
    one model is trained on A and tested on B (zero-shot). Unless --no-evaluate, the test
    split is scored right away and the metrics table printed (same as `anomalygen evaluate OUT`).
    Ctrl-C (or SIGTERM) keeps OUT when something can be resumed (exit code 130, SIGTERM 143); otherwise
    OUT is removed.

    \b
    Examples (the data made by the first and third commands):
      anomalygen build-shapenet --classes 40 --out out/anomaly-shapenet
      anomalygen train-detector --detector btf --data out/anomaly-shapenet --classes ashtray0,bottle0 --out runs/btf
      anomalygen render-mvtec3d --classes bagel,tire --out out/rendered
      anomalygen train-detector --detector btf --data out/rendered --out runs/btf-mv
      anomalygen train-detector --detector btf --data out/rendered --train-class bagel --test-class tire --out runs/zs
      anomalygen train-detector --detector btf --data out/rendered --out runs/btf-mv --resume
    """
    from anomalygen.detectors.engine import TrainingInterrupted, train_detector
    from anomalygen.detectors.reports import markdown_table

    try:
        run = train_detector(detector, data, out, classes=classes, train_classes=train_class, test_classes=test_class,
                             recipe=recipe, overrides=parse_overrides(overrides), device=device, evaluate=evaluate,
                             overwrite=overwrite, progress=not quiet, resume=resume, max_minutes=max_minutes,
                             devices=devices)
    except TrainingInterrupted as exc:
        click.echo(str(exc), err=True)
        ctx.exit(exc.exit_code)
    click.echo(f"trained {detector} on {len(run['trained'])} training set(s) -> {out}")
    if "metrics" in run:
        click.echo(markdown_table(run["metrics"]))
    else:
        click.echo(f"next: anomalygen evaluate {out}")
