"""benchmarks/gpu.py --smoke: the GPU command's whole path (plan, data, every detector stage in its own
process, the table) on the CPU at tiny sizes; and a stage that fails or runs over loses only its own rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"
DETECTORS = ("btf", "nearest", "das3d", "imrnet", "zal3d")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-smoke")
    res = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--budget-minutes", "20"],
                         capture_output=True, text=True, timeout=1500)  # ~1.5 min on 2 idle cores, 6 at load 17
    return out, res


def test_smoke_prints_its_plan_first_and_writes_a_row_per_stage(smoke):
    out, res = smoke
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    text = res.stdout
    assert text.index("plan of this smoke run") < text.index("device: CPU only") < text.index("| detector |")
    for name in ("das3d", "imrnet", "zal3d"):
        assert f"\n  {name} sizes: " in text
    rows = json.loads((out / "rows.json").read_text())
    assert {r["stage"] for r in rows} == {"data", *DETECTORS, "synth"}
    assert not any("failed" in str(r.get("notes", "")) or "skipped" in str(r.get("notes", "")) for r in rows)
    trained = {r["detector"]: r for r in rows if r["detector"] in ("das3d", "imrnet", "zal3d")}
    assert all(r["steps"] > 0 and r["fwd_ms"] > 0 and r["e2e_ms"] > 0 for r in trained.values())
    for r in rows:
        if r["stage"] in DETECTORS:
            assert r["i_auroc"] is not None and (r["point_auroc"] if r["data"] == "points" else r["p_auroc"]) is not None
    assert [r for r in rows if r["stage"] == "synth"][0]["samples_per_s"] > 0
    table = (out / "table.md").read_text()
    assert table.startswith("device: CPU only") and table.count("\n| ") == 1 + len(rows)


def test_a_stage_that_fails_or_runs_over_gives_a_note_and_nothing_else_stops(smoke, monkeypatch):
    """The driver runs each stage as a child process: a failure or an overrun becomes that row's note."""
    out, _ = smoke
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import gpu

    work = out / "work"
    plan = json.loads((work / "plan.json").read_text())
    plan["setup"]["sections"]["imrnet"] = {**plan["setup"]["sections"]["imrnet"], "n_points": 16}  # < groups: refused
    (work / "plan.json").write_text(json.dumps(plan))
    (row,) = gpu._run_child("imrnet", out, work, limit=300)
    assert row["notes"].startswith("failed (exit 1)") and "imrnet.groups" in row["notes"]
    (row,) = gpu._run_child("nearest", out, work, limit=1)
    assert row["notes"] == "failed: over its 1 s limit, stopped" and row["stage_s"] < 30


def test_the_gpu_plan_uses_the_shipped_sizes_and_fits_8_minutes(monkeypatch):
    """The plan's arithmetic (counted FLOPs and operator calls of one training step at the shipped
    recipe sizes) leaves the whole GPU run under 8 minutes, with at least one epoch per network."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import gpu

    from anomalygen.recipes import load_recipe

    setup = gpu.setup(False)
    assert setup["sections"]["das3d"] == load_recipe("detectors")["das3d"]
    plan = gpu.make_plan(setup)
    assert plan["total_s"] <= 8 * 60
    for name in ("das3d", "imrnet", "zal3d"):
        stage = plan["stages"][name]
        assert stage["epochs"] >= 1 and stage["flops"] > 0 and stage["calls"] > 0
    assert plan["stages"]["das3d"]["params"] > 100e6  # DRAEM-sized nets, not a tiny recipe
