"""The Blender bridge: run `blender_scripts/` headless and the 'blender' defect engine.

    find_launcher()                 -> how to start Blender (bpy module or blender binary)
    WorkerPool(size, timeout)       -> warm Blender processes serving many jobs
    run_script(script, args)        -> one headless run of any Blender script
    BlenderEngine                   -> get_engine('blender'): same contract as the numpy engine

Importing this package registers the 'blender' engine with anomalygen.mesh.engines
(the registry's plugin hook); the engine module itself loads on first use.
"""

from __future__ import annotations

from anomalygen.blender.locate import Launcher, find_launcher, resolve_script, scripts_dir
from anomalygen.blender.run import run_script
from anomalygen.blender.workers import BlenderCrash, BlenderError, BlenderJobError, WorkerPool

__all__ = ["Launcher", "find_launcher", "resolve_script", "scripts_dir", "run_script", "WorkerPool",
           "BlenderError", "BlenderJobError", "BlenderCrash", "engine_factory"]


def engine_factory():
    from anomalygen.blender.engine import BlenderEngine

    return BlenderEngine()


try:
    from anomalygen.mesh.engines import register_engine
except ImportError:  # the mesh package is optional for the bridge itself
    pass
else:
    register_engine("blender", engine_factory)
