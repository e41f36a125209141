"""Builds on a Dask cluster (an in-test LocalCluster of 2 worker processes): the same bytes as the
local build, through a worker dying mid-build, after a resume, and failures reported by name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from anomalygen.builds.cluster import BuildFailed
from anomalygen.builds.render import render_mvtec3d
from anomalygen.builds.shapenet import build_dataset
from anomalygen.cli import cli
from anomalygen.io.json_stream import write_json_stream_atomic
from anomalygen.parallel import Failed, run_tasks
from anomalygen.recipes import load_recipe

distributed = pytest.importorskip("distributed")

SMALL = {"dataset.points": [2000, 3000], "dataset.write_meshes": "all"}
KW = dict(classes="eraser0,cup1", train_per_class=1, test_per_class=4)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".anomalygen" not in p.parts}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as c:
        yield c


@pytest.fixture(scope="module")
def local_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "ds"
    build_dataset(out, load_recipe("anomaly-shapenet", SMALL), workers=1, **KW)
    return out


class PatchRunJob(distributed.WorkerPlugin):
    """Replaces build-shapenet's per-sample task inside each worker process: `mode` 'kill-once' ends the
    worker process on the first task it sees (a marker file makes it once per cluster), 'fail' raises
    for the sample named `target` on every attempt."""

    def __init__(self, mode: str, marker: str, target: str = ""):
        self.mode, self.marker, self.target = mode, marker, target

    def setup(self, worker):
        import anomalygen.builds.shapenet as sn

        self.original = original = sn.run_job
        mode, marker, target = self.mode, self.marker, self.target

        def run_job(args):
            if mode == "kill-once" and not os.path.exists(marker):
                Path(marker).write_text("killed")
                os._exit(1)
            if mode == "fail" and args[2].name == target:
                Path(marker).write_text("failed")
                raise RuntimeError("mesh fell apart")
            return original(args)

        sn.run_job = run_job

    def teardown(self, worker):
        import anomalygen.builds.shapenet as sn

        sn.run_job = self.original


@pytest.fixture
def patched(cluster):
    """Install a PatchRunJob on every worker (restarted ones too) for one test."""
    with distributed.Client(cluster, set_as_default=False) as client:
        names = []

        def install(plugin):
            names.append(f"patch-{len(names)}")
            client.register_plugin(plugin, name=names[-1])

        yield install
        for n in names:
            client.unregister_worker_plugin(n)


def test_cluster_build_has_the_bytes_of_the_local_build(cluster, local_build, tmp_path):
    out = tmp_path / "dask"
    res = build_dataset(out, load_recipe("anomaly-shapenet", SMALL), scheduler=cluster.scheduler_address, **KW)
    assert res.reused == 0 and len(res.stats) == 10
    a, b = tree_bytes(local_build), tree_bytes(out)
    assert a.keys() == b.keys() and "manifest.json" in a and len(a) > 20
    assert [k for k in a if a[k] != b[k]] == []


def test_a_worker_killed_mid_build_still_gives_the_same_bytes(cluster, patched, local_build, tmp_path):
    marker = tmp_path / "killed"
    patched(PatchRunJob("kill-once", str(marker)))
    out = tmp_path / "dask"
    build_dataset(out, load_recipe("anomaly-shapenet", SMALL), scheduler=cluster.scheduler_address, **KW)
    assert marker.read_text() == "killed"  # a worker process did die running a sample
    assert tree_bytes(out) == tree_bytes(local_build)


def test_a_half_finished_cluster_build_resumes_to_the_same_bytes(cluster, local_build, tmp_path):
    out = tmp_path / "dask"

    class Killed(Exception):
        pass

    def killer(it, total):
        for i, x in enumerate(it):
            if i == 4:
                raise Killed
            yield x

    with pytest.raises(Killed):
        build_dataset(out, load_recipe("anomaly-shapenet", SMALL), scheduler=cluster.scheduler_address,
                      progress=killer, **KW)
    assert not (out / "manifest.json").exists()
    seen = []
    res = build_dataset(out, load_recipe("anomaly-shapenet", SMALL), scheduler=cluster.scheduler_address,
                        progress=lambda it, total: (seen.append(total), it)[1], **KW)
    assert res.reused >= 4 and seen == [10 - res.reused]  # only the missing samples were submitted
    assert tree_bytes(out) == tree_bytes(local_build)


def test_a_sample_failing_every_attempt_is_named_and_nothing_partial_is_left(cluster, patched, tmp_path):
    patched(PatchRunJob("fail", str(tmp_path / "failed"), target="cup1_template0"))
    out = tmp_path / "dask"
    r = CliRunner().invoke(cli, ["build-shapenet", "--out", str(out), "--classes", "eraser0,cup1",
                                 "--train-per-class", "1", "--test-per-class", "1", "--scheduler",
                                 cluster.scheduler_address, "--quiet"])
    assert r.exit_code == 1, r.output
    assert "failed: cup1/cup1_template0: RuntimeError: mesh fell apart (after 3 attempts)" in r.output
    assert "Traceback" not in r.output and not (out / "manifest.json").exists()
    assert not (out / "pcd" / "cup1" / "train" / "cup1_template0.pcd").exists()
    assert (out / "pcd" / "eraser0" / "train" / "eraser0_template0.pcd").is_file()  # the others were built
    assert [p for p in out.rglob("*") if ".tmp" in p.name] == []


def test_local_failures_are_retried_then_named_and_a_rerun_completes(tmp_path, monkeypatch):
    import anomalygen.builds.shapenet as sn

    calls = []
    original = sn.run_job

    def flaky(args):
        if args[2].name == "eraser0_template0":
            calls.append(1)
            raise ValueError("bad mesh")
        return original(args)

    monkeypatch.setattr(sn, "run_job", flaky)
    out = tmp_path / "ds"
    kw = dict(classes="eraser0", train_per_class=1, test_per_class=2, workers=1)
    with pytest.raises(BuildFailed) as info:
        build_dataset(out, load_recipe("anomaly-shapenet", SMALL), **kw)
    assert [str(f) for f in info.value.failures] == ["eraser0/eraser0_template0: ValueError: bad mesh (after 3 attempts)"]
    assert len(calls) == 3 and not (out / "manifest.json").exists()
    monkeypatch.setattr(sn, "run_job", original)
    res = build_dataset(out, load_recipe("anomaly-shapenet", SMALL), **kw)
    assert res.reused == 2 and json.loads(res.manifest.read_text())["counts"]["samples"] == 3


def _die_once(x):
    marker = Path(os.environ["ANOMALYGEN_TEST_MARKER"])
    if not marker.exists():
        marker.write_text("died")
        os._exit(1)
    return x * x


def test_local_pool_replaces_a_dead_process_and_finishes(tmp_path, monkeypatch):
    monkeypatch.setenv("ANOMALYGEN_TEST_MARKER", str(tmp_path / "m"))
    got = dict(run_tasks(_die_once, range(8), 8, str, workers=2))
    assert got == {i: i * i for i in range(8)} and (tmp_path / "m").read_text() == "died"


def test_inline_failures_carry_the_name_reason_and_attempts():
    def f(x):
        if x == 2:
            raise KeyError("two")
        return x

    got = dict(run_tasks(f, range(4), 4, lambda x: f"job{x}", retries=1))
    assert got[2] == Failed("job2", "KeyError: 'two'", 2) and got[3] == 3


@pytest.mark.parametrize("items", [[], [{"a": [1, 2], "b": {"c": 0.1}}], [{"x": i, "y": [i, "s"]} for i in range(5)]])
def test_streamed_json_equals_one_dumps(tmp_path, items):
    head = {"generator": "g", "nested": {"k": [1, {"z": None}]}, "n": 3}
    p = write_json_stream_atomic(tmp_path / "m.json", head, "samples", iter(items), indent=1, end="\n")
    assert p.read_text() == json.dumps({**head, "samples": items}, indent=1) + "\n"


def _tiny_render(counts=(1, 1, 1, 1)):
    r = load_recipe("render-mvtec3d")
    r["size"] = 40
    r["counts"] = dict(zip(("train", "validation", "test_good", "test_per_defect"), counts))
    return r


def test_render_on_the_cluster_matches_local_and_resumes_only_what_is_missing(cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "dask"
    render_mvtec3d(local, ["bagel", "tire"], _tiny_render(), workers=1)
    render_mvtec3d(remote, ["bagel", "tire"], _tiny_render(), scheduler=cluster.scheduler_address)
    assert tree_bytes(local) == tree_bytes(remote)
    gone = sorted((remote / ".anomalygen" / "records" / "tire").rglob("*.json"))[:2]
    for p in gone:
        p.unlink()
    totals = []
    render_mvtec3d(remote, ["bagel", "tire"], _tiny_render(), scheduler=cluster.scheduler_address,
                   progress=lambda it, total: (totals.append(total), it)[1])
    assert totals == [2] and tree_bytes(local) == tree_bytes(remote)


def _pid(job):
    return os.getpid()


def test_local_lanes_keep_each_group_in_one_process_and_use_every_process():
    """build-shapenet runs a class's samples in one process (its mesh set-up is then made once). Only
    once every group is handed out may an idle process take half of a group still waiting, so at most
    one group per process is split."""
    jobs = [(g, i) for g in range(12) for i in range(3)]
    got = dict(run_tasks(_pid, iter(jobs), len(jobs), str, workers=2, affinity=lambda j: j[0]))
    assert sorted(got) == jobs
    split = [g for g in range(12) if len({got[(g, i)] for i in range(3)}) > 1]
    assert len(split) <= 2, split
    assert len(set(got.values())) == 2


def test_local_lanes_replace_a_dead_process_and_finish(tmp_path, monkeypatch):
    monkeypatch.setenv("ANOMALYGEN_TEST_MARKER", str(tmp_path / "m"))
    got = dict(run_tasks(_die_once, range(12), 12, str, workers=2, affinity=lambda x: x // 4))
    assert got == {i: i * i for i in range(12)} and (tmp_path / "m").read_text() == "died"
