"""The 'blender' defect engine: same contract as the numpy engine, sculpted in Blender.

    BlenderEngine().apply(mesh, defect, params, seed) -> DefectResult
    BlenderEngine().apply_many([(mesh, defect, params, seed), ...]) -> [DefectResult]

Division of labour: the SIZE of a defect is decided here exactly as the numpy engine
decides it (same recipe keys, same target-ratio sizing through
anomalygen.geometry, same `size_scale` the build driver adjusts; the SIZERS below
mirror the sizing lines of anomalygen.mesh.defects and must follow them), and the SHAPE
is made inside Blender by blender_scripts/defect.py (proportional-edit transforms,
Displace modifiers, MANIFOLD booleans with irregular cutters). The labeler then
treats the result like any other engine's: distance to the original mesh, plus the
rim points Blender reports for hole/break/crack.

Blender runs in warm worker processes (anomalygen.blender.workers): one pool per
Python process, started on first use and closed at exit.
"""

from __future__ import annotations

import atexit
import hashlib
import math
import multiprocessing.util
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import trimesh

from anomalygen.errors import AnomalygenError
from anomalygen import geometry as g
from anomalygen.mesh.result import DEFECTS, REMOVAL, DefectResult
from anomalygen.mesh.sizing import (bending_frame, break_site, break_size, bump_plan, groove_plan, hole_size,
                                    realize_params)
from anomalygen.blender.workers import BlenderCrash, BlenderJobError, WorkerPool

# Blender proportional-edit falloffs usable as brush profiles (the script's names)
FALLOFFS = ("SMOOTH", "SPHERE", "ROOT", "SHARP")
ENV_WORKERS = "ANOMALYGEN_BLENDER_WORKERS"
ENV_TIMEOUT = "ANOMALYGEN_BLENDER_TIMEOUT"

_POOL: WorkerPool | None = None
_POOL_PID: int | None = None
_LOCK = threading.Lock()
_WORKDIR: dict[int, Path] = {}             # pid -> this process's job folder
_MESH_FILES: dict[str, Path] = {}          # mesh hash -> its PLY in the job folder (a few, newest last)
MAX_MESH_FILES = 4


def _rmtree_if_mine(path: Path, pid: int) -> None:
    if os.getpid() == pid:
        shutil.rmtree(path, ignore_errors=True)


def workdir() -> Path:
    """This process's folder for job files (input PLYs, outputs); removed at exit.

    One per process, whatever the number of BlenderEngine objects (the build driver
    makes one per sample); its name carries the pid so clean_stale_tmp removes it
    when a killed build left it behind.
    """
    pid = os.getpid()
    d = _WORKDIR.get(pid)
    if d is None or not d.is_dir():
        d = Path(tempfile.mkdtemp(prefix=f"anomalygen-blender-{pid}-jobs-"))
        _WORKDIR[pid] = d
        _MESH_FILES.clear()
        atexit.register(_rmtree_if_mine, d, pid)
        multiprocessing.util.Finalize(None, _rmtree_if_mine, args=(d, pid), exitpriority=5)
    return d


def shared_pool() -> WorkerPool:
    """This process's worker pool (size from $ANOMALYGEN_BLENDER_WORKERS, default 1).

    Each build worker process gets its own pool; it is closed at interpreter exit and
    by multiprocessing's finalizers (pool processes skip atexit).
    """
    global _POOL, _POOL_PID
    with _LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = WorkerPool(size=int(os.environ.get(ENV_WORKERS, "1")),
                               timeout=float(os.environ.get(ENV_TIMEOUT, "120")))
            _POOL_PID = os.getpid()
            atexit.register(_POOL.close)
            multiprocessing.util.Finalize(_POOL, _POOL.close, exitpriority=10)
        return _POOL


def _profile(s: np.ndarray, falloff: str) -> np.ndarray:
    """Blender's proportional-edit falloff at s = distance / size (1 at the centre, 0 at s = 1)."""
    x = 1.0 - np.clip(s, 0.0, 1.0)
    return {"SMOOTH": 3 * x ** 2 - 2 * x ** 3, "SPHERE": np.sqrt(np.clip(2 * x - x * x, 0, 1)),
            "ROOT": np.sqrt(x), "SHARP": x * x}[falloff]


