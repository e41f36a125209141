"""Sculpt one defect into a mesh with Blender, headless, from a JSON job.

Runs INSIDE Blender and imports nothing from anomalygen (only bpy, bmesh,
mathutils and the numpy that ships with Blender), so a user can run it alone:

    python blender_scripts/defect.py -- --job job.json             # bpy module
    blender -b -P blender_scripts/defect.py -- --job job.json      # Blender binary
    python blender_scripts/defect.py -- --input in.ply --output out.ply \
        --defect bulge --seed 3 [--result out.json] [--param radius=0.1 ...]

Job (JSON): {"input": mesh path (.ply/.obj/.stl), "output": .ply path,
"result": .json path (optional), "defect": one of DEFECTS, "seed": int,
"params": {...}}. Every parameter is optional; a missing one is drawn from
the seed with a size relative to the object's bounding-box diagonal L.

Result (JSON): {"defect", "params" (every realized value), "watertight",
"vertices", "faces", "seconds", and for hole/break/crack "rim_points": points
on the rim where the cutter met the original surface}: what a labeler needs
to label a point cloud sampled from the output against the original mesh.

Where things live (helpers start with "_" so `anomalygen blender info` does not
list them as runnable scripts; this file puts its folder on sys.path, which
`blender -P` does not, before importing them):
    _scene.py     scene reset, mesh import/export, vertex data as numpy arrays
    _surface.py   surface geometry: random sites, tangent frames, surface paths,
                  polyline distance, local refinement, smooth noise
    _params.py    Params (given or seed-drawn values), object scale, defect site
                  and surface-path start
    _displace.py  bulge, concavity, scratch, bending: proportional-edit
                  transforms and Displace modifiers (sculpt brushes cannot run
                  in background mode)
    _carve.py     hole, break, crack: MANIFOLD booleans with irregular cutters
This file keeps the job: DEFECTS, OPERATORS, run_job and the command line.
The output is triangulated; booleans keep it watertight when the input is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:          # `blender -P` does not put the script's folder on sys.path
    sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from _carve import do_break, do_crack, do_hole  # noqa: E402
from _displace import do_bending, do_bump, do_scratch  # noqa: E402
from _params import Params, object_scale  # noqa: E402
from _scene import export_ply, import_mesh, is_watertight, reset_scene, triangulate  # noqa: E402

DEFECTS = ("bulge", "concavity", "hole", "break", "bending", "crack", "scratch")

OPERATORS = {
    "bulge": lambda ob, P: do_bump(ob, P, +1.0),
    "concavity": lambda ob, P: do_bump(ob, P, -1.0),
    "scratch": do_scratch,
    "bending": do_bending,
    "hole": do_hole,
    "break": do_break,
    "crack": do_crack,
}


# ----------------------------------------------------------------- job

def run_job(job: dict) -> dict:
    """Run one defect job; writes job['output'] (and job['result'] when given); returns the result."""
    t0 = time.time()
    defect = job.get("defect")
    if defect not in OPERATORS:
        raise ValueError(f"defect {defect!r}: expected one of {', '.join(DEFECTS)}")
    for key in ("input", "output"):
        if not job.get(key):
            raise ValueError(f"job lacks {key!r}")
    reset_scene()
    ob = import_mesh(job["input"])
    triangulate(ob)
    rng = np.random.default_rng(int(job.get("seed", 0)))
    L, _, _ = object_scale(ob)
    P = Params(job.get("params") or {}, rng, L)
    extra = OPERATORS[defect](ob, P)
    triangulate(ob)
    export_ply(ob, job["output"])
    rim = extra.pop("rim_points", None)
    result = {"defect": defect, "seed": int(job.get("seed", 0)), "params": P.out,
              "watertight": is_watertight(ob), "vertices": len(ob.data.vertices),
              "faces": len(ob.data.polygons), "scale": L, **extra}
    if rim is not None:
        result["rim_points"] = np.asarray(rim).round(7).tolist()
    result["seconds"] = round(time.time() - t0, 4)
    if job.get("result"):
        tmp = job["result"] + ".part"
        with open(tmp, "w") as f:
            json.dump(result, f)
        os.replace(tmp, job["result"])
    return result


def script_args(argv: list[str]) -> list[str]:
    """Arguments after '--' (Blender passes its own before it)."""
    return argv[argv.index("--") + 1:] if "--" in argv else []


def parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="defect.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--job", help="JSON job file (other options override its keys)")
    ap.add_argument("--input")
    ap.add_argument("--output")
    ap.add_argument("--result")
    ap.add_argument("--defect", choices=DEFECTS)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a defect parameter (JSON value), repeatable")
    a = ap.parse_args(script_args(sys.argv if argv is None else argv))
    job = {}
    if a.job:
        with open(a.job) as f:
            job = json.load(f)
    for key in ("input", "output", "result", "defect", "seed"):
        if getattr(a, key) is not None:
            job[key] = getattr(a, key)
    for kv in a.param:
        k, _, v = kv.partition("=")
        job.setdefault("params", {})[k] = parse_value(v)
    result = run_job(job)
    summary = {k: v for k, v in result.items() if k != "rim_points"}
    print("defect.py:", json.dumps(summary))
    return 0


if __name__ == "__main__":
    # An exception exits non-zero with its traceback: plain Python does so by itself,
    # the Blender binary when started with --python-exit-code 1 (the bridge does).
    _code = main()
    if _code:
        sys.exit(_code)
