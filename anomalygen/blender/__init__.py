"""The Blender bridge: run `blender_scripts/` headless and the 'blender' defect engine.

    find_launcher()                 -> how to start Blender (bpy module or blender binary)
    WorkerPool(size, timeout)       -> warm Blender processes serving many jobs
    run_script(script, args)        -> one headless run of any Blender script
    engine.BlenderEngine            -> the 'blender' defect engine: same contract as the numpy engine
                                       (anomalygen.builds.engines names it; it loads on first use)
"""

from __future__ import annotations

from anomalygen.blender.locate import Launcher, find_launcher, resolve_script, scripts_dir
from anomalygen.blender.run import run_script
from anomalygen.blender.workers import BlenderCrash, BlenderError, BlenderJobError, WorkerPool

__all__ = ["Launcher", "find_launcher", "resolve_script", "scripts_dir", "run_script", "WorkerPool",
           "BlenderError", "BlenderJobError", "BlenderCrash"]