def _reach(falloff: str, level: float) -> float:
    """Largest s where the falloff is still >= level (level in (0, 1))."""
    s = np.linspace(0.0, 1.0, 2001)
    ok = _profile(s, falloff) >= level
    return float(s[ok].max()) if ok.any() else 1e-3


# ------------------------------------------------------------------ jobs: the shared sizing, Blender's shapes

def _bump_job(mesh, p, rng, sign):
    c, n, h, tau, r_lab = bump_plan(mesh, p, rng, sign)
    falloff = FALLOFFS[int(rng.integers(len(FALLOFFS)))]
    R = max(r_lab / _reach(falloff, tau / h), 1e-6)   # displacement == tau at r_lab
    return {"center": c.tolist(), "normal": n.tolist(), "radius": R, "height": h, "falloff": falloff,
            "roughness": float(rng.uniform(0.0, 0.2))}


def _bending_job(mesh, p, rng):
    v = np.asarray(mesh.vertices, dtype=np.float64)
    u, s0, w, pivot, a = bending_frame(mesh, p, rng)
    s = v @ u
    angle = float(p["angle_deg"]) * float(rng.choice([-1.0, 1.0]))
    # Blender: the part past s0 + w rotates rigidly about the hinge (pivot, a); proportional
    # editing ramps the band [s0, s0 + w] in, like the numpy engine's smoothstep
    # Blender must select at least the tip: when the band reaches past the far end, the
    # rigid part starts halfway between the hinge and the tip instead
    rigid_from = min(w, 0.5 * (float(s.max()) - s0))
    return {"direction": u.tolist(), "pivot": pivot.tolist(), "axis": a.tolist(), "angle": angle,
            "transition": rigid_from, "rigid_from": rigid_from}


def _hole_job(mesh, p, rng):
    c, n, _ = g.pick_surface_point(mesh, rng)
    r, depth, _ = hole_size(mesh, c, n, p)
    return {"center": c.tolist(), "normal": n.tolist(), "radius": r, "depth": depth,
            "irregularity": float(rng.uniform(0.05, 0.2))}


def _break_job(mesh, p, rng):
    c, n = break_site(mesh, p, rng)
    r = break_size(mesh, c, n, p)
    return {"center": c.tolist(), "normal": n.tolist(), "radius": r, "offset": float(p["offset"]),
            "irregularity": float(p["roughness"])}


def _groove_job(mesh, p, rng, defect):
    D = g.diagonal(mesh)
    strokes = int(p.get("strokes", 1)) if defect == "scratch" else 1
    c, n, width, depth, strokes, length = groove_plan(mesh, p, rng, defect, strokes, defect == "crack")
    t1, _ = g.frame(n, rng)
    step = float(p["step"]) * D
    job = {"center": c.tolist(), "normal": n.tolist(), "direction": t1.tolist(), "length": length,
           "depth": depth, "step": step, "waviness": math.radians(float(p["jitter_deg"]))}
    if defect == "scratch":
        # the numpy engine sizes `length` for a labeled band of about width + depth per stroke
        # (box floor + walls); a smooth V groove deeper than tau over ~2/3 of its half-width
        # needs a half-width of (width + depth) / 1.34 to label the same band
        half = (width + depth) / 1.34
        job.update(width=half, strokes=strokes, spacing=float(p.get("stroke_spacing", 2.5)) * width / half,
                   step=min(step, half))
    else:
        job.update(width=width)
    return job


SIZERS = {
    "bulge": lambda m, p, r: _bump_job(m, p, r, +1.0),
    "concavity": lambda m, p, r: _bump_job(m, p, r, -1.0),
    "bending": _bending_job,
    "hole": _hole_job,
    "break": _break_job,
    "crack": lambda m, p, r: _groove_job(m, p, r, "crack"),
    "scratch": lambda m, p, r: _groove_job(m, p, r, "scratch"),
}


# ------------------------------------------------------------------ the engine

