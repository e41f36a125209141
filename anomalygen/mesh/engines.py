"""Pluggable defect engines: one contract, several implementations.

    get_engine(name).apply(mesh, defect, params, seed) -> DefectResult
    get_engine(name).apply_many(jobs)                  -> [DefectResult]   (optional batching)

'numpy' (numpy/trimesh/manifold3d, in-process) is the default. Other engines register
themselves with `register_engine(name, factory)` when their package is imported;
'blender' lives in anomalygen.blender (imported on demand here).
"""

from __future__ import annotations

import importlib
from typing import Callable, Protocol

import numpy as np
import trimesh

from anomalygen.errors import AnomalygenError
from anomalygen.mesh.defects import DefectResult, apply_defect


class Engine(Protocol):
    name: str

    def apply(self, mesh: trimesh.Trimesh, defect: str, params: dict, seed: int) -> DefectResult: ...


class NumpyEngine:
    """The default engine: the pure operators of anomalygen.mesh.defects, run in-process."""

    name = "numpy"

    def apply(self, mesh: trimesh.Trimesh, defect: str, params: dict, seed) -> DefectResult:
        return apply_defect(mesh, defect, params, np.random.default_rng(seed))

    def apply_many(self, jobs) -> list[DefectResult]:
        return [self.apply(*job) for job in jobs]


_REGISTRY: dict[str, Callable[[], Engine]] = {"numpy": NumpyEngine}
# engines that live in optional packages: name -> module that registers it on import
_PLUGINS = {"blender": "anomalygen.blender"}


def register_engine(name: str, factory: Callable[[], Engine]) -> None:
    """Make `get_engine(name)` return `factory()`. Called by engine packages on import."""
    _REGISTRY[name] = factory


def available_engines() -> list[str]:
    return sorted(set(_REGISTRY) | set(_PLUGINS))


def get_engine(name: str = "numpy") -> Engine:
    """The engine called `name`; a clear AnomalygenError when it does not exist (yet)."""
    if name not in _REGISTRY and name in _PLUGINS:
        try:
            importlib.import_module(_PLUGINS[name])
        except ImportError as exc:
            raise AnomalygenError(
                f"engine {name!r} is not available in this build ({_PLUGINS[name]} could not be imported: {exc}); "
                "use --engine numpy") from None
    if name not in _REGISTRY:
        if name in _PLUGINS:
            raise AnomalygenError(f"engine {name!r} is not available yet ({_PLUGINS[name]} does not register it); "
                                  "use --engine numpy")
        raise AnomalygenError(f"unknown engine {name!r}; known: {', '.join(available_engines())}")
    return _REGISTRY[name]()
