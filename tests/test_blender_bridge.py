"""The Blender bridge: warm workers, crash report + one retry, timeout, TMPDIR cleanup, `anomalygen blender run`.

Runs only where bpy (or a blender binary) is available; skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import trimesh

from anomalygen.blender.locate import bpy_importable

pytestmark = [pytest.mark.blender,
              pytest.mark.skipif(not bpy_importable(), reason="bpy is not importable: install the [blender] extra "
                                                            "(pip install 'anomalygen[blender]', bpy 5.0.1 on Python 3.11)")]

# prints a line, then crashes Blender with SIGSEGV unless its marker file exists (it creates it first)
CRASH_ONCE = textwrap.dedent("""
    import os, signal, sys
    marker = sys.argv[sys.argv.index("--") + 1]
    print("crash-once: before the crash", flush=True)
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGSEGV)
    print("crash-once: survived", flush=True)
""")
CRASH_ALWAYS = textwrap.dedent("""
    import os, signal
    print("crash-always: last words", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)
""")
RAISES = "raise RuntimeError('deliberate failure inside Blender')\n"
SLEEPS = "import time\ntime.sleep(60)\n"
TOUCH_BPY = textwrap.dedent("""
    import sys, bpy
    args = sys.argv[sys.argv.index("--") + 1:]
    bpy.ops.mesh.primitive_cube_add()
    with open(args[0], "w") as f:
        f.write(bpy.app.version_string + "|" + ",".join(args[1:]) + "|" + str(len(bpy.data.objects)))
    sys.exit(int(args[1]) if len(args) > 1 and args[1].isdigit() else 0)
