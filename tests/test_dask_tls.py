"""Builds on a TLS Dask cluster: credentials from Dask's configuration, the bytes of the local build,
and one clear line (exit 2, nothing written) when the credentials are missing, unreadable or refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from anomalygen.cli import cli

distributed = pytest.importorskip("distributed")
pytest.importorskip("cryptography")  # Security.temporary() makes its certificates with it
import dask  # noqa: E402  (after the skip: a dependency of distributed)
from distributed.security import Security  # noqa: E402

ARGS = ["--classes", "eraser0,cup1", "--train-per-class", "1", "--test-per-class", "1", "--quiet"]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".anomalygen" not in p.parts}


@pytest.fixture(scope="module")
def credentials():
    return Security.temporary()


@pytest.fixture(scope="module")
def tls_cluster(credentials):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, protocol="tls://",
                                  security=credentials, dashboard_address=None, silence_logs=40) as c:
        yield c


def pem_files(sec: Security, folder: Path) -> dict[str, str]:
    """The cluster's credentials as PEM files and the Dask settings naming them, as a user would have them."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"ca.pem": sec.tls_ca_file, "client.pem": sec.tls_client_cert, "client.key": sec.tls_client_key}
    for name, text in files.items():
        (folder / name).write_text(text)
    return {"distributed.comm.tls.ca-file": str(folder / "ca.pem"),
            "distributed.comm.tls.client.cert": str(folder / "client.pem"),
            "distributed.comm.tls.client.key": str(folder / "client.key")}


def build(out: Path, *extra: str):
    return CliRunner().invoke(cli, ["build-shapenet", "--out", str(out), *ARGS, *extra])


def assert_one_line_nothing_written(r, out: Path, *words: str):
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    for w in words:
        assert w in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_a_tls_cluster_build_has_the_bytes_of_the_local_build(tls_cluster, credentials, tmp_path):
    local = tmp_path / "local"
    assert build(local).exit_code == 0
    with dask.config.set(pem_files(credentials, tmp_path / "pki")):
        r = build(tmp_path / "tls", "--scheduler", tls_cluster.scheduler_address)
    assert r.exit_code == 0, r.output
    a, b = tree_bytes(local), tree_bytes(tmp_path / "tls")
    assert a.keys() == b.keys() and "manifest.json" in a
    assert [k for k in a if a[k] != b[k]] == []


def test_a_client_without_credentials_is_refused_with_one_line(tls_cluster, tmp_path):
    with dask.config.set({"distributed.comm.tls.ca-file": None, "distributed.comm.tls.client.cert": None,
                          "distributed.comm.tls.client.key": None}):
        r = build(tmp_path / "out", "--scheduler", tls_cluster.scheduler_address)
    assert_one_line_nothing_written(r, tmp_path / "out", "distributed.comm.tls.ca-file",
                                    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE")


def test_credentials_of_another_cluster_are_refused_with_one_line(tls_cluster, tmp_path):
    with dask.config.set(pem_files(Security.temporary(), tmp_path / "other")):
        r = build(tmp_path / "out", "--scheduler", tls_cluster.scheduler_address)
    assert_one_line_nothing_written(r, tmp_path / "out", "do not accept each other's TLS certificates")


def test_a_missing_or_malformed_credential_file_is_named_before_connecting(credentials, tmp_path):
    settings = pem_files(credentials, tmp_path / "pki")
    missing = dict(settings, **{"distributed.comm.tls.client.key": str(tmp_path / "nope.key")})
    with dask.config.set(missing):  # no scheduler at this address: the files are checked first
        r = build(tmp_path / "out", "--scheduler", "tls://127.0.0.1:9")
    assert_one_line_nothing_written(r, tmp_path / "out", "distributed.comm.tls.client.key", "nope.key", "not a file")
    (tmp_path / "pki" / "client.pem").write_text("not a certificate\n")
    with dask.config.set(settings):
        r = build(tmp_path / "out", "--scheduler", "tls://127.0.0.1:9")
    assert_one_line_nothing_written(r, tmp_path / "out", "not a valid PEM")
