"""`anomalygen pseudo-anomalies`: 3DzAL's random-CNN pseudo-anomalous patches, labeled, with a preview."""

from __future__ import annotations

import sys

import click
from tqdm import tqdm


@click.command("pseudo-anomalies")
@click.option("--input", "input_spec", default="mvtec3d", show_default=True,
              help="'mvtec3d' renders the offline default scenes; 'mvtec3d=PATH' reads an MVTec 3D-AD-layout tree.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: empty, an earlier pseudo-anomalies output (written again), or any folder with "
                   "--overwrite.")
@click.option("--class", "normal_class", default=None, help="The normal class (default: the input's first).")
@click.option("--irrelevant", default=None,
              help="Comma-separated task-irrelevant classes (default: every other class of the input).")
@click.option("--patches", type=int, default=32, show_default=True, help="Patches to write (adding and removing 1:1).")
@click.option("--points", type=int, default=64, show_default=True, help="Points per patch (3DzAL: 64).")
@click.option("--tau", type=float, default=0.001, show_default=True, help="Share of points of interest (3DzAL: 0.1 %).")
@click.option("--size", type=int, default=224, show_default=True, help="Clouds are resized to SIZE x SIZE (3DzAL: 224).")
@click.option("--per-class", type=int, default=2, show_default=True, help="Training samples read per class.")
@click.option("--kinds", type=click.Choice(["both", "adding", "removing"]), default="both", show_default=True,
              help="Which pseudo-anomaly types to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the patches; the same seed writes the same patches.")
@click.option("--cnn-seed", type=int, default=0, show_default=True, help="Seed of the untrained ResNet-50's weights.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where the random CNN runs (batched).")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier anomalygen output in --out (other files there are kept).")
def command(input_spec, out, normal_class, irrelevant, patches, points, tau, size, per_class, kinds, seed, cnn_seed,
            device, overwrite):
    """Pseudo-anomalous point patches as 3DzAL makes them (WACV 2025, Sec. 3.2).

    An untrained ResNet-50 fed the ordered xyz of the task-irrelevant samples marks their
    points of interest (top TAU of its fused activation maps). "Adding" patches attach a
    cluster of those points to a normal sample of --class around an anchor and take the
    POINTS nearest the anchor; "removing" patches cut a random share of points out of a
    normal neighbourhood. Writes OUT/patches.npz (points, per-point labels: 1 = added point
    or rim of the removed region), OUT/interest.npz, OUT/manifest.json and OUT/preview.png
    (what the CNN picked on each task-irrelevant sample).

    \b
    Examples:
      anomalygen pseudo-anomalies --out out/pseudo --class bagel --size 128
      anomalygen render-mvtec3d --classes bagel,tire,cookie --size 64 --out out/rendered-small
      anomalygen pseudo-anomalies --input mvtec3d=out/rendered-small --class tire --size 64 --tau 0.01 --points 32 --out out/pseudo-small
    """
    from anomalygen.builds.pseudo import pseudo_anomalies
    from anomalygen.limits import class_list
    from anomalygen.pseudo import ADDING, REMOVING

    chosen = {"both": (ADDING, REMOVING), "adding": (ADDING,), "removing": (REMOVING,)}[kinds]
    bar = lambda it, total: tqdm(it, total=total, desc="pseudo-anomalies", unit="sample", file=sys.stderr)  # noqa: E731
    others = (class_list(irrelevant, "--irrelevant") or []) if irrelevant is not None else None
    root = pseudo_anomalies(out, input_spec, normal_class, others, patches, points, tau, size, per_class, seed,
                            cnn_seed, chosen, device, progress=bar, overwrite=overwrite)
    click.echo(f"wrote {patches} patches to {root} (look: {root}/preview.png)")
