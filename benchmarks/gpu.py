"""One command for a lent GPU: every detector at its default (paper) size on a small built set, in 8 minutes.

    python benchmarks/gpu.py --out runs/gpu [--budget-minutes 8]      # on the GPU machine
    python benchmarks/gpu.py --smoke --out /tmp/gpu-smoke              # the same path on a CPU, tiny sizes
    python benchmarks/gpu.py --plan                                    # print the H100 plan and stop

Stages, each in its own process (one failing, crashing or running over loses only its own rows), in order:
  data     build-shapenet (1 class, paper's 4 train / 36 test) and render-mvtec3d (bagel, tire, foam at 256 px)
  synth    samples/s of the batched DAS3D depth synthesis (anomalygen.depth.synth_torch; goal 5,000/s)
  nearest  the trivial baseline on both data kinds (BENCHMARKS.md: beside BTF);  btf: BTF on both
  das3d    DAS3D on bagel;  imrnet: IMRNet on the point class (backbone: imrnet.pretrained as the recipe sets it)
  zal3d    3DzAL zero-shot, trained on bagel, tested on tire (foam: its task-irrelevant data)
Network sizes are the `recipes/detectors.yaml` sections as shipped (the paper's); only the epochs are set
here, so that the plan fits the budget. The plan is printed first: per stage the counted FLOPs and
operator calls of one training step (torch's FlopCounterMode on the loss, forward and backward), the
assumed efficiency, and the expected seconds on an H100. Training stops at its planned time x 1.5
(the shared loop's time budget) and a stage still running at its deadline gets SIGTERM, then SIGKILL.
The table (OUT/table.md) and the rows (OUT/rows.json) are rewritten after every stage; the plan
(OUT/plan.json) and each stage's log (OUT/logs/NAME.log) are there too; data and runs go to --work.

Columns: the metrics of evaluate_run; steps trained; train s (wall, the fit alone); fwd ms = one network
forward pass for one sample at test shape (batch 1, after warm-up, under the scoring precision);
e2e ms = score() per test sample (evaluate's ms/sample); peak GPU MiB = torch's max allocated while
training / while scoring (peak RSS MiB on a CPU). Precision: run.precision auto (bf16 autocast on the GPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

H100_BF16_FLOPS = 798e12  # bf16 8192^3 matmul measured on this workplace's H100 (device KINDS.md)
LAUNCH_S = 10e-6          # assumed cost of one eager operator call (dispatch + kernel launch) on the GPU
STARTUP_S = 20.0          # assumed: a stage process importing torch, Lightning, open3d and starting CUDA
EFFICIENCY = {"das3d": 0.35, "imrnet": 0.15, "zal3d": 0.05}  # assumed share of the bf16 peak (convs; small
                                                             # transformer matmuls; tiny PointNet++ layers)
HOST_S = {"fpfh": 0.3, "imrnet": 0.05, "das3d": 0.01}  # assumed CPU seconds per test sample outside the network
TRAIN_S = {"das3d": 90.0, "imrnet": 50.0, "zal3d": 20.0}  # training time each network gets on the H100 plan
SYNTH_SECONDS = 5.0
ZAL3D_OBJECT_CELLS = 0.12  # share of a rendered scan's grid cells holding object points (measured at 128 px)
STAGES = ("data", "synth", "nearest", "btf", "das3d", "imrnet", "zal3d")  # cheap, key figures first
POINTS_CLASS, IMAGE_CLASSES = "ashtray0", ("bagel", "tire", "foam")


# ---------------------------------------------------------------------------------------------- sizes
def setup(smoke: bool) -> dict:
    """Data commands, per-detector recipe sections and overrides of the full run or the smoke run."""
    from anomalygen.recipes import load_recipe

    workers = 1 if smoke else max(1, min(12, (os.cpu_count() or 2) - 2))
    if smoke:
        points = ["--classes", "1", "--set", "dataset.test_per_class=6", "--set", "dataset.points=[2000,3000]"]
        images = ["--classes", ",".join(IMAGE_CLASSES), "--size", "64", "--set", "counts.train=4",
                  "--set", "counts.validation=1", "--set", "counts.test_good=1", "--set", "counts.test_per_defect=1"]
        sections = {"das3d": load_recipe("das3d-tiny")["das3d"], "imrnet": load_recipe("imrnet-tiny")["imrnet"],
                    "zal3d": {**load_recipe("zal3d-tiny")["zal3d"]}}
        extra = {"btf": {"btf.images.image_size": 64, "btf.points.n_points": 512}, "nearest": {},
                 "das3d": {}, "imrnet": {}, "zal3d": {}}
        run = {"run.device": "cpu", "run.threads": 1, "run.loader_workers": 0}
    else:
        points = ["--classes", "1", "--workers", str(workers)]
        images = ["--classes", ",".join(IMAGE_CLASSES), "--size", "256", "--workers", str(workers)]
        rec = load_recipe("detectors")
        sections = {k: rec[k] for k in ("das3d", "imrnet", "zal3d")}
        extra = {k: {} for k in ("btf", "nearest", "das3d", "imrnet", "zal3d")}
        run = {"run.device": "auto", "run.loader_workers": min(8, workers)}
    return {"smoke": smoke, "workers": workers, "points_cmd": points, "images_cmd": images, "sections": sections,
            "extra": extra, "run": {**run, "run.save_maps": False, "run.precision": "auto"}}


def _train_items(name: str, section: dict, smoke: bool) -> int:
    """Training items per epoch: training samples x repeat (zal3d: every object cell of every training scan,
    `positives` cells per item)."""
    from anomalygen.recipes import load_recipe

    if name == "imrnet":
        return 4 * section.get("repeat", 16)  # build-shapenet: 4 train clouds per class
    counts = load_recipe("render-mvtec3d")["counts"]
    n = 4 if smoke else counts["train"]
    if name == "zal3d":
        grid = section.get("image_size", 224) // section.get("patch_size", 8)
        return n * math.ceil(ZAL3D_OBJECT_CELLS * grid * grid / section.get("positives", 8))
    return n * section.get("repeat", 1)


# ---------------------------------------------------------------------------------------------- counting
def count_step(name: str, section: dict) -> dict:
    """FLOPs and operator calls of one training step (loss forward + backward) at the section's sizes.

    DAS3D runs on the meta device (no arithmetic: 21 TFLOP would take minutes on a CPU); IMRNet and
    3DzAL draw data-dependent shapes (FPS, GPS, masks), which the meta device cannot, so they run on the
    CPU at batch 1 and their FLOPs are scaled to the batch (operator calls do not grow with it)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    from anomalygen.detectors import get_detector

    class Calls(TorchDispatchMode):  # entered inside FlopCounterMode: sees each operator once, before it
        def __init__(self):           # decomposes what it cannot count
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    det = get_detector(name)(section, "cpu")
    c = det.cfg
    b = c.train.batch_size
    meta = name == "das3d"
    batch_n = b if meta else 1
    with torch.device("meta" if meta else "cpu"), torch.random.fork_rng():
        torch.manual_seed(0)
        net = det.build_network()
        batch = _synthetic_batch(name, c, batch_n)
    calls = Calls()
    t = time.perf_counter()
    with FlopCounterMode(display=False) as flops, calls:
        det.training_loss()(net, batch)["loss"].backward()
    params = sum(p.numel() for p in net.parameters())
    return {"flops": flops.get_total_flops() * (b // batch_n), "calls": calls.n, "params": params, "batch": b,
            "counted_on": "meta" if meta else "cpu, batch 1 scaled", "count_s": time.perf_counter() - t}


def _synthetic_batch(name: str, c, b: int) -> dict:
    import torch

    if name == "das3d":
        s = c.size
        img = lambda ch: torch.rand(b, ch, s, s)  # noqa: E731
        return {"rgb": img(3), "depth": img(1), "rgb_aug": img(3), "depth_aug": img(1), "mask": torch.zeros(b, 1, s, s)}
    if name == "imrnet":  # the loader workers thin each cloud and choose its centres (imrnet/data.py)
        return {"points": torch.randn(b, c.n_points, 3),
                "centres": torch.stack([torch.randperm(c.n_points)[:c.groups] for _ in range(b)])}
    w = torch.ones(b)
    return {"pos": torch.randn(b, c.positives, c.patch_points, 3),
            "neg": torch.randn(b, c.positives * c.negatives, c.patch_points, 3), "fpfh": torch.rand(b, c.positives, 33),
            "w_con": w, "w_rd": w, "w_bce": w, "temperature": w * c.temperature}


def make_plan(setup_: dict) -> dict:
    """Per stage: sizes, steps and the expected seconds on an H100, with the arithmetic."""
    smoke = setup_["smoke"]
    stages = {"data": {"expect_s": 45.0, "why": f"assumed: two builds on {setup_['workers']} workers + imports"},
              "btf": {"expect_s": STARTUP_S + (36 + 4 + 12 + 8) * HOST_S["fpfh"],
                      "why": f"{STARTUP_S:.0f} s start + (36+4 points, 12+8 images) samples x {HOST_S['fpfh']} s FPFH"},
              "nearest": {"expect_s": STARTUP_S + 10.0, "why": f"{STARTUP_S:.0f} s start + 10 s KD-trees (assumed)"},
              "synth": {"expect_s": STARTUP_S + 2 * SYNTH_SECONDS,
                        "why": f"{STARTUP_S:.0f} s start + 2 x {SYNTH_SECONDS:.0f} s timed batches"}}
    tests = {"das3d": 12, "imrnet": 36, "zal3d": 12}
    for name in ("das3d", "imrnet", "zal3d"):
        section = setup_["sections"][name]
        n = count_step(name, section)
        from anomalygen.detectors import get_detector

        cfg = get_detector(name)(section, "cpu").cfg
        per_epoch = math.ceil(_train_items(name, section, smoke) / cfg.train.batch_size)
        gpu_s = n["flops"] / (EFFICIENCY[name] * H100_BF16_FLOPS)
        launch_s = n["calls"] * LAUNCH_S
        step_s = max(gpu_s, launch_s)
        if smoke:
            epochs = min(cfg.train.epochs, 2)
        else:
            epochs = max(1, min(cfg.train.epochs, int(TRAIN_S[name] / step_s) // per_epoch))
        train_s = epochs * per_epoch * step_s
        host = HOST_S["fpfh"] if name == "zal3d" else HOST_S[name]
        score_s = tests[name] * (host + 3 * step_s / cfg.train.batch_size)
        extra_s = {"zal3d": 20 * HOST_S["fpfh"], "imrnet": 8 * 3 * launch_s}.get(name, 0.0)
        stages[name] = {
            **n, "epochs": epochs, "steps_per_epoch": per_epoch, "steps": epochs * per_epoch, "step_s": step_s,
            "train_s": train_s, "expect_s": STARTUP_S + train_s + score_s + extra_s,
            "why": (f"{STARTUP_S:.0f} s start + {epochs * per_epoch} steps x max({n['flops'] / 1e12:.3g} TFLOP / "
                    f"({EFFICIENCY[name]:.2f} x {H100_BF16_FLOPS / 1e12:.0f} TFLOP/s) = {gpu_s * 1e3:.1f} ms, "
                    f"{n['calls']} calls x {LAUNCH_S * 1e6:.0f} us = {launch_s * 1e3:.1f} ms) = {train_s:.0f} s train + "
                    f"{tests[name]} tests x ({host} s host + 3 x step/batch) = {score_s:.0f} s"
                    + (f" + {extra_s:.0f} s (FPFH of 20 train/irrelevant scans)" if name == "zal3d" else "")
                    + (f" + {extra_s:.0f} s (template: 8 analyses)" if name == "imrnet" else ""))}
    stages = {k: stages[k] for k in STAGES}
    return {"stages": stages, "total_s": sum(s["expect_s"] for s in stages.values())}


def print_plan(plan: dict, setup_: dict, title: str) -> None:
    print(f"\n{title}")
    for name, sec in setup_["sections"].items():
        keys = {k: v for k, v in sec.items() if not isinstance(v, dict) and k in SIZE_KEYS}
        print(f"  {name} sizes: " + ", ".join(f"{k}={v}" for k, v in keys.items()))
    print(f"  {'stage':8s} {'params':>8s} {'batch':>5s} {'steps':>6s} {'TFLOP/step':>10s} {'calls/step':>10s} "
          f"{'expect s':>8s}  arithmetic")
    for name, s in plan["stages"].items():
        print(f"  {name:8s} {s.get('params', 0) / 1e6:7.1f}M {s.get('batch', '-'):>5} {s.get('steps', '-'):>6} "
              f"{s.get('flops', 0) / 1e12:10.3g} {s.get('calls', '-'):>10} {s['expect_s']:8.0f}  {s['why']}")
    print(f"  total expected: {plan['total_s'] / 60:.1f} min (H100 bf16 peak {H100_BF16_FLOPS / 1e12:.0f} TFLOP/s measured "
          f"here; efficiencies, {LAUNCH_S * 1e6:.0f} us per call, start and host times are assumptions)")


SIZE_KEYS = ("size", "width", "depth", "disc_width", "disc_depth", "n_points", "groups", "patch_points", "dim", "heads",
             "decoder_depth", "image_size", "patch_size", "centers", "group", "positives", "negatives", "repeat")


# ---------------------------------------------------------------------------------------------- stages
def stage_data(work: Path, plan: dict) -> list[dict]:
    from anomalygen.cli import cli

    s = plan["setup"]
    t = time.perf_counter()
    for command, args, where in (("build-shapenet", s["points_cmd"], "points"),
                                 ("render-mvtec3d", s["images_cmd"], "images")):
        try:
            cli.main(args=[command, *args, "--out", str(work / "data" / where), "--overwrite"], prog_name="anomalygen",
                     standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise
    return [{"stage": "data", "detector": "data build", "notes": f"points: build-shapenet {' '.join(s['points_cmd'])}; images: render-mvtec3d "
                                       f"{' '.join(s['images_cmd'])}", "train_s": time.perf_counter() - t}]


def _overrides(plan: dict, name: str) -> dict:
    s = plan["setup"]
    out = {**s["run"], **s["extra"][name]}
    if name in s["sections"]:
        flat = _flatten(s["sections"][name], name)
        out.update(flat)
        out[f"{name}.train.epochs"] = plan["stages"][name]["epochs"]
    return out


def _flatten(d: dict, prefix: str) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}.{k}"))
        else:
            out[f"{prefix}.{k}"] = v
    return out


def stage_detector(work: Path, plan: dict, name: str) -> list[dict]:
    import torch

    from anomalygen.detectors.base import Detector
    from anomalygen.detectors.engine import evaluate_run, train_detector
    from anomalygen.detectors.resources import lifetime_peak_rss_mib, reset_peak_rss
    from anomalygen.detectors.runs import model_dir

    kinds = {"btf": ("points", "images"), "nearest": ("points", "images"), "das3d": ("images",),
             "imrnet": ("points",), "zal3d": ("images",)}[name]
    # the H100 plan's training time x 1.5 bounds each fit; the smoke run trains its few steps unbounded
    budget = None if plan["setup"]["smoke"] else plan["stages"].get(name, {}).get("train_s")
    rows = []
    for kind in kinds:
        data = work / "data" / kind
        classes = {"classes": [POINTS_CLASS if not plan["setup"]["smoke"] else _first_class(data)]} if kind == "points" \
            else {"classes": [IMAGE_CLASSES[0]]}
        if name == "zal3d":
            classes = {"train_classes": [IMAGE_CLASSES[0]], "test_classes": [IMAGE_CLASSES[1]]}
        run_dir = work / "runs" / f"{name}-{kind}"
        cuda = torch.cuda.is_available() and plan["setup"]["run"]["run.device"] != "cpu"
        _reset_peak(cuda, reset_peak_rss)
        t = time.perf_counter()
        run = train_detector(name, data, run_dir, **classes, overrides=_overrides(plan, name), evaluate=False,
                             overwrite=True, progress=False, max_minutes=budget * 1.5 / 60 if budget else None)
        train_s = time.perf_counter() - t
        train_peak = _peak(cuda, lifetime_peak_rss_mib)
        _reset_peak(cuda, reset_peak_rss)
        metrics = evaluate_run(run_dir, progress=False)
        score_peak = _peak(cuda, lifetime_peak_rss_mib)
        info = next(iter(run["trained"].values()))
        det = Detector.load(model_dir(run_dir, next(iter(run["trained"]))), plan["setup"]["run"]["run.device"])
        det.precision = plan["setup"]["run"]["run.precision"]
        task = metrics["rows"][0]
        trained_on = ",".join(task["train"])
        rows.append({"stage": name, "detector": name, "data": kind,
                     "task": task["test"] if trained_on == task["test"] else f"{trained_on} -> {task['test']}",
                     **{k: metrics["mean"].get(k) for k in ("i_auroc", "point_auroc", "p_auroc", "aupro")},
                     "steps": info.get("steps"), "epochs": info.get("epochs"), "stopped": info.get("stopped"),
                     "train_s": train_s, "fwd_ms": forward_ms(det), "e2e_ms": metrics["mean"].get("ms_per_sample"),
                     "peak_train_mib": train_peak, "peak_score_mib": score_peak, "samples": task["samples"],
                     "device": metrics["device"]})
    return rows


def _first_class(data: Path) -> str:
    from anomalygen.io import open_dataset

    return sorted(open_dataset(data).classes())[0]


def _reset_peak(cuda: bool, reset_rss) -> None:
    import torch

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        reset_rss()


def _peak(cuda: bool, rss) -> float:
    import torch

    if cuda:
        return torch.cuda.max_memory_allocated() / 2**20
    from anomalygen.detectors.resources import _vmhwm_mib

    return _vmhwm_mib() or rss()


def forward_ms(det, repeats: int = 10, warmup: int = 3) -> float | None:
    """One network forward pass for one sample at the shapes scoring uses, batch 1, under det.autocast()."""
    import torch

    net = getattr(det, "network", None)
    if net is None:
        return None
    c, dev = det.cfg, det.device
    if det.name == "das3d":
        args, call = (torch.rand(1, 3, c.size, c.size, device=dev), torch.rand(1, 1, c.size, c.size, device=dev)), net
    elif det.name == "imrnet":
        from anomalygen.detectors.imrnet.compare import cover_masks

        mask = cover_masks(c.groups, c.iterations, c.mask_ratio, torch.Generator().manual_seed(0))[0]
        args = (torch.randn(1, c.groups, 3, device=dev), 0.05 * torch.randn(1, c.groups, c.patch_points, 3, device=dev),
                mask.to(dev))
        call = net
    elif det.name == "zal3d":
        args, call = (torch.randn(c.grid ** 2, c.patch_points, 3, device=dev),), net
    else:
        return None
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.no_grad(), det.autocast():
        for _ in range(warmup):
            call(*args)
        sync()
        t = time.perf_counter()
        for _ in range(repeats):
            call(*args)
        sync()
    return 1000.0 * (time.perf_counter() - t) / repeats


def stage_synth(work: Path, plan: dict) -> list[dict]:
    """Batched DAS3D depth synthesis samples/s on the device: parameter draws (numpy, per item) + one batched call."""
    import numpy as np
    import torch

    from anomalygen.builds.settings import background_config, das3d_config
    from anomalygen.depth.synth import draw_params
    from anomalygen.depth.synth_torch import depth_defect_batch
    from anomalygen.io import open_dataset
    from anomalygen.recipes import load_recipe
    from anomalygen.scans import remove_plane

    smoke = plan["setup"]["smoke"]
    dev = torch.device("cuda" if torch.cuda.is_available() and not smoke else "cpu")
    ref = open_dataset(work / "data" / "images").samples(IMAGE_CLASSES[0], "train")[0]
    xyz = np.asarray(ref.load().xyz, np.float32)
    recipe = load_recipe("das3d")
    fg = remove_plane(xyz, background_config(recipe), np.random.default_rng(0)) & np.any(xyz != 0, axis=-1)
    cfg = das3d_config(recipe)
    rows = []
    for b in ((8,) if smoke else (64, 256)):
        z = torch.as_tensor(np.stack([xyz[..., 2]] * b), device=dev)
        fgt = torch.as_tensor(np.stack([fg] * b), device=dev)
        scale = torch.full((b,), 0.1, device=dev)
        rng = np.random.default_rng(0)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

        def batch():
            depth_defect_batch(z, fgt, [draw_params(rng, cfg, xyz.shape[:2]) for _ in range(b)], cfg, scale)
            sync()
        batch()  # warm-up
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < (1.0 if smoke else SYNTH_SECONDS) or n == 0:
            batch()
            n += 1
        rate = n * b / (time.perf_counter() - t)
        rows.append({"stage": "synth", "detector": "DAS3D synthesis", "data": f"{xyz.shape[0]} px",
                     "task": f"batch {b}", "samples_per_s": rate, "device": str(dev),
                     "peak_score_mib": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
                     "notes": f"goal 5,000/s: {'met' if rate >= 5000 else 'not met'}"})
    return rows


def run_stage(name: str, work: Path) -> int:
    plan = json.loads((work / "plan.json").read_text())
    if plan["setup"]["smoke"]:
        import torch

        torch.set_num_threads(1)
    rows = stage_data(work, plan) if name == "data" else stage_synth(work, plan) if name == "synth" \
        else stage_detector(work, plan, name)
    _write_json(work / "rows" / f"{name}.json", rows)
    return 0


# ---------------------------------------------------------------------------------------------- table
COLUMNS = [("detector", "detector", "{}"), ("data", "data", "{}"), ("task", "class", "{}"), ("i_auroc", "I-AUROC", "{:.3f}"),
           ("point_auroc", "point AUROC", "{:.3f}"), ("p_auroc", "P-AUROC", "{:.3f}"), ("aupro", "AUPRO@0.3", "{:.3f}"),
           ("steps", "steps", "{}"), ("train_s", "train s", "{:.1f}"), ("fwd_ms", "fwd ms", "{:.2f}"),
           ("e2e_ms", "e2e ms", "{:.1f}"), ("peak_train_mib", "peak train MiB", "{:.0f}"),
           ("peak_score_mib", "peak score MiB", "{:.0f}"), ("samples_per_s", "samples/s", "{:.0f}"), ("stage_s", "stage s", "{:.0f}"), ("notes", "notes", "{}")]


def table(rows: list[dict], header: str) -> str:
    lines = [header, "", "| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            v = r.get(key)
            cells.append("-" if v is None or v == "" else fmt.format(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1, default=str))
    tmp.replace(path)


def device_header(smoke: bool) -> str:
    import torch

    from anomalygen.detectors.resources import cpu_name

    if torch.cuda.is_available() and not smoke:
        p = torch.cuda.get_device_properties(0)
        dev = f"{p.name}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    else:
        dev = "CPU only (smoke run: tiny sizes, figures are not speed results)" if smoke else "no GPU: CPU"
    return (f"device: {dev}; host: {cpu_name()}, {os.cpu_count()} logical CPUs, load {os.getloadavg()[0]:.1f}; "
            f"torch {torch.__version__}")


# ---------------------------------------------------------------------------------------------- driver
def drive(args) -> int:
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "work"
    work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    deadline = start + args.budget_minutes * 60.0 - 5.0
    setup_ = setup(args.smoke)
    plan = make_plan(setup_)
    print_plan(plan, setup_, "plan of this smoke run (CPU, tiny recipes; expected seconds are the H100 arithmetic; "
                             "the GPU run's plan: --plan):" if args.smoke else
               "plan of the GPU run (H100, sizes of recipes/detectors.yaml):")
    if args.plan:
        return 0 if plan["total_s"] <= 8 * 60 else 1
    _write_json(out / "plan.json", {**plan, "setup": setup_})
    _write_json(work / "plan.json", {**plan, "setup": setup_})
    header = device_header(args.smoke)
    print(f"\n{header}", flush=True)
    rows: list[dict] = []
    stages = [s for s in STAGES if not args.stages or s in args.stages.split(",") or s == "data"]
    for name in stages:
        left = deadline - time.monotonic()
        need = 5.0 if args.smoke else min(STARTUP_S, plan["stages"][name]["expect_s"])
        if left < need:
            rows.append({"stage": name, "detector": name, "notes": f"skipped: {left:.0f} s of the budget left"})
        else:
            # a stage gets twice its planned time (the smoke run's plan is H100 arithmetic: it gets what is left)
            capped = not (args.smoke or name == "data")
            limit = min(left, max(2.0 * plan["stages"][name]["expect_s"], 60.0)) if capped else left
            rows += _run_child(name, out, work, limit)
            if name == "data" and not (work / "rows" / "data.json").exists():
                print(f"the data stage failed: nothing to train on ({out / 'logs' / 'data.log'})", file=sys.stderr)
                (out / "table.md").write_text(table(rows, header))
                return 1
        (out / "table.md").write_text(table(rows, header))
        _write_json(out / "rows.json", rows)
        print(f"  {name}: done at {time.monotonic() - start:.0f} s", flush=True)
    print("\n" + table(rows, header))
    print(f"wall time {time.monotonic() - start:.0f} s (budget {args.budget_minutes:g} min); table: {out / 'table.md'}")
    return 0 if all("failed" not in str(r.get("notes", "")) for r in rows) else 1


def _run_child(name: str, out: Path, work: Path, limit: float) -> list[dict]:
    """Run one stage in its own process group, logging to OUT/logs/NAME.log; SIGTERM at `limit`, SIGKILL 15 s on."""
    log = out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    (work / "rows" / f"{name}.json").unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--work", str(work)]
    t = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            code = proc.wait(timeout=limit)
            note = "" if code == 0 else f"failed (exit {code}): {_last_line(log)}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            note = f"failed: over its {limit:.0f} s limit, stopped"
    path = work / "rows" / f"{name}.json"
    rows = json.loads(path.read_text()) if path.exists() else [{"stage": name, "detector": name}]
    for r in rows:
        r["stage_s"] = time.monotonic() - t
        if note:
            r["notes"] = note
    return rows


def _last_line(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:160] if lines else "no output"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Runs here on a CPU with --smoke (tiny sizes, under 3 minutes).")
    ap.add_argument("--out", default="runs/gpu", help="folder for table.md, rows.json, plan.json and logs/")
    ap.add_argument("--work", default=None, help="folder for the built data and the runs (default: OUT/work)")
    ap.add_argument("--budget-minutes", type=float, default=8.0, help="the whole run stops itself before this")
    ap.add_argument("--smoke", action="store_true", help="same path on the CPU at tiny sizes")
    ap.add_argument("--plan", action="store_true", help="print the plan and stop (exit 1 if over 8 minutes)")
    ap.add_argument("--stages", default="", help=f"comma-separated subset of {','.join(STAGES)} (data always runs)")
    ap.add_argument("--stage", help=argparse.SUPPRESS)  # a child process runs one stage
    args = ap.parse_args(argv)
    if args.stage:
        return run_stage(args.stage, Path(args.work))
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
