"""`anomalygen pretrain-detector`: self-supervised pretraining of a detector's network on a shape source."""

from __future__ import annotations

import click

from anomalygen.recipes import parse_overrides

PRETRAINABLE = ("imrnet",)


@click.command("pretrain-detector")
@click.option("--detector", required=True, type=click.Choice(PRETRAINABLE), help="Detector whose network to pretrain.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for model.pt, pretrain.json and the loss curve.")
@click.option("--source", default=None,
              help="Meshes to pretrain on: a ShapeNetCore v2 folder or a folder of meshes (default: the recipe's "
                   "imrnet.pretrain.source, else the procedural catalog).")
@click.option("--recipe", default="detectors", show_default=True, help="Recipe name or YAML path holding the settings.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set imrnet.pretrain.shapes=80 (repeatable).")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: recipe run.device = auto).")
@click.option("--resume", is_flag=True, help="Continue an interrupted pretraining in OUT from its last checkpoint.")
@click.option("--max-minutes", "max_minutes", type=float, default=None, metavar="M",
              help="Time budget in minutes: when spent, training stops cleanly and the weights are saved.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(detector, out, source, recipe, overrides, device, resume, max_minutes, quiet):
    """Pretrain DETECTOR's network on meshes (sampled and augmented on the fly) and save it to OUT.

    Per-class training then starts from it: train-detector --set imrnet.pretrained=OUT.

    \b
    Examples:
      anomalygen pretrain-detector --detector imrnet --recipe imrnet-tiny --out runs/imrnet-pretrained
      anomalygen train-detector --detector imrnet --recipe imrnet-tiny --data out/anomaly-shapenet --classes ashtray0 --set imrnet.pretrained=runs/imrnet-pretrained --out runs/imrnet
    """
    from anomalygen.detectors.engine import recipe_loader_workers, set_threads
    from anomalygen.detectors.imrnet.pretrain import pretrain_imrnet
    from anomalygen.recipes import builtin_recipes, get_key, load_recipe

    rec = load_recipe(builtin_recipes().get(str(recipe), recipe), parse_overrides(overrides))
    set_threads(get_key(rec, "run.threads", None))
    summary = pretrain_imrnet(get_key(rec, detector, {}) or {}, out, source=source,
                              device=device or get_key(rec, "run.device", "auto"), progress=not quiet, resume=resume,
                              max_minutes=max_minutes, loader_workers=recipe_loader_workers(rec))
    t = summary["training"]
    click.echo(f"pretrained {detector} on {summary['shapes']} shapes: {t['epochs']} epochs, {t['steps']} steps, "
               f"{summary['seconds']:.1f} s -> {out}")
