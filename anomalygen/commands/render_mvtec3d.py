"""`anomalygen render-mvtec3d`: an MVTec 3D-AD-layout dataset rendered from procedural shapes."""

from __future__ import annotations

import sys

import click
from tqdm import tqdm

from anomalygen.builds.cluster import BuildFailed
from anomalygen.commands.build_options import report_failures, scheduler_option


@click.command("render-mvtec3d")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (MVTec 3D-AD layout).")
@click.option("--classes", default=None, help="Comma-separated classes [recipe: classes].")
@click.option("--seed", type=int, default=None, help="Seed; the same seed writes the same bytes [recipe: seed].")
@click.option("--size", type=int, default=None, help="Image width = height in pixels [recipe: size].")
@click.option("--workers", type=int, default=1, show_default=True, help="Processes rendering in parallel.")
@scheduler_option
@click.option("--recipe", default="render-mvtec3d", show_default=True, help="Recipe name or YAML path.")
def command(out, classes, seed, size, workers, scheduler, recipe):
    """Render organized point clouds (xyz tiff), shaded RGB and gt masks of procedural objects.

    Each object rests on a slightly tilted background plane under a pinhole camera
    (open3d RaycastingScene). Writes <class>/train/good, validation/good, test/good
    and test/<defect> with gt: the pixels where the defect moved the surface by more
    than gt_tau x object size. This is the offline default input of depth-defects.
    Re-running the same command renders only the images a killed run did not finish.

    \b
    Example:
      anomalygen render-mvtec3d --classes bagel,tire --out out/rendered
    """
    from anomalygen.recipes import load_recipe
    from anomalygen.builds.render import render_mvtec3d

    rec = load_recipe(recipe, {"size": size} if size else None)
    bar = lambda it, total: tqdm(it, total=total, desc="render", unit="image", file=sys.stderr)  # noqa: E731
    try:
        root = render_mvtec3d(out, classes.split(",") if classes else None, rec, seed, workers, progress=bar,
                              scheduler=scheduler)
    except BuildFailed as exc:
        report_failures(exc)
    click.echo(f"wrote {root} (check: anomalygen validate {root})")
