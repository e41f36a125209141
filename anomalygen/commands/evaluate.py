"""`anomalygen evaluate RUN`: score a trained run's test split and print the metrics table."""

from __future__ import annotations

from pathlib import Path

import click

from anomalygen.errors import AnomalygenError



def check_metrics_folder(out: Path) -> None:
    """--out must be empty, a run, or an earlier evaluation's output (anything else needs --overwrite)."""
    if out.exists() and not out.is_dir():
        raise AnomalygenError(f"--out {out} is a file, not a folder")
    from anomalygen.detectors.runs import RUN_ENTRIES  # what a run and its evaluations write

    foreign = sorted(p.name for p in out.iterdir() if p.name not in RUN_ENTRIES) if out.is_dir() else []
    if foreign:
        raise AnomalygenError(f"--out {out} holds files that are not an evaluation's ({', '.join(foreign[:3])}); "
                              "choose an empty folder or pass --overwrite")


@click.command("evaluate")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--data", default=None, type=click.Path(), help="Score this dataset's test split instead of the run's own data.")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the run's recipe setting).")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Where metrics.* and scores/ go (default: RUN).")
@click.option("--overwrite", is_flag=True, help="Write metrics into an --out folder that holds other files.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(run, data, device, out, overwrite, quiet):
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

    if out is not None and not overwrite:
        check_metrics_folder(Path(out))
    metrics = evaluate_run(run, data=data, device=device, out=out, progress=not quiet)
    click.echo(markdown_table(metrics))
