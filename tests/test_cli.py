"""The CLI frame: version, help with examples, one-line errors with exit code 2."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from anomalygen import __version__
from anomalygen.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "anomalygen.cli", *map(str, args)], capture_output=True, text=True)


def test_version_and_help_with_an_example_per_command():
    assert run_cli("--version").stdout.strip().endswith(__version__)
    out = run_cli("--help").stdout
    for name, (_, example) in COMMANDS.items():
        assert example.startswith(f"anomalygen {name}")
        assert example in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_registered_command_loads_and_has_help(name):
    res = run_cli(name, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage:" in res.stdout and "Example" in res.stdout


@pytest.mark.parametrize("args,needle", [
    (["validate", "/definitely/not/here"], "no such directory"),
    (["preview", "/definitely/not/here"], "does not exist"),
])
def test_user_mistakes_give_one_line_and_exit_2(args, needle, tmp_path):
    res = run_cli(*args)
    assert res.returncode == 2
    assert needle in res.stderr
    assert "Traceback" not in res.stderr


def test_wrong_layout_is_a_user_error(tmp_path):
    (tmp_path / "x").mkdir()
    res = run_cli("validate", tmp_path)
    assert res.returncode == 2 and "not a dataset layout we know" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_every_package_folder_is_listed_in_pyproject():
    """A folder with __init__.py missing from pyproject's explicit list would be left out of a wheel."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    found = set()
    for pkg, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([pkg, *rel.parts]))
    assert found - listed == set(), f"add to pyproject packages: {sorted(found - listed)}"


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one_verbatim():
    readme = (ROOT / "README.md").read_text().splitlines()
    setup = [line for line in readme if line.startswith("apt-get ")]
    assert len(setup) == 2, setup
    main_job, test_cmd = setup
    assert "anomalygen " in main_job and "pytest" in test_cmd
    assert "torch==2.13.0" in main_job and "torch==2.13.0" in test_cmd  # never an unpinned torch
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci
