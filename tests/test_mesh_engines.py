"""The engine registry: numpy by default, unknown names and missing plug-ins are clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from anomalygen.errors import AnomalygenError
from anomalygen.mesh import engines
from anomalygen.mesh.defects import DefectResult
from anomalygen.mesh.refine import refine


def test_numpy_engine_is_default_and_seeded():
    eng = engines.get_engine()
    assert eng.name == "numpy"
    m = refine(trimesh.creation.box((0.8, 0.5, 0.3)), 0.05)
    a = eng.apply(m, "bulge", {}, [1, 2])
    b = eng.apply(m, "bulge", {}, [1, 2])
    assert isinstance(a, DefectResult) and a.defect == "bulge"
    assert np.array_equal(a.mesh.vertices, b.mesh.vertices)


def test_unknown_engine_is_a_one_line_user_error():
    with pytest.raises(AnomalygenError, match="unknown engine 'povray'"):
        engines.get_engine("povray")


def test_plugin_engine_rejected_clearly_until_it_registers(monkeypatch):
    monkeypatch.setattr(engines, "_PLUGINS", {**engines._PLUGINS, "ghost": "anomalygen.no_such_engine_package"})
    with pytest.raises(AnomalygenError, match="engine 'ghost' is not available"):
        engines.get_engine("ghost")
    monkeypatch.setitem(engines._REGISTRY, "ghost", engines.NumpyEngine)
    assert engines.get_engine("ghost").name == "numpy"
