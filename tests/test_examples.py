"""The scripts in examples/ run as a user runs them: each at reduced size (ANOMALYGEN_EXAMPLE_SMALL=1) in
its own process session, from an empty working folder, with an output folder of its own. A script that
raises, outlives its time, leaves a process of its session running (Dask workers, DataLoader processes), or
writes anywhere but its output folder fails here. examples/README.md lists every script."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
SMALL = "ANOMALYGEN_EXAMPLE_SMALL"
TIMEOUT_S = 240  # per script at reduced size; each takes well under a minute on 2 idle cores


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def session_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def run_example(script: Path, out: Path, cwd: Path, log: Path) -> tuple[int, str]:
    """Run one script the way a user does; its output goes to a file, not a pipe, so that a process it
    leaves behind cannot hold the test waiting on the pipe's end."""
    env = {**os.environ, SMALL: "1", "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, str(script), str(out)], cwd=cwd, env=env, start_new_session=True,
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        proc.wait(timeout=TIMEOUT_S)
        deadline = time.monotonic() + 15  # workers get a moment to exit after their parent
        while session_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = session_alive(proc.pid)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"{script.name} ran past {TIMEOUT_S} s at reduced size:\n{log.read_text()[-4000:]}")
    finally:
        if session_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    output = log.read_text()
    assert not left, f"{script.name} left processes of its session running after it exited:\n{output[-2000:]}"
    return proc.returncode, output


def test_examples_are_there():
    assert len(EXAMPLES) >= 6, [p.name for p in EXAMPLES]


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_small_and_writes_only_its_output_folder(script, tmp_path):
    cwd, out = tmp_path / "cwd", tmp_path / "results" / "out"
    cwd.mkdir()
    out.parent.mkdir()
    before_repo = tree(ROOT / "examples")
    rc, output = run_example(script, out, cwd, tmp_path / "output.log")
    assert rc == 0, f"{script.name} exited {rc}:\n{output[-4000:]}"
    assert out.is_dir() and any(p.is_file() for p in out.rglob("*")), f"{script.name} wrote nothing into {out}"
    assert tree(cwd) == set(), f"{script.name} wrote into its working folder: {sorted(tree(cwd))[:10]}"
    beside = os.listdir(out.parent)
    assert beside == ["out"], f"{script.name} wrote beside its output folder: {beside}"
    assert tree(ROOT / "examples") == before_repo, f"{script.name} wrote into examples/"


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_documents_itself_and_uses_public_names(script):
    module = ast.parse(script.read_text())
    doc = ast.get_docstring(module) or ""
    summary = doc.split("\n\n")[0]
    assert "\n" not in summary and "~" in summary, f"{script.name}: one docstring line says what it shows and how long"
    assert SMALL in doc, f"{script.name}: the docstring says how {SMALL} reduces it"
    names = [f"{n.module}.{a.name}" for n in ast.walk(module) if isinstance(n, ast.ImportFrom) for a in n.names]
    names += [a.name for n in ast.walk(module) if isinstance(n, ast.Import) for a in n.names]
    names += [n.attr for n in ast.walk(module) if isinstance(n, ast.Attribute)]
    hidden = [n for n in names if any(map(private, n.split(".")))]
    assert not hidden, f"{script.name} uses private names: {hidden}"
    readme = (ROOT / "examples" / "README.md").read_text()
    assert f"`{script.name}`" in readme, f"examples/README.md lists {script.name}"
