"""TLS credentials for a `tls://` Dask scheduler, taken from Dask's own configuration.

Anyone who can reach an open `tcp://` scheduler can run code on every worker: that is what a
Dask client does. A `tls://` scheduler admits only clients whose certificate its CA signed, and
encrypts the traffic. The credentials come from the one place Dask's own tools read them
(`distributed.comm.tls.ca-file`, `distributed.comm.tls.client.cert`, `distributed.comm.tls.client.key`:
a config file under ~/.config/dask/ or the DASK_DISTRIBUTED__COMM__TLS__... environment variables),
so `dask scheduler`, `dask worker` and anomalygen need no second way to be told. Each value is a
file path or the PEM text itself, as Dask accepts.

Everything is checked before a connection is tried, so a missing or unreadable file is one line
naming the setting and the file, before the build writes anything.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from anomalygen.errors import AnomalygenError

ENV = "DASK_DISTRIBUTED__COMM__TLS__"
SETTINGS = {  # Security attribute -> Dask config key, environment variable
    "tls_ca_file": ("distributed.comm.tls.ca-file", ENV + "CA_FILE"),
    "tls_client_cert": ("distributed.comm.tls.client.cert", ENV + "CLIENT__CERT"),
    "tls_client_key": ("distributed.comm.tls.client.key", ENV + "CLIENT__KEY"),
}


def is_tls(address: str) -> bool:
    return address.strip().lower().startswith("tls://")


def client_security(address: str):
    """A distributed.Security for a client of `address` (None for a non-TLS address), or one clear error line.

    The CA and the client certificate are required; the key may sit in the certificate file (Dask's rule)."""
    if not is_tls(address):
        return None
    from distributed.security import Security

    sec = Security()
    missing = [SETTINGS[a][0] for a in ("tls_ca_file", "tls_client_cert") if not getattr(sec, a)]
    if missing:
        envs = ", ".join(env for _, env in SETTINGS.values())
        raise AnomalygenError(f"--scheduler {address}: Dask's configuration has no {' or '.join(missing)}; set {envs} "
                              "to the cluster's PEM files, or put them in ~/.config/dask/ (README: Builds on a Dask cluster)")
    for attr, (key, _) in SETTINGS.items():
        value = getattr(sec, attr)
        if value and "-----BEGIN" not in value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise AnomalygenError(f"--scheduler {address}: {key} names {value}, which is not a file")
            try:
                path.read_bytes()
            except OSError as exc:
                raise AnomalygenError(f"--scheduler {address}: {key} names {value}, which cannot be read "
                                      f"({exc.strerror or exc})") from None
    try:
        sec.get_connection_args("client")
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise AnomalygenError(f"--scheduler {address}: the TLS credentials in Dask's configuration are not a valid "
                              f"PEM CA, certificate and key ({_reason(exc)})") from None
    return sec


def refused_reason(exc: BaseException) -> str | None:
    """The plain-words reason when a TLS connection was refused over credentials, else None."""
    text = str(exc)
    if isinstance(exc, ssl.SSLError) or "TLS" in text or "certificate" in text.lower():
        return ("the scheduler and this client do not accept each other's TLS certificates (each must be signed by "
                f"the CA the other trusts: check {SETTINGS['tls_ca_file'][0]} and "
                f"{SETTINGS['tls_client_cert'][0]}); {_reason(exc)}")
    return None


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
