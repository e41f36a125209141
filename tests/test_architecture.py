"""The house's import rules, read from the source (every import, lazy ones included).

Stages, low to high: errors / io / metrics / recipes and neutral shared helpers < shapes <
synthesizers (mesh, render, depth, pseudo, blender) < builds (drivers) < detectors <
commands and cli. A module imports its own stage or lower; synthesizers do not import each
other except that the renderer and the Blender engine apply mesh defects; synthesizers
never read recipes; imports are absolute; scripts that run inside Blender import nothing
from anomalygen. docs/architecture.md explains the picture.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

STAGES = {  # first match wins: longest prefixes first
    "anomalygen.commands": 5, "anomalygen.cli": 5,
    "anomalygen.detectors": 4,
    "anomalygen.builds": 3,
    "anomalygen.mesh": 2, "anomalygen.render": 2, "anomalygen.depth": 2, "anomalygen.pseudo": 2,
    "anomalygen.blender": 2,
    "anomalygen.shapes": 1,
    "anomalygen": 0,  # errors, io, metrics, recipes, parallel, seeds, geometry, perlin, scans, preview, view, validate
}
SYNTHESIZERS = ("anomalygen.mesh", "anomalygen.render", "anomalygen.depth", "anomalygen.pseudo", "anomalygen.blender")
ALLOWED_SYNTH_EDGES = {("anomalygen.render", "anomalygen.mesh"), ("anomalygen.blender", "anomalygen.mesh")}
STAGE_NAMES = ["neutral (errors/io/metrics/recipes/helpers)", "shapes", "synthesizers", "builds", "detectors", "commands"]


def _package_dirs() -> dict[str, str]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return cfg["package-dir"]


def _modules() -> dict[str, Path]:
    """Every Python module of the package, by its import name (pyproject's folder mapping)."""
    out = {}
    for pkg, folder in _package_dirs().items():
        if pkg == "anomalygen.blender_scripts":
            continue  # runs inside Blender: checked on its own below
        for f in (ROOT / folder).rglob("*.py"):
            rel = f.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = f
    return out


def _stage(module: str) -> int:
    for prefix in sorted(STAGES, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return STAGES[prefix]
    raise AssertionError(f"{module} belongs to no stage")


def _synth(module: str) -> str | None:
    return next((s for s in SYNTHESIZERS if module == s or module.startswith(s + ".")), None)


def _imports(path: Path) -> list[tuple[int, str, int]]:
    """(line, imported module, relative level) for every import statement, at any depth,
    plus importlib.import_module("anomalygen...") calls with a literal name."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            found.append((node.lineno, base, node.level))
            if node.level == 0 and base in ("anomalygen",):  # `from anomalygen import geometry`
                found += [(node.lineno, f"{base}.{a.name}", 0) for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value, 0))
    return found


MODULES = _modules()


def test_the_module_map_covers_the_package():
    assert "anomalygen.errors" in MODULES and "anomalygen.detectors.base" in MODULES
    assert "anomalygen.builds.shapenet" in MODULES and "anomalygen.mesh.operators" in MODULES
    assert all(f.is_file() for f in MODULES.values()) and len(MODULES) > 60


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_stage_order(module):
    path = MODULES[module]
    here, synth = _stage(module), _synth(module)
    bad = []
    for line, target, level in _imports(path):
        where = f"{path.relative_to(ROOT)}:{line}"
        if level:
            bad.append(f"{where}: relative import (use an absolute anomalygen. import)")
            continue
        if not target.startswith("anomalygen"):
            continue
        if target == "anomalygen":
            continue
        there = _stage(target)
        if there > here:
            bad.append(f"{where}: {module} ({STAGE_NAMES[here]}) imports {target} ({STAGE_NAMES[there]}), a higher stage")
        other = _synth(target)
        if synth and other and other != synth and (synth, other) not in ALLOWED_SYNTH_EDGES:
            bad.append(f"{where}: synthesizer {synth} imports synthesizer {other}")
        if (synth or here == 1) and target == "anomalygen.recipes":
            bad.append(f"{where}: {module} reads recipes (drivers load recipes and pass plain values in)")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.endswith(".network")))
def test_networks_are_pure_modules(module):
    """network.py: tensors in, tensors out: no I/O, no recipes, nothing of anomalygen but the point ops."""
    bad = [f"{line}: {t}" for line, t, _ in _imports(MODULES[module])
           if t.startswith("anomalygen") and not t.startswith("anomalygen.detectors.common")]
    assert not bad, f"{module} imports {bad}"


def test_blender_scripts_import_nothing_from_anomalygen():
    for f in (ROOT / "blender_scripts").glob("*.py"):
        bad = [t for _, t, _ in _imports(f) if t.startswith("anomalygen")]
        assert not bad, f"{f.name} imports {bad} (it runs inside Blender, without the package)"


def test_one_list_of_defect_types():
    """The layout's defect names are the one source; the mesh operators and the Blender script agree."""
    from anomalygen.io.anomaly_shapenet import DEFECTS
    from anomalygen.mesh import DEFECTS as MESH_DEFECTS
    from anomalygen.mesh.operators import OPERATORS

    assert MESH_DEFECTS is DEFECTS and tuple(OPERATORS) == DEFECTS
    tree = ast.parse((ROOT / "blender_scripts" / "defect.py").read_text())
    script = next(ast.literal_eval(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
                  and any(getattr(t, "id", "") == "DEFECTS" for t in n.targets))
    assert tuple(script) == DEFECTS


def test_the_checker_sees_a_back_edge(tmp_path):
    """The rule test itself can fail: a synthesizer importing a build driver is reported."""
    f = tmp_path / "bad.py"
    f.write_text("def f():\n    from anomalygen.builds.shapenet import build_dataset\n")
    (line, target, level), = _imports(f)
    assert (line, target, level) == (2, "anomalygen.builds.shapenet", 0)
    assert _stage(target) > _stage("anomalygen.mesh.operators")
