"""`build-shapenet --engine blender`: same layout, labels rule and manifest as the numpy engine;
and the blender-binary launch path (argv plumbing) through a stand-in executable.

Runs only where bpy is importable; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap

import pytest

from anomalygen.blender.locate import bpy_importable

pytestmark = [pytest.mark.blender,
              pytest.mark.skipif(not bpy_importable(), reason="bpy is not importable: install the [blender] extra "
                                                            "(pip install 'anomalygen[blender]', bpy 5.0.1 on Python 3.11)")]


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and ".anomalygen" not in p.parts and p.name != "manifest.json")


def test_build_with_blender_engine_matches_numpy_layout_and_validates(tmp_path):
    from anomalygen.builds.shapenet import build_dataset
    from anomalygen.recipes import load_recipe
    from anomalygen.validate import validate_dataset

    recipe = load_recipe("anomaly-shapenet", {"dataset.write_meshes": "all"})   # keep every sample's mesh
    kw = dict(classes="ashtray0", train_per_class=1, test_per_class=9, workers=1)   # 2 normal + all 7 defects
    b = build_dataset(tmp_path / "blender", recipe, engine="blender", **kw)
    n = build_dataset(tmp_path / "numpy", recipe, engine="numpy", **kw)
    assert _files(b.out) == _files(n.out)                       # the same files, same names
    assert validate_dataset(b.out).ok
    man = json.loads((b.out / "manifest.json").read_text())
    assert man["engine"] == "blender"
    assert man["label_rule"] == json.loads((n.out / "manifest.json").read_text())["label_rule"]
    anomalous = [s for s in man["samples"] if s["defect"] != "good"]
    assert sorted(s["defect"] for s in anomalous) == sorted(
        ["bulge", "concavity", "hole", "break", "bending", "crack", "scratch"])
    assert all(s["params"]["engine"] == "blender" for s in anomalous)
    lo, hi = man["validate"]["anomaly_ratio"]
    assert all(lo <= s["anomaly_ratio"] <= hi for s in anomalous)
    # the meshes Blender made are written and watertight
    import trimesh

    for s in anomalous:
        m = trimesh.load(b.out / "obj" / "ashtray0" / f"{s['name']}.obj", process=False, force="mesh")
        assert m.is_watertight, s["name"]


def test_binary_launcher_runs_the_worker_through_blender_style_argv(tmp_path, monkeypatch):
    """A stand-in `blender` that accepts Blender's CLI (-b ... --python SCRIPT -- ARGS) and runs the
    script with bpy: checks the argv the bridge builds for a real binary, end to end."""
    from anomalygen.blender.locate import find_launcher
    from anomalygen.blender.workers import WorkerPool

    fake = tmp_path / "blender"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, runpy, sys
        argv = sys.argv[1:]
        assert argv[0] == "-b" and "--factory-startup" in argv and "--python-exit-code" in argv, argv
        script = argv[argv.index("--python") + 1]
        sys.argv = [sys.argv[0]] + argv      # what Blender's Python sees: its whole argv
        runpy.run_path(script, run_name="__main__")
    """))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("ANOMALYGEN_BLENDER", str(fake))
    launcher = find_launcher()
    assert launcher.kind == "binary" and launcher.executable == str(fake)
    with WorkerPool(size=1, timeout=60, launcher=launcher) as pool:
        reply = pool.run([{"kind": "ping"}])[0]
        assert reply["ok"] and reply["result"]["pid"] != os.getpid()
