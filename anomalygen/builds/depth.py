"""`depth-defects` driver: K DAS3D anomalous variants per training image, MVTec 3D-AD layout.

Output (under OUT):
    <class>/train/good/NNN           the (resized) normal training images
    <class>/validation/good/NNN      the input's validation images, resized
    <class>/test/good/NNN            the input's normal test images, resized
    <class>/test/<defect_name>/NNN   variant k of training image i is NNN = i*K + k (xyz, rgb, gt)
    manifest.json                    recipe, seed, per-variant parameters, validate bounds

Input: a real MVTec 3D-AD tree, or (no path) the rendered default (anomalygen.render.sample).
Every variant's Generator is seeded from (seed, class, training image, k), so any number
of workers and either device writes the same parameters; on one device, the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anomalygen.builds.cluster import BuildFailed, Ledger, drop_manifest, run_samples
from anomalygen.builds.settings import background_config, das3d_config, render_config
from anomalygen.depth.synth import (DAS3DConfig, draw_params, move_along_rays, no_defect_error, object_scale,
                                    ratio_accepted, synthesize, textured, variant_record)
from anomalygen.depth.textures import TextureSource
from anomalygen.errors import AnomalygenError, FormatError
from anomalygen.io import GOOD, ImageSample, detect_layout, mvtec3d, open_dataset
from anomalygen.io.atomic import clean_temp
from anomalygen.io.json_stream import write_json_stream_atomic
from anomalygen.io.output_dir import claim_output
from anomalygen.recipes import get_key, load_recipe, require
from anomalygen.render.sample import render_sample
from anomalygen.render.scene import known_classes
from anomalygen.scans import BackgroundConfig, remove_background, resize_sample
from anomalygen.seeds import path_seed


@dataclass(frozen=True)
class Source:
    """Where one input image comes from: a file reference or a render job (picklable)."""

    cls: str
    split: str
    defect: str
    name: str
    ref: object = None            # SampleRef for a real tree
    render: tuple | None = None   # (index, seed, RenderConfig) for the rendered default

    def load(self) -> ImageSample:
        if self.ref is not None:
            return self.ref.load()
        index, seed, cfg = self.render
        return render_sample(self.cls, self.split, self.defect, index, seed, cfg)[0]


def parse_input(spec: str) -> Path | None:
    """'mvtec3d' -> None (rendered default); 'mvtec3d=PATH' -> PATH."""
    kind, _, path = spec.partition("=")
    if kind != "mvtec3d":
        raise AnomalygenError(f"--input {spec!r}: expected 'mvtec3d' (rendered default) or 'mvtec3d=PATH'")
    return Path(path).expanduser() if path else None


def list_sources(input_path: Path | None, classes: list[str] | None, seed: int,
                 render_recipe: dict | None = None) -> dict[str, list[Source]]:
    """{class: sources} for the train, validation and normal test images of each class."""
    out: dict[str, list[Source]] = {}
    if input_path is None:
        rr = render_recipe or load_recipe("render-mvtec3d")
        cfg = render_config(rr)
        classes = classes or list(require(rr, "classes", str))
        for c in classes:
            if c not in known_classes():
                raise AnomalygenError(f"unknown class {c!r} for the rendered default; classes: {', '.join(known_classes())}")
        n_train, n_val, n_good, _ = cfg.counts
        for c in classes:
            out[c] = [Source(c, s, GOOD, mvtec3d.sample_name(i), render=(i, seed, cfg))
                      for s, n in (("train", n_train), ("validation", n_val), ("test", n_good)) for i in range(n)]
        return out
    if detect_layout(input_path) != mvtec3d.LAYOUT:
        raise AnomalygenError(f"{input_path}: not an MVTec 3D-AD tree (<class>/train/good/xyz/*.tiff)")
    ds = open_dataset(input_path, mvtec3d.LAYOUT)
    known = ds.classes()
    for c in classes or known:
        if c not in known:
            raise AnomalygenError(f"{input_path}: no class {c!r}; classes: {', '.join(known)}")
        refs = [r for r in ds.samples(c) if r.defect == GOOD]
        if not any(r.split == "train" for r in refs):
            raise AnomalygenError(f"{input_path}/{c}: no training images (train/good/xyz/*.tiff)")
        out[c] = [Source(c, r.split, GOOD, r.name, ref=r) for r in refs]
    return out


def variant_rng(seed: int, cls: str, train_name: str, k: int) -> np.random.Generator:
    return np.random.default_rng(path_seed(seed, "das3d", cls, train_name, k))


@dataclass(frozen=True)
class Job:
    out: Path
    source: Source
    train_index: int          # position among the class's training images (-1: copy only)
    per_image: int
    size: int
    seed: int
    defect_name: str
    cfg: DAS3DConfig
    bg: BackgroundConfig
    textures: str | None


class BadInput(AnomalygenError):
    """An input image that cannot be used; the run skips it and names it in the summary and manifest."""


def check_input(src: Source, s: ImageSample) -> None:
    """BadInput naming the sample when its xyz or rgb cannot be used (checked before anything of it is written)."""
    where = _source_name(src)
    xyz = np.asarray(s.xyz)
    if xyz.size == 0:
        raise BadInput(f"{where}: empty xyz image")
    if not np.isfinite(xyz).all():
        raise BadInput(f"{where}: xyz holds NaN or infinite coordinates")
    if not np.any(xyz != 0):
        raise BadInput(f"{where}: xyz is all zero (no valid point)")
    if s.rgb is not None:
        rgb = np.asarray(s.rgb)
        if rgb.shape[:2] != xyz.shape[:2]:
            raise BadInput(f"{where}: rgb is {rgb.shape[1]} x {rgb.shape[0]} pixels but xyz is "
                           f"{xyz.shape[1]} x {xyz.shape[0]}; they must be the same size")
        if rgb.ndim == 3 and rgb.shape[2] not in (1, 3, 4):
            raise BadInput(f"{where}: rgb has {rgb.shape[2]} channels (expected 3)")


def _prepare(job: Job):
    try:
        s = job.source.load()
    except FormatError as exc:
        raise BadInput(str(exc)) from None
    check_input(job.source, s)
    xyz, rgb, _ = resize_sample(s.xyz, s.rgb, None, job.size)
    if rgb is not None and rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb is not None and rgb.ndim == 3 and rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return s, xyz, rgb


def skipped_record(job: Job, reason: str) -> dict:
    src = job.source
    return {"cls": src.cls, "split": src.split, "defect": GOOD, "name": src.name, "source": _source_name(src),
            "skipped": reason}


def _write_normal(job: Job, xyz, rgb) -> dict:
    src = job.source
    mvtec3d.write_sample(job.out, ImageSample(xyz=xyz, rgb=rgb, mask=np.zeros(xyz.shape[:2], np.uint8), cls=src.cls,
                                              split=src.split, defect=GOOD, name=src.name))
    return {"cls": src.cls, "split": src.split, "defect": GOOD, "name": src.name, "source": _source_name(src)}


def _source_name(src: Source) -> str:
    return str(src.ref.files["xyz"]) if src.ref is not None else f"render:{src.cls}/{src.split}/{src.name}"


def _variant_name(job: Job, k: int) -> str:
    return mvtec3d.sample_name(job.train_index * job.per_image + k)


def _write_variant(job: Job, k: int, xyz, rgb, mask, record: dict) -> dict:
    name = _variant_name(job, k)
    mvtec3d.write_sample(job.out, ImageSample(xyz=xyz, rgb=rgb, mask=mask, cls=job.source.cls, split="test",
                                              defect=job.defect_name, name=name))
    return {"cls": job.source.cls, "split": "test", "defect": job.defect_name, "name": name,
            "source": _source_name(job.source), "train_name": job.source.name, "variant": k, **record}


def run_job(job: Job) -> list[dict]:
    """CPU path: one input image -> its normal copy (+ K variants for a training image). An input
    that cannot be used is skipped whole (nothing of it written) and returned as a `skipped` record."""
    try:
        _, xyz, rgb = _prepare(job)
        if job.train_index < 0:
            return [_write_normal(job, xyz, rgb)]
        fg = remove_background(xyz, job.bg, np.random.default_rng(0))
        if not fg.any():
            raise BadInput(f"{_source_name(job.source)}: background removal left no object pixel")
        textures = TextureSource(job.textures)
        variants = []  # all drawn before anything is written
        for k in range(job.per_image):
            rng = variant_rng(job.seed, job.source.cls, job.source.name, k)
            try:
                variants.append(synthesize(xyz, rgb, fg, job.cfg, rng, textures))
            except AnomalygenError as exc:
                raise BadInput(f"{_source_name(job.source)}: {exc}") from None
    except BadInput as exc:
        return [skipped_record(job, str(exc))]
    records = [_write_normal(job, xyz, rgb)]
    for k, syn in enumerate(variants):
        records.append(_write_variant(job, k, syn.xyz, syn.rgb, syn.mask, syn.record()))
    return records


def run_jobs_torch(jobs: list[Job], device: str, batch: int = 32, progress=None) -> list[dict]:
    """GPU path: depth defects of many variants per batched call; same parameter draws as run_job."""
    import torch

    from anomalygen.depth.synth_torch import depth_defect_batch  # imports torch

    records: list[dict] = []
    pending = []  # (job, k, rng, xyz, rgb, fg, scale)
    textures = TextureSource(jobs[0].textures) if jobs else None

    def flush():
        work = list(pending)
        pending.clear()
        tries = {id(w): 0 for w in work}
        done = {}
        while work:
            params = [draw_params(w[2], w[0].cfg, w[3].shape[:2]) for w in work]
            z = torch.as_tensor(np.stack([w[3][..., 2] for w in work]), device=device)
            fg = torch.as_tensor(np.stack([w[5] for w in work]), device=device)
            sc = torch.as_tensor([w[6] for w in work], device=device)
            z_a, delta, mask, _ = depth_defect_batch(z, fg, params, work[0][0].cfg, sc)
            z_a, mask = z_a.cpu().numpy(), mask.cpu().numpy()
            retry = []
            for i, w in enumerate(work):
                tries[id(w)] += 1
                if ratio_accepted(mask[i], w[0].cfg):
                    done[id(w)] = (params[i], z_a[i], mask[i], tries[id(w)])
                elif tries[id(w)] >= w[0].cfg.max_tries:
                    s = w[0].source
                    raise AnomalygenError(f"{s.cls}/{s.split}/{s.name}: {no_defect_error(w[0].cfg, w[5])}")
                else:
                    retry.append(w)
            work = retry
        return done

    def finish(items, done):
        for w in items:
            job, k, rng, xyz, rgb, fg, scale = w
            p, z_a, mask, ntries = done[id(w)]
            out_rgb, tex = None, None
            if rgb is not None:
                out_rgb, tex = textured(rgb, mask, p.beta, rng, textures)
            rec = variant_record(p, tex, ntries, mask, scale)
            records.append(_write_variant(job, k, move_along_rays(xyz, z_a, fg), out_rgb, mask, rec))

    for job in (progress(jobs, len(jobs)) if progress else jobs):
        try:
            _, xyz, rgb = _prepare(job)
        except BadInput as exc:
            records.append(skipped_record(job, str(exc)))
            continue
        fg = remove_background(xyz, job.bg, np.random.default_rng(0)) if job.train_index >= 0 else None
        if fg is not None and not fg.any():
            records.append(skipped_record(job, f"{_source_name(job.source)}: background removal left no object pixel"))
            continue
        records.append(_write_normal(job, xyz, rgb))
        if job.train_index >= 0:
            scale = object_scale(xyz, fg & np.any(xyz != 0, axis=-1))
            for k in range(job.per_image):
                pending.append((job, k, variant_rng(job.seed, job.source.cls, job.source.name, k), xyz, rgb,
                                fg & np.any(xyz != 0, axis=-1), scale))
            if len(pending) >= batch:
                items = list(pending)
                finish(items, flush())
    if pending:
        items = list(pending)
        finish(items, flush())
    return records


def _merge(base: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def depth_defects(out: str | os.PathLike, input_spec: str = "mvtec3d", classes: list[str] | None = None,
                  per_image: int | None = None, size: int | None = None, seed: int | None = None, workers: int = 1,
                  device: str = "cpu", recipe: dict | None = None, textures: str | None = None,
                  progress=None, overwrite: bool = False, scheduler: str | None = None) -> Path:
    """Write the DAS3D synthetic dataset under `out`; returns `out`. `progress(iterable, total)` wraps the
    stream of finished input images (e.g. tqdm). Input images that cannot be used are skipped and listed
    in the manifest's `skipped` (see `skipped_inputs`). On the CPU device a re-run with the same settings
    does only the images it lacks, and `scheduler` (a running Dask scheduler's address, its workers sharing
    `out`) runs one task per input image; images that fail on every attempt raise BuildFailed."""
    recipe = recipe or load_recipe("das3d")
    cfg = das3d_config(recipe)
    bg = background_config(recipe)
    seed = require(recipe, "seed", int) if seed is None else seed
    per_image = require(recipe, "per_image", int, 1, 1000) if per_image is None else per_image
    size = require(recipe, "size", int, 0, 4096) if size is None else size
    if per_image < 1:
        raise AnomalygenError("--per-image must be >= 1")
    if size and size < 16:
        raise AnomalygenError("--size must be 0 (keep) or >= 16")
    textures = textures or require(recipe, "rgb.textures", str)
    TextureSource(textures)  # fail early on a bad folder
    defect_name = require(recipe, "defect_name", str)
    if device not in ("cpu", "cuda"):
        raise AnomalygenError(f"--device {device!r}: expected cpu or cuda")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise AnomalygenError("--device cuda: no CUDA device visible to torch")
    input_path = parse_input(input_spec)
    render_recipe = None
    if input_path is None:  # rendered default: the das3d recipe's `render` mapping overrides render-mvtec3d
        render_recipe = load_recipe("render-mvtec3d")
        _merge(render_recipe, get_key(recipe, "render", {}) or {})
        if size:
            render_recipe["size"] = size
    sources = list_sources(input_path, classes, seed, render_recipe)
    out = claim_output(out, "depth-defects", overwrite)
    jobs = []
    for cls, srcs in sources.items():
        t = 0
        for s in srcs:
            ti = -1
            if s.split == "train":
                ti, t = t, t + 1
            jobs.append(Job(out, s, ti, per_image, size, seed, defect_name, cfg, bg, textures))
    head = {
        "generator": "anomalygen depth-defects (DAS3D synthesis, Eq. 1-8)",
        "input": str(input_path) if input_path else "rendered default (anomalygen render-mvtec3d recipe)",
        "recipe": recipe.get("_source"), "seed": seed, "per_image": per_image, "size": size, "device": device,
        "textures": textures, "config": {k: v for k, v in recipe.items() if not k.startswith("_")},
        "render": ({k: v for k, v in render_recipe.items() if not k.startswith("_")} if render_recipe else None),
        "validate": {"points": [1, (size * size) if size else 10 ** 9], "anomaly_ratio": list(cfg.anomaly_ratio)},
    }
    if device == "cuda":
        records = run_jobs_torch(jobs, "cuda", progress=progress)
        stream = lambda: iter(records)  # noqa: E731
    else:
        stream = _run_cpu(out, jobs, head, workers, scheduler, progress)
    head["skipped"] = [r for r in stream() if "skipped" in r]  # after the ledger took its fingerprint from head
    write_json_stream_atomic(out / "manifest.json", head, "samples", (r for r in stream() if "skipped" not in r),
                             indent=1)
    clean_temp(out)
    return out


def _job_key(job: Job) -> str:
    return f"{job.source.cls}/{job.source.split}/{job.source.name}"


def _run_cpu(out: Path, jobs: list[Job], head: dict, workers: int, scheduler: str | None, progress):
    """Run the input images a previous run with the same settings did not finish (locally or on a
    Dask cluster); returns a function giving the stream of every variant's record (skipped inputs
    included), in plan order, read from disk."""
    ledger = Ledger(out, head)
    todo = [j for j in jobs if not ledger.done(_job_key(j))]
    if todo:
        drop_manifest(out)
    here, failures = out.resolve(), []  # workers on other machines need the absolute path of the shared folder
    for job, records in run_samples(run_job, (dataclasses.replace(j, out=here) for j in todo), len(todo), _job_key,
                                    failures, workers=workers, scheduler=scheduler, progress=progress):
        ledger.put(_job_key(job), records)
    if failures:
        raise BuildFailed(failures, len(jobs))
    return lambda: (r for j in jobs for r in ledger.get(_job_key(j)))


def skipped_inputs(out: str | os.PathLike) -> list[dict]:
    """The input images a depth-defects run in `out` skipped, with the reason (from its manifest)."""
    try:
        return list(json.loads((Path(out) / "manifest.json").read_text()).get("skipped", []))
    except (OSError, ValueError):
        return []
