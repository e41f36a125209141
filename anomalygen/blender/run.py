"""One headless run of a Blender script (shipped or a user's), with the bridge's environment.

The script runs in its own process (`python SCRIPT -- ARGS` with the bpy module, or
`blender -b --factory-startup --python SCRIPT -- ARGS`), with a private TMPDIR that
is deleted afterwards, so the `blender_*` folders Blender leaves behind go with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from anomalygen.errors import AnomalygenError
from anomalygen.blender.locate import Launcher, find_launcher, resolve_script
from anomalygen.blender.workers import TMP_PREFIX, clean_stale_tmp


@dataclass
class RunResult:
    returncode: int
    command: list[str]
    output: str | None   # stdout + stderr when captured, else None (it went to the terminal)
    timed_out: bool = False


def run_script(script: str | os.PathLike, args: list[str] = (), *, timeout: float | None = None,
               launcher: Launcher | None = None, capture: bool = False, cwd: str | os.PathLike | None = None) -> RunResult:
    """Run `script` inside Blender with `args` after '--'; returns its exit status (and output)."""
    path = resolve_script(script)
    launcher = launcher or find_launcher()
    cmd = launcher.command(path, list(args))
    clean_stale_tmp()
    tmp = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-run-")
    env = {**os.environ, "TMPDIR": tmp, "TEMP": tmp, "TMP": tmp}
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, timeout=timeout, text=True,
                              stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.STDOUT if capture else None)
        return RunResult(proc.returncode, cmd, proc.stdout if capture else None)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else exc.stdout
        return RunResult(124, cmd, out if capture else None, timed_out=True)
    except OSError as exc:
        raise AnomalygenError(f"cannot start Blender ({launcher.describe()}): {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        sys.stdout.flush()


_STARTS: dict[tuple, None] = {}  # launchers this process has seen start (cached: a probe costs ~1 s)
PROBE = "import bpy  # a Blender that starts and imports its module\nprint('anomalygen-probe-ok')\n"


def check_starts(launcher: Launcher | None = None, timeout: float = 180) -> Launcher:
    """Start Blender once with a two-line script; AnomalygenError naming what failed when it does not
    run (a wrong binary, a broken install), so a build fails before it writes anything."""
    launcher = launcher or find_launcher()
    key = (launcher.kind, launcher.executable)
    if key in _STARTS:
        return launcher
    with tempfile.TemporaryDirectory(prefix=f"{TMP_PREFIX}{os.getpid()}-probe-") as d:
        script = os.path.join(d, "probe.py")
        with open(script, "w") as fh:
            fh.write(PROBE)
        res = run_script(script, [], timeout=timeout, launcher=launcher, capture=True, cwd=d)
    if res.returncode != 0 or "anomalygen-probe-ok" not in (res.output or ""):
        last = [line for line in (res.output or "").splitlines() if line.strip()][-1:] or ["no output"]
        why = "timed out" if res.timed_out else f"exit code {res.returncode}: {last[0][:200]}"
        raise AnomalygenError(f"Blender ({launcher.describe()}) does not start ({why})")
    _STARTS[key] = None
    return launcher
