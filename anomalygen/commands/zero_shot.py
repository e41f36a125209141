"""`anomalygen zero-shot`: 3DzAL's train-on-one, test-on-every-other protocol (Tables 1-2)."""

from __future__ import annotations

import click

from anomalygen.detectors import available_detectors
from anomalygen.recipes import parse_overrides


@click.command("zero-shot")
@click.option("--detectors", required=True,
              help=f"Comma-separated detectors, first compared with second: {', '.join(available_detectors())}.")
@click.option("--data", required=True, type=click.Path(), help="MVTec 3D-AD-layout root (e.g. from render-mvtec3d).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the runs (OUT/<detector>/<train class>/) and the matrices; the same command "
                   "continues a killed run there.")
@click.option("--classes", default=None, help="Comma-separated classes of the square, at least 2 (default: every class of --data).")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: recipe run.device = auto).")
@click.option("--recipe", default="detectors", show_default=True, help="Recipe name or YAML path holding the settings.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set btf.images.image_size=112 (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def command(ctx, detectors, data, out, classes, device, recipe, overrides, quiet):
    """Train on each class, test on each other class, and print the matrices.

    Each class of the square trains once and is tested on every other class; the classes
    neither trained nor tested are the task-irrelevant data a detector like zal3d draws
    pseudo anomalies from (on MVTec 3D-AD's 10 classes: 10 x 9 entries, 8 irrelevant classes
    each). Prints pixel AUPRO (Table 1) and image AUROC (Table 2) per detector with per-row
    means, and the mean gain of the first detector over the second. Writes
    OUT/zero-shot.{json,csv,md}; each entry is what `train-detector --train-class A
    --test-class B` gives with the same settings.

    \b
    Examples (the data made by the first command):
      anomalygen render-mvtec3d --classes bagel,carrot,foam --size 64 --out out/rendered-zs
      anomalygen zero-shot --detectors btf --data out/rendered-zs --out runs/zero-shot --set btf.images.image_size=64
      anomalygen zero-shot --detectors btf --data out/rendered-zs --classes bagel,foam --out runs/zs-2 --set btf.images.image_size=64
    """
    from anomalygen.detectors.engine import TrainingInterrupted
    from anomalygen.detectors.zeroshot import matrices_markdown, zero_shot

    try:
        result = zero_shot(detectors, data, out, classes=classes, recipe=recipe, overrides=parse_overrides(overrides),
                           device=device, progress=not quiet)
    except TrainingInterrupted as exc:
        click.echo(f"interrupted: {out} kept; run the same zero-shot command to continue the square", err=True)
        ctx.exit(exc.exit_code)
    click.echo(matrices_markdown(result))
    click.echo(f"wrote {out}/zero-shot.json, zero-shot.csv, zero-shot.md")
