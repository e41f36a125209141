"""`anomalygen build-shapenet`: a thin click layer over anomalygen.builds.shapenet.build_dataset."""

from __future__ import annotations

import sys

import click

from anomalygen.builds.cluster import BuildFailed
from anomalygen.commands.build_options import report_failures, scheduler_option
from anomalygen.errors import AnomalygenError


@click.command("build-shapenet")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: empty, a build to resume, or any folder with --overwrite.")
@click.option("--layout", default="anomaly-shapenet", show_default=True,
              type=click.Choice(["anomaly-shapenet", "real3d-ad"]),
              help="Folder layout: Anomaly-ShapeNet (pcd/<class>/{train,test,GT}, comma GT) or Real3D-AD "
                   "(<class>/{train,test,gt}, space GT, <n>_template.pcd, bulge/sink/cut type names).")
@click.option("--classes", default=None, metavar="N|NAMES",
              help="First N of the 40 classes, or comma-separated names (default: recipe, 40).")
@click.option("--source", default=None, type=click.Path(exists=True, file_okay=False),
              help="ShapeNetCore v2 folder or a folder of meshes (<class>/*.obj|ply|stl|off); "
                   "default: the procedural catalog.")
@click.option("--recipe", default="anomaly-shapenet", show_default=True, help="Recipe name or YAML path.")
@click.option("--train-per-class", type=click.IntRange(0), default=None, help="Normal templates per class (recipe: 4).")
@click.option("--test-per-class", type=click.IntRange(0), default=None, help="Test samples per class (recipe: 36 -> 1600 in all).")
@click.option("--defects", default=None, help="Comma-separated subset of bulge,concavity,hole,break,bending,crack,scratch.")
@click.option("--engine", default=None, help="Defect engine: numpy (default) or blender.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Processes (recipe: 2). Output bytes do not depend on it.")
@scheduler_option
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=None, help="Recipe seed override; same seed, same bytes.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set dataset.points=[3000,5000] (YAML value, repeatable).")
@click.option("--overwrite", is_flag=True,
              help="Delete a previous anomalygen output in --out (pcd/, obj/, manifest, .anomalygen/) and build "
                   "from scratch; other files there are kept.")
@click.option("--quiet", is_flag=True, help="No progress bar and no summary table.")
def command(out, layout, classes, source, recipe, train_per_class, test_per_class, defects, engine, workers, scheduler,
            seed, overrides, overwrite, quiet):
    """Build a labeled Anomaly-ShapeNet-layout dataset: 40 classes, 1600 samples by default.

    Each class is one normal object (procedural stand-in unless --source is given),
    refined, then defected with bulge, concavity, hole, break, bending, crack or
    scratch. Every sample has 8K-30K points; an anomalous point is one farther than
    tau from the ORIGINAL surface, or (hole/break/crack) within rim_distance of the
    cut's rim. Re-running the same command resumes a killed build to the same bytes.
    With --scheduler the samples run on a Dask cluster (README: three commands).
    Writes pcd/<class>/{train,test,GT} (or, with --layout real3d-ad, <class>/{train,test,gt}),
    obj/<class>/ and manifest.json into --out; check the result with `anomalygen validate`.
    A --source mesh that cannot be used (NaN vertices, not closable, far too thin, or
    moved by its repair farther than shapes.max_repair_tau) is skipped with its reason
    in the manifest.

    \b
    Examples:
      anomalygen build-shapenet --classes 40 --out out/anomaly-shapenet
      anomalygen build-shapenet --classes bowl0,vase1 --defects hole,crack --out out/small
      anomalygen build-shapenet --classes 2 --layout real3d-ad --out out/real3d-style
      anomalygen build-shapenet --source ~/ShapeNetCore.v2 --classes 10 --out out/sn
    """
    from tqdm import tqdm

    from anomalygen.builds.shapenet import build_dataset
    from anomalygen.recipe_schema import check_recipe
    from anomalygen.recipes import load_recipe, parse_overrides

    rec = check_recipe(load_recipe(recipe, parse_overrides(overrides)), "anomaly-shapenet", schema_from=recipe)
    if engine is None:
        engine = rec.get("engine", "numpy")
    from anomalygen.builds.engines import get_engine

    get_engine(engine)  # one clear line if the engine is not there
    dlist = [d.strip() for d in defects.split(",") if d.strip()] if defects else None
    if dlist is not None and not dlist:
        raise AnomalygenError("--defects: give at least one defect type")
    bar = None if quiet else (lambda it, total: tqdm(it, total=total, desc="build-shapenet", unit="sample",
                                                     file=sys.stderr, smoothing=0.1))
    try:
        res = build_dataset(out, rec, classes=classes, source=source, train_per_class=train_per_class,
                            test_per_class=test_per_class, defects=dlist, engine=engine,
                            workers=workers if workers is not None else rec.get("workers", 1), seed=seed,
                            overwrite=overwrite, progress=bar, layout=layout, scheduler=scheduler)
    except BuildFailed as exc:
        if not quiet and exc.result is not None and len(exc.result.stats):
            click.echo(exc.result.table())
        report_failures(exc)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: finished samples are kept; run the same command again to resume", err=True)
        sys.exit(130)
    for cls, why in res.rejected_classes.items():
        click.echo(f"skipped class {cls}: {why}", err=True)
    for r in res.out_of_range:
        click.echo(f"not written: {r.cls}/{r.name}: {r.rejected}", err=True)
    if not quiet:
        n = len(res.stats)
        click.echo(res.table())
        click.echo(f"{n} samples ({res.reused} reused from a previous run) in {res.seconds:.1f} s "
                   f"({(n - res.reused) / max(res.seconds, 1e-9):.2f} samples/s) -> {res.out}")
        click.echo(f"manifest: {res.manifest}   check: anomalygen validate {res.out}")
