"""`anomalygen evaluate RUN`: score a trained run's test split and print the metrics table."""

from __future__ import annotations

import click


@click.command("evaluate")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--data", default=None, type=click.Path(), help="Score this dataset's test split instead of the run's own data.")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the run's recipe setting).")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Where metrics.* and scores/ go (default: RUN).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(run, data, device, out, quiet):
    """Score the test split with the models saved in RUN and write metrics.json, metrics.csv, metrics.md.

    Metrics per class and mean: I-AUROC; point AUROC (point clouds) or P-AUROC and exact
    AUPRO@0.3 (MVTec 3D-AD); ms per sample (score only) and peak memory.

    \b
    Example:
      anomalygen evaluate runs/btf
      anomalygen evaluate runs/btf-mv --data out/das3d --out runs/btf-mv/on-das3d
    """
    from anomalygen.detectors.engine import evaluate_run
    from anomalygen.detectors.reports import markdown_table

    metrics = evaluate_run(run, data=data, device=device, out=out, progress=not quiet)
    click.echo(markdown_table(metrics))
