"""`anomalygen depth-defects`: DAS3D depth + RGB anomalies on MVTec 3D-AD data."""

from __future__ import annotations

import sys

import click
from tqdm import tqdm

from anomalygen.builds.cluster import BuildFailed
from anomalygen.commands.build_options import report_failures, scheduler_option
from anomalygen.errors import AnomalygenError


@click.command("depth-defects")
@click.option("--input", "input_spec", default="mvtec3d", show_default=True,
              help="'mvtec3d' renders the offline default scenes; 'mvtec3d=PATH' reads a real MVTec 3D-AD tree.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (MVTec 3D-AD layout).")
@click.option("--classes", default=None, help="Comma-separated classes (default: all of the input / the render recipe).")
@click.option("--per-image", type=click.IntRange(1, 1000), default=None, help="Anomalous variants K per training image [recipe: per_image].")
@click.option("--size", type=click.IntRange(0, 4096), default=None, help="Resize images to SIZE x SIZE, 0 keeps them [recipe: size].")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=None, help="Seed; the same seed writes the same bytes [recipe: seed].")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Processes (CPU device).")
@scheduler_option
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="cuda batches Perlin noise and the skew-normal filter on the GPU.")
@click.option("--textures", default=None,
              help="Folder of texture images I_u (any layout, DTD's images/<category>/*.jpg included) "
                   "[recipe: rgb.textures = default: procedural + scikit-image's brick/grass/gravel...].")
@click.option("--recipe", default="das3d", show_default=True, help="Recipe name or YAML path.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set depth.p_z=[0.02,0.06] (YAML value).")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier anomalygen output in --out (other files there are kept).")
def command(input_spec, out, classes, per_image, size, seed, workers, scheduler, device, textures, recipe, overrides,
            overwrite):
    """K synthetic anomalous variants of every training image (DAS3D synthesis, Eq. 1-8).

    Each variant gets a Perlin ternary mask on the object's foreground, smoothed by a
    random 2-D skew-normal kernel into a depth change Delta_Z (bumps and dents; points
    move along their camera rays), a mask M* = [p_z |Delta_Z| >= t_h], and the same
    region textured in RGB (Eq. 8). Writes <class>/train/good (normal images),
    validation/good, test/good and test/das3d (variants with gt) plus manifest.json
    with every drawn parameter. Check the result with `anomalygen validate OUT` and
    look at it with `anomalygen preview OUT`.

    \b
    Examples:
      anomalygen depth-defects --input mvtec3d --out out/das3d
      anomalygen depth-defects --input mvtec3d=~/data/mvtec3d --classes bagel,tire --per-image 4 --out out/das3d-real
    """
    from anomalygen.builds.depth import depth_defects, skipped_inputs
    from anomalygen.limits import class_list
    from anomalygen.recipe_schema import check_recipe
    from anomalygen.recipes import load_recipe, parse_overrides

    rec = check_recipe(load_recipe(recipe, parse_overrides(overrides)), "das3d", schema_from=recipe)
    bar = lambda it, total: tqdm(it, total=total, desc="depth-defects", unit="image", file=sys.stderr)  # noqa: E731
    if scheduler and device != "cpu":
        raise AnomalygenError("--scheduler runs the CPU path on the cluster's workers; drop --device cuda")
    try:
        root = depth_defects(out, input_spec, class_list(classes), per_image, size, seed, workers,
                             device, rec, textures, progress=bar, overwrite=overwrite, scheduler=scheduler)
    except BuildFailed as exc:
        report_failures(exc)
    skipped = skipped_inputs(root)
    for r in skipped:
        click.echo(f"skipped input {r['source']}: {r['skipped'].split(': ', 1)[-1]}", err=True)
    if skipped:
        click.echo(f"{len(skipped)} input image(s) skipped (listed in {root}/manifest.json under 'skipped')", err=True)
    click.echo(f"wrote {root} (check: anomalygen validate {root})")
