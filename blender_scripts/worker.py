"""A long-lived Blender process that serves many jobs: one JSON line in, one JSON line out.

Runs INSIDE Blender and imports nothing from anomalygen:

    python blender_scripts/worker.py -- --serve                    # bpy module
    blender -b --factory-startup -P blender_scripts/worker.py -- --serve

Starting Blender costs about a second and 270 MB; a worker pays it once and then
answers jobs from stdin until stdin closes (so it also exits when its parent dies).

Messages (one JSON object per line on stdin):
    {"id": 7, "kind": "defect", "job": {...}}            -> defect.run_job(job)
    {"id": 8, "kind": "script", "path": "x.py", "args": [...]}
                                                          -> runs x.py as __main__ with
                                                             sys.argv = [x.py, "--", *args]
    {"id": 9, "kind": "ping"}                             -> {"pid", "blender"}
Replies go to the ORIGINAL stdout, which this script keeps for itself; everything
else Blender or a job prints (fd 1 and fd 2) goes to stderr, the worker's log.
Each reply: {"id", "ok", "result" | "error" + "traceback", "seconds"}.
The scene is reset to factory settings before every job, so jobs are independent.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:          # `blender -P` does not put the script's folder on sys.path
    sys.path.insert(0, HERE)

import bpy  # noqa: E402

import defect  # noqa: E402  (blender_scripts/defect.py)


def run_script(path: str, args: list[str]) -> dict:
    defect.reset_scene()
    saved = sys.argv
    sys.argv = [path, "--", *args]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise RuntimeError(f"{os.path.basename(path)} exited with status {exc.code}") from None
    finally:
        sys.argv = saved
    return {}


def handle(msg: dict) -> dict:
    kind = msg.get("kind")
    if kind == "defect":
        return defect.run_job(msg["job"])
    if kind == "script":
        return run_script(msg["path"], [str(a) for a in msg.get("args", [])])
    if kind == "ping":
        return {"pid": os.getpid(), "blender": bpy.app.version_string}
    raise ValueError(f"unknown message kind {kind!r}")


def serve() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)   # replies only
    os.dup2(2, 1)                                     # Blender's own prints -> the log
    sys.stdout = sys.stderr
    proto.write(json.dumps({"ready": True, "pid": os.getpid(), "blender": bpy.app.version_string}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        t0 = time.time()
        msg = {}
        try:
            msg = json.loads(line)
            print(f"[worker {os.getpid()}] job {msg.get('id')} ({msg.get('kind')}) start", file=sys.stderr, flush=True)
            reply = {"id": msg.get("id"), "ok": True, "result": handle(msg)}
        except Exception as exc:   # a job's error is its reply; the worker lives on
            reply = {"id": msg.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc()}
            print(reply["traceback"], file=sys.stderr)
        reply["seconds"] = round(time.time() - t0, 4)
        print(f"[worker {os.getpid()}] job {msg.get('id')} done in {reply['seconds']} s", file=sys.stderr, flush=True)
        proto.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if argv[:1] != ["--serve"]:
        print("usage: worker.py -- --serve   (JSON jobs on stdin, replies on stdout)", file=sys.stderr)
        sys.exit(2)
    serve()
