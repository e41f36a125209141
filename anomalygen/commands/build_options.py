"""Options and reporting the build commands share: `--scheduler` and failed samples."""

from __future__ import annotations

import sys

import click

from anomalygen.builds.cluster import BuildFailed


def _reachable(ctx, param, address):
    """Fail with one line before anything is written when no scheduler answers at `address`."""
    if address:
        from anomalygen.parallel import dask_client

        dask_client(address).close()
    return address


scheduler_option = click.option(
    "--scheduler", default=None, metavar="ADDRESS", callback=_reachable,
    help="Address of a running Dask scheduler (tcp://10.0.0.5:8786, or tls://... with the certificates in Dask's "
         "configuration, README): one task per sample on its workers, "
         "which must see --out at the same path and run `dask worker --nthreads 1`. Output bytes do not depend on it; "
         "without it --workers local processes run the build.")


def report_failures(exc: BuildFailed) -> None:
    """Name every sample that failed and why, say how to retry, exit 1 (finished samples are kept)."""
    for f in exc.failures:
        click.echo(f"failed: {f}", err=True)
    click.echo(f"{len(exc.failures)} of {exc.total} samples failed after retries; no manifest written. Finished "
               "samples are kept: run the same command again to retry the missing ones.", err=True)
    sys.exit(1)
