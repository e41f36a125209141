"""`anomalygen render-mvtec3d`: an MVTec 3D-AD-layout dataset rendered from procedural shapes."""

from __future__ import annotations

import sys

import click
from tqdm import tqdm

from anomalygen.builds.cluster import BuildFailed
from anomalygen.commands.build_options import report_failures, scheduler_option


@click.command("render-mvtec3d")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (MVTec 3D-AD layout).")
@click.option("--classes", default=None,
              help="Comma-separated classes, or N: the first N of MVTec 3D-AD's ten [recipe: classes, all ten].")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=None, help="Seed; the same seed writes the same bytes [recipe: seed].")
@click.option("--size", type=click.IntRange(16, 4096), default=None, help="Image width = height in pixels [recipe: size].")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Processes rendering in parallel.")
@scheduler_option
@click.option("--recipe", default="render-mvtec3d", show_default=True, help="Recipe name or YAML path.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set counts.train=4 (YAML value, repeatable).")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier anomalygen output in --out (other files there are kept).")
def command(out, classes, seed, size, workers, scheduler, recipe, overrides, overwrite):
    """Render organized point clouds (xyz tiff), shaded RGB and gt masks of procedural objects.

    Each object rests on a slightly tilted background plane under a pinhole camera
    (open3d RaycastingScene). Writes <class>/train/good, validation/good, test/good
    and test/<defect> with gt: the pixels where the defect moved the surface by more
    than gt_tau x object size. This is the offline default input of depth-defects.
    Re-running the same command renders only the images a killed run did not finish.
    `--set difficulty=paper` renders smaller mesh defects and adds range noise along each
    pixel's ray (`--set noise=1.5` alone: 1.5 tau); `--set pose=any` turns each object
    uniformly at random before it is laid on the plane (the manifest records the turn).

    \b
    Examples:
      anomalygen render-mvtec3d --classes bagel,tire --out out/rendered
      anomalygen render-mvtec3d --classes bagel,tire --set difficulty=paper --out out/rendered-paper
      anomalygen render-mvtec3d --classes 10 --size 64 --out out/rendered-10
    """
    from anomalygen.builds.render import render_mvtec3d
    from anomalygen.recipe_schema import check_recipe
    from anomalygen.recipes import load_recipe, parse_overrides

    sets = parse_overrides(overrides)
    if size:
        sets["size"] = size
    rec = check_recipe(load_recipe(recipe, sets), "render-mvtec3d", schema_from=recipe)
    bar = lambda it, total: tqdm(it, total=total, desc="render", unit="image", file=sys.stderr)  # noqa: E731
    try:
        root = render_mvtec3d(out, classes or None, rec, seed, workers, progress=bar, overwrite=overwrite,
                              scheduler=scheduler)
    except BuildFailed as exc:
        report_failures(exc)
    click.echo(f"wrote {root} (check: anomalygen validate {root})")