class BlenderEngine:
    """Defects sculpted by Blender in warm worker processes (see module docstring)."""

    name = "blender"

    def __init__(self, pool: WorkerPool | None = None):
        self._pool = pool

    @property
    def pool(self) -> WorkerPool:
        return self._pool or shared_pool()

    def check_available(self) -> None:
        """AnomalygenError naming what was looked for when no Blender can be started (checked before a
        build writes anything)."""
        if self._pool is None:
            from anomalygen.blender.run import check_starts

            check_starts()

    def _mesh_file(self, mesh: trimesh.Trimesh) -> Path:
        """The input mesh as binary PLY, written once per distinct mesh (a few kept per process)."""
        v = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
        f = np.ascontiguousarray(mesh.faces, dtype=np.int64)
        key = hashlib.sha1(v.tobytes() + f.tobytes()).hexdigest()[:16]
        path = _MESH_FILES.pop(key, None)
        if path is None or not path.is_file():
            path = workdir() / f"in-{key}.ply"
            tmp = path.with_suffix(".part")
            tmp.write_bytes(trimesh.exchange.ply.export_ply(trimesh.Trimesh(v, f, process=False), encoding="binary"))
            os.replace(tmp, path)
        _MESH_FILES[key] = path            # newest last
        while len(_MESH_FILES) > MAX_MESH_FILES:
            old = _MESH_FILES.pop(next(iter(_MESH_FILES)))
            old.unlink(missing_ok=True)
        return path

    def job(self, mesh: trimesh.Trimesh, defect: str, params: dict, seed) -> tuple[dict, dict]:
        """(Blender job, realized recipe params) of one defect: sizing done, shape left to Blender."""
        if defect not in DEFECTS:
            raise AnomalygenError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
        rng = np.random.default_rng(seed)
        p = realize_params(defect, params, rng)
        bparams = SIZERS[defect](mesh, p, rng)
        name = hashlib.sha1(repr((defect, np.asarray(seed).tolist(), sorted(bparams.items()))).encode()).hexdigest()[:12]
        out = workdir() / f"{defect}-{name}"
        job = {"input": str(self._mesh_file(mesh)), "output": f"{out}.ply", "defect": defect,
               "seed": int(rng.integers(2 ** 31)), "params": bparams}
        return job, p

    def _result(self, mesh: trimesh.Trimesh, defect: str, job: dict, p: dict, reply: dict) -> DefectResult:
        out = Path(job["output"])
        try:
            m = trimesh.load(out, process=False, force="mesh")
        finally:
            out.unlink(missing_ok=True)
        m = g.canonical(trimesh.Trimesh(np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int64),
                                        process=False))
        if mesh.is_watertight and not reply.get("watertight"):
            raise ValueError(f"Blender {defect} result is not watertight")
        drawn = {k: v for k, v in p.items() if isinstance(v, (int, float, str, bool))}
        real = {k: v for k, v in reply.get("params", {}).items() if k not in ("path", "paths")}
        D = g.diagonal(mesh)
        for k in ("radius", "height", "depth", "width", "length", "transition", "rigid_from", "step"):
            if isinstance(real.get(k), (int, float)):
                real[k] = real[k] / D   # lengths as fractions of the diagonal, like the numpy engine
        rim = np.asarray(reply["rim_points"], dtype=np.float64) if defect in REMOVAL else None
        info = {"engine": "blender", "seconds": reply.get("seconds"), "paths": reply.get("params", {}).get("paths")}
        return DefectResult(m, defect, {**drawn, **real, "engine": "blender"}, rim_points=rim, info=info)

    def apply(self, mesh: trimesh.Trimesh, defect: str, params: dict, seed) -> DefectResult:
        return self.apply_many([(mesh, defect, params, seed)])[0]

    def apply_many(self, jobs) -> list[DefectResult]:
        """Run several defects at once (spread over the pool's workers)."""
        prepared = [(mesh, defect, *self.job(mesh, defect, params, seed)) for mesh, defect, params, seed in jobs]
        msgs = [{"kind": "defect", "job": job} for _, _, job, _ in prepared]
        try:
            replies = self.pool.run(msgs)
        except BlenderJobError as exc:   # this draw cannot make the defect: the driver redraws
            raise ValueError(exc.summary) from None
        except BlenderCrash:
            raise
        return [self._result(mesh, defect, job, p, r["result"]) for (mesh, defect, job, p), r in zip(prepared, replies)]
