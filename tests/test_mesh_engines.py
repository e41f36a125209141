"""The engine registry: numpy by default, unknown names and engines that cannot load are clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from anomalygen.builds import engines
from anomalygen.builds.settings import defect_params
from anomalygen.errors import AnomalygenError
from anomalygen.mesh import DefectResult, refine
from anomalygen.recipes import load_recipe


def test_numpy_engine_is_default_and_seeded():
    eng = engines.get_engine()
    assert eng.name == "numpy"
    m = refine(trimesh.creation.box((0.8, 0.5, 0.3)), 0.05)
    params = defect_params(load_recipe("anomaly-shapenet"), "bulge")
    a = eng.apply(m, "bulge", params, [1, 2])
    b = eng.apply(m, "bulge", params, [1, 2])
    assert isinstance(a, DefectResult) and a.defect == "bulge"
    assert np.array_equal(a.mesh.vertices, b.mesh.vertices)


def test_unknown_engine_is_a_one_line_user_error():
    with pytest.raises(AnomalygenError, match="unknown engine 'povray'"):
        engines.get_engine("povray")


def test_engine_that_cannot_load_is_rejected_clearly(monkeypatch):
    monkeypatch.setitem(engines.ENGINES, "ghost", "anomalygen.no_such_engine_package:Engine")
    with pytest.raises(AnomalygenError, match="engine 'ghost' is not available"):
        engines.get_engine("ghost")
    engines.register_engine("ghost", "anomalygen.mesh.engines:NumpyEngine")
    assert engines.get_engine("ghost").name == "numpy"


def test_listing_engines_imports_no_engine():
    """Entries are lazy: naming the engines loads neither the Blender bridge nor bpy."""
    import subprocess
    import sys

    code = ("import sys; from anomalygen.builds.engines import available_engines; "
            "print(available_engines(), 'anomalygen.blender' in sys.modules, 'bpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['blender', 'numpy'] False False"
