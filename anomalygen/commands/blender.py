"""`anomalygen blender ...`: headless Blender runs with the bridge's environment."""

from __future__ import annotations

import os
import shutil
import sys

import click

from anomalygen.blender import find_launcher, resolve_script, run_script, scripts_dir


@click.group("blender")
def command():
    """Run scripts inside Blender, headless (bpy module or a `blender` binary).

    \b
    Blender is found in this order: $ANOMALYGEN_BLENDER ('bpy' or a path to a
    blender executable), the bpy module (pip install 'anomalygen[blender]'),
    `blender` on PATH.

    \b
    Examples:
      anomalygen blender info
      anomalygen blender run defect -- --input cup.ply --output cup_crack.ply --defect crack --seed 3
      anomalygen blender run my_script.py --timeout 60 -- --size 2
      anomalygen build-shapenet --classes 3 --engine blender --out out/blender3
    """


@command.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("script")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--timeout", type=float, default=None, help="Kill the run after this many seconds (exit 124).")
def run(script, args, timeout):
    """Run SCRIPT inside Blender; ARGS (after --) reach it after its own '--'.

    SCRIPT is a path, or the name of a shipped script (e.g. `defect`). The run gets a
    private TMPDIR that is removed afterwards; the exit status is the script's.

    \b
    Examples:
      anomalygen blender run defect -- --input cup.ply --output cup_hole.ply --defect hole --seed 3
      anomalygen blender run my_script.py -- --size 2
    """
    res = run_script(script, list(args), timeout=timeout)
    if res.timed_out:
        click.echo(f"blender run: {script} timed out after {timeout:g} s", err=True)
    sys.exit(res.returncode)


@command.command("info")
def info():
    """Which Blender the bridge would use (or what it looked for), and the shipped scripts. Exits 0
    whether or not Blender is found: this is the command to run when it is not."""
    from anomalygen.blender.locate import ENV, INSTALL_HINT
    from anomalygen.errors import AnomalygenError

    try:
        click.echo(f"blender: {find_launcher().describe()}")
    except AnomalygenError as exc:
        env = os.environ.get(ENV)
        click.echo("blender: not found")
        click.echo("looked for, in order:")
        click.echo(f"  ${ENV}: {env!r}" + (f" ({str(exc).split('; ')[0]})" if env else " (not set)"))
        click.echo(f"  the bpy module in {sys.executable}: not importable")
        click.echo(f"  `blender` on PATH: {shutil.which('blender') or 'not found'}")
        click.echo(f"to get one: {INSTALL_HINT}")
    click.echo(f"scripts: {scripts_dir()}")
    for p in sorted(scripts_dir().glob("*.py")):
        if not p.name.startswith("_"):
            click.echo(f"  {p.stem}  ({resolve_script(p.stem)})")