""")


@pytest.fixture(scope="module")
def pool():
    from anomalygen.blender.workers import WorkerPool

    with WorkerPool(size=1, timeout=60) as p:
        yield p


@pytest.fixture
def script(tmp_path):
    def write(name, text):
        p = tmp_path / name
        p.write_text(text)
        return p
    return write


def test_one_process_serves_many_jobs(pool, tmp_path):
    mesh = trimesh.creation.icosphere(subdivisions=3)
    src = tmp_path / "sphere.ply"
    mesh.export(src)
    starts = pool.starts
    pids = set()
    for i, d in enumerate(["bulge", "hole", "scratch", "bending"]):
        out = tmp_path / f"{d}.ply"
        res = pool.defect({"input": str(src), "output": str(out), "defect": d, "seed": i})
        assert out.is_file() and res["watertight"]
        pids.add(pool.run([{"kind": "ping"}])[0]["result"]["pid"])
    assert pool.starts - starts <= 1 and len(pids) == 1


def test_jobs_do_not_leak_into_each_other(pool, tmp_path, script):
    """Factory reset between jobs: a script sees an empty scene whatever ran before."""
    s = script("touch.py", TOUCH_BPY)
    for k in range(2):
        out = tmp_path / f"o{k}.txt"
        pool.script(s, [str(out), "x"])
        assert out.read_text().endswith("|1")   # only its own cube


def test_crashed_job_is_reported_with_its_log_and_retried_once(pool, tmp_path, script):
    s = script("crash_once.py", CRASH_ONCE)
    pool.run([{"kind": "ping"}])          # a live worker first
    starts, seen = pool.starts, len(pool.incidents)
    reply = pool.script(s, [str(tmp_path / "marker")])
    assert reply["ok"]
    new = pool.incidents[seen:]
    assert len(new) == 1 and new[0].attempt == 1
    assert "signal 11" in new[0].reason
    assert "crash-once: before the crash" in new[0].log
    assert pool.starts == starts + 1   # a fresh worker took the retry
    # and the pool keeps serving
    assert pool.run([{"kind": "ping"}])[0]["ok"]


def test_job_that_crashes_twice_raises_with_the_blender_log(pool, script):
    from anomalygen.blender.workers import BlenderCrash

    s = script("crash_always.py", CRASH_ALWAYS)
    seen = len(pool.incidents)
    with pytest.raises(BlenderCrash) as err:
        pool.script(s)
    assert "also on its retry" in str(err.value)
    assert "crash-always: last words" in err.value.log
    assert [i.attempt for i in pool.incidents[seen:]] == [1, 2]


def test_python_error_in_a_job_is_not_a_crash(pool, script):
    from anomalygen.blender.workers import BlenderJobError

    s = script("raises.py", RAISES)
    pool.run([{"kind": "ping"}])          # a live worker first (an earlier test may have crashed it)
    starts = pool.starts
    with pytest.raises(BlenderJobError) as err:
        pool.script(s)
    assert "deliberate failure inside Blender" in str(err.value)
    assert "Traceback" in err.value.log
    assert pool.starts == starts          # same worker, no restart


def test_per_job_timeout_kills_the_worker(script):
    from anomalygen.blender.workers import BlenderCrash, WorkerPool

    s = script("sleeps.py", SLEEPS)
    with WorkerPool(size=1, timeout=3) as p:
        with pytest.raises(BlenderCrash, match="timed out after 3 s"):
            p.script(s)
        assert p.starts == 2 and len(p.incidents) == 2


def test_worker_tmpdir_holds_blender_folders_and_is_removed(tmp_path):
    from anomalygen.blender.workers import WorkerPool

    p = WorkerPool(size=1, timeout=60)
    p.run([{"kind": "ping"}])
    tmp = p._workers[0].tmp
    assert tmp.is_dir() and any(q.name.startswith("blender_") for q in tmp.iterdir())
    p.close()
    assert not tmp.exists()


def test_stale_tmpdirs_of_dead_builds_are_cleaned(tmp_path):
    from anomalygen.blender.workers import TMP_PREFIX, clean_stale_tmp

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{TMP_PREFIX}{dead.pid}-abc"
    (stale / "blender_x").mkdir(parents=True)
    mine = tmp_path / f"{TMP_PREFIX}{os.getpid()}-abc"
    mine.mkdir()
    removed = clean_stale_tmp(str(tmp_path))
    assert str(stale) in removed and not stale.exists() and mine.exists()


def test_engine_is_registered():
    from anomalygen.blender.engine import BlenderEngine
    from anomalygen.builds.engines import get_engine

    assert isinstance(get_engine("blender"), BlenderEngine)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-c", "import sys; from anomalygen.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def test_cli_blender_run_passes_args_and_exit_status(tmp_path, script):
    s = script("touch.py", TOUCH_BPY)
    out = tmp_path / "o.txt"
    r = _cli("blender", "run", str(s), "--", str(out), "a", "b")
    assert r.returncode == 0, r.stderr
    version, args, nobj = out.read_text().split("|")
    assert version.startswith("5.") or version[0].isdigit()
    assert args == "a,b" and int(nobj) >= 1
    r = _cli("blender", "run", str(s), "--", str(tmp_path / "o2.txt"), "3")
    assert r.returncode == 3


def test_cli_blender_run_shipped_defect_script(tmp_path):
    src = tmp_path / "s.ply"
    trimesh.creation.icosphere(subdivisions=3).export(src)
    out = tmp_path / "hole.ply"
    r = _cli("blender", "run", "defect", "--", "--input", str(src), "--output", str(out), "--defect", "hole",
             "--seed", "2", "--result", str(tmp_path / "hole.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    m = trimesh.load(out, process=False)
    assert m.is_watertight and len(m.faces) != 1280
    assert np.asarray(m.vertices).shape[1] == 3


def test_cli_unknown_script_is_one_line_exit_2():
    r = _cli("blender", "run", "no_such_script_xyz")
    assert r.returncode == 2
    assert "no Blender script" in r.stderr and "Traceback" not in r.stderr


def test_cli_no_blender_is_a_clear_error(tmp_path):
    r = _cli("blender", "run", "defect", env={"ANOMALYGEN_BLENDER": str(tmp_path / "nope")})
    assert r.returncode == 2
    assert "not an executable Blender" in r.stderr and "Traceback" not in r.stderr
