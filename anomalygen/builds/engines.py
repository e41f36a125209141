"""Which defect engines a build can use, by name: numpy (default) and blender.

Entries are lazy import strings, so listing engines imports neither bpy nor the Blender
bridge, and the synthesizer packages never import each other to find one.
"""

from __future__ import annotations

import importlib

from anomalygen.errors import AnomalygenError

ENGINES: dict[str, str] = {
    "numpy": "anomalygen.mesh.engines:NumpyEngine",
    "blender": "anomalygen.blender.engine:BlenderEngine",
}


def register_engine(name: str, target: str) -> None:
    """Make `get_engine(name)` build `target` ('package.module:Class', imported on first use)."""
    ENGINES[name] = target


def available_engines() -> list[str]:
    return sorted(ENGINES)


def get_engine(name: str = "numpy"):
    """A new engine called `name`; one clear AnomalygenError when it is unknown or cannot load."""
    if name not in ENGINES:
        raise AnomalygenError(f"unknown engine {name!r}; known: {', '.join(available_engines())}")
    module, _, cls = ENGINES[name].partition(":")
    try:
        factory = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise AnomalygenError(f"engine {name!r} is not available in this build ({module} could not be imported: "
                              f"{exc}); use --engine numpy") from None
    engine = factory()
    check = getattr(engine, "check_available", None)
    if check is not None:  # e.g. Blender: fail before anything is written, not at the first defect
        check()
    return engine
