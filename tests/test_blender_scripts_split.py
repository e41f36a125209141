"""blender_scripts/defect.py and its underscore helper modules, as shipped.

defect.py imports its helpers (_scene, _surface, _params, _displace, _carve) from
its own folder, so it must work however Blender starts it: as a plain script, the
way `blender -P` runs it (its folder NOT on sys.path), and inside the warm worker.
The helpers stay out of the shipped-script list, and nothing in the folder imports
anomalygen (it runs inside Blender's Python).

The checks that start Blender run only where bpy is importable; the static ones always run.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trimesh

from anomalygen.blender.locate import bpy_importable, scripts_dir

needs_bpy = pytest.mark.skipif(not bpy_importable(), reason="bpy is not importable: install the [blender] extra "
                                                             "(pip install 'anomalygen[blender]', bpy 5.0.1 on Python 3.11)")

SCRIPTS = Path(__file__).resolve().parents[1] / "blender_scripts"
HELPERS = ("_carve", "_displace", "_params", "_scene", "_surface")
# what may be imported inside Blender: the standard library, Blender's modules, numpy, siblings
BLENDER_SIDE = {"bpy", "bmesh", "mathutils", "numpy"}


def test_helpers_are_shipped_next_to_defect_py():
    for name in ("defect", "worker", *HELPERS):
        assert (SCRIPTS / f"{name}.py").is_file(), name
        assert (scripts_dir() / f"{name}.py").is_file(), name


def test_blender_scripts_import_only_blender_numpy_stdlib_and_siblings():
    siblings = {p.stem for p in SCRIPTS.glob("*.py")}
    for path in SCRIPTS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import (the folder is on sys.path, not a package)"
                roots = [node.module.split(".")[0]]
            else:
                continue
            for root in roots:
                assert (root in siblings or root in BLENDER_SIDE or root in sys.stdlib_module_names
                        or root == "__future__"), f"{path.name} imports {root}"


def _cli(*args):
    return subprocess.run([sys.executable, "-c", "import sys; from anomalygen.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.blender
@needs_bpy
def test_info_lists_only_defect_and_worker():
    r = _cli("blender", "info")
    assert r.returncode == 0, r.stderr
    listed = [line.split()[0] for line in r.stdout.splitlines() if line.startswith("  ")]
    assert listed == ["defect", "worker"]


@pytest.fixture(scope="module")
def sphere(tmp_path_factory):
    path = tmp_path_factory.mktemp("mesh") / "sphere.ply"
    trimesh.creation.icosphere(subdivisions=3).export(path)
    return path


def _job_args(src: Path, out: Path) -> list[str]:
    return ["--input", str(src), "--output", str(out), "--defect", "hole", "--seed", "3"]


@pytest.mark.blender
@needs_bpy
def test_defect_py_gives_the_same_mesh_standalone_blender_style_and_in_the_worker(sphere, tmp_path):
    from anomalygen.blender.workers import WorkerPool

    defect_py = SCRIPTS / "defect.py"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()

    plain = tmp_path / "plain.ply"
    r = subprocess.run([sys.executable, str(defect_py), "--", *_job_args(sphere, plain)],
                       cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "defect.py:" in r.stdout

    # as `blender -P` runs a script: by path, as __main__, its folder not on sys.path
    dash_p = tmp_path / "dash_p.ply"
    runner = textwrap.dedent(f"""\
        import os, runpy, sys
        assert not any(os.path.isdir(p) and os.path.samefile(p, {str(SCRIPTS)!r}) for p in sys.path if p)
        sys.argv = ["blender", "-b", "-P", {str(defect_py)!r}, "--", *{_job_args(sphere, dash_p)!r}]
        runpy.run_path({str(defect_py)!r}, run_name="__main__")
    """)
    r = subprocess.run([sys.executable, "-c", runner], cwd=elsewhere, capture_output=True, text=True, timeout=300,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0, r.stderr[-2000:]

    worker = tmp_path / "worker.ply"
    with WorkerPool(size=1, timeout=300) as pool:
        result = pool.defect({"input": str(sphere), "output": str(worker), "defect": "hole", "seed": 3})
    assert result["watertight"] and result["rim_points"]

    assert plain.read_bytes() == dash_p.read_bytes() == worker.read_bytes()


def test_helper_modules_are_not_runnable_scripts_by_name():
    """`blender run NAME` resolves the shipped scripts only; the `_*.py` helpers they import are not scripts."""
    from anomalygen.blender.locate import resolve_script
    from anomalygen.errors import AnomalygenError

    assert resolve_script("defect").name == "defect.py"
    with pytest.raises(AnomalygenError, match="not one of the shipped scripts"):
        resolve_script("_scene")
