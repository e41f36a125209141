"""The `build-shapenet` driver: shapes -> refined meshes -> defects -> points + labels -> files.

One seed decides everything: a sample's Generator is seeded from (recipe seed, crc32(class),
split, index[, attempt]), so the bytes written do not depend on `workers`, on the order
samples finish, or on whether the build was killed and resumed. Each sample's files are
written atomically, then a small record (.anomalygen/records/<class>/<name>.json); a re-run
skips samples whose record and files exist, and writes manifest.json from the records.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from anomalygen import __version__
from anomalygen.errors import AnomalygenError
from anomalygen.parallel import ordered_map
from anomalygen.io import PointSample, write_bytes_atomic, write_text_atomic
from anomalygen.io import anomaly_shapenet as asn
from anomalygen.io.samples import GOOD
from anomalygen.recipes import get_key, require
from anomalygen import geometry as g
from anomalygen.builds.difficulty import recipe_difficulty, scale_defect
from anomalygen.builds.engines import get_engine
from anomalygen.mesh.labels import label_points
from anomalygen.mesh.objfile import obj_bytes
from anomalygen.mesh.refine import refine
from anomalygen.mesh.result import DEFECTS, REMOVAL
from anomalygen.mesh.sampling import sample_surface
from anomalygen.seeds import class_entropy
from anomalygen.shapes.sources import open_source

SPLIT_CODE = {"train": 0, "test": 1}
RETRY_EXPONENT = {"bulge": 2.0, "concavity": 2.0, "bending": 1.0, "hole": 1.5, "break": 1.5, "crack": 1.0, "scratch": 1.0}
LABEL_RULE = ("a point is anomalous iff its distance to the ORIGINAL (pre-defect) surface exceeds tau, or, for "
              "removal defects (hole, break, crack), it lies within rim_distance of the rim of the removed region; "
              "tau and rim_distance are fractions of the object's bounding-box diagonal")
STATE_DIR = ".anomalygen"


@dataclass(frozen=True)
class Job:
    cls: str
    split: str
    index: int
    defect: str  # GOOD for normal samples
    name: str


@dataclass
class Settings:
    """Everything a worker needs, all plain data (picklable)."""

    seed: int
    points: tuple[int, int]
    ratio: tuple[float, float]
    tau: float
    rim_distance: float
    max_retries: int
    accept_factor: float
    max_edge: float
    voxel_pitch: float
    defect_params: dict
    engine: str
    source: str | None
    binary: bool
    write_meshes: str  # 'normal' (one per class) | 'all' (every sample) | 'none'


@dataclass
class Record:
    cls: str
    split: str
    name: str
    defect: str
    seed: list[int]
    points: int
    anomaly_ratio: float
    target_ratio: float | None = None
    attempts: int = 0
    params: dict = field(default_factory=dict)
    seconds: float = 0.0  # not in the manifest (timing differs run to run)


# ------------------------------------------------------------------ planning

def sample_seed(seed: int, cls: str, split: str, index: int) -> list[int]:
    return class_entropy(seed, cls, SPLIT_CODE[split], index)


def plan_class(cls: str, seed: int, train: int, test: int, normal_fraction: float, defects: list[str]) -> list[Job]:
    """The jobs of one class: `train` templates, then `test` samples whose defect types cycle
    through `defects` (order shuffled per class) with round(test * normal_fraction) normals."""
    jobs = [Job(cls, "train", k, GOOD, asn.sample_name(cls, "train", k)) for k in range(train)]
    rng = np.random.default_rng(class_entropy(seed, cls, 7))
    n_normal = int(round(test * normal_fraction)) if defects else test
    order = list(rng.permutation(defects)) if defects else []
    kinds = [GOOD] * n_normal + [order[i % len(order)] for i in range(test - n_normal)]
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    jobs += [Job(cls, "test", n, d, asn.sample_name(cls, "test", n, d)) for n, d in enumerate(kinds)]
    return jobs


# ------------------------------------------------------------------ per-worker state

_CACHE: dict = {}


def _source(settings: Settings):
    key = ("source", settings.source, settings.voxel_pitch)
    if key not in _CACHE:
        _CACHE[key] = open_source(settings.source, settings.voxel_pitch)
    return _CACHE[key]


def class_mesh(settings: Settings, cls: str):
    """(refined unit-diagonal mesh, description) of a class, cached per process."""
    key = ("mesh", settings.source, settings.seed, cls, settings.max_edge)
    if key not in _CACHE:
        src = _source(settings)
        mesh = src.mesh(cls, np.random.default_rng(class_entropy(settings.seed, cls)))
        fine = refine(mesh, settings.max_edge * g.diagonal(mesh))
        _CACHE[key] = (fine, src.describe(cls))
        for k in [k for k in _CACHE if k[0] == "mesh" and k != key][:-2]:  # keep a few classes only
            del _CACHE[k]
    return _CACHE[key]


def _anomalous_sample(settings: Settings, mesh, job: Job, seed: list[int], n: int):
    """Apply the defect, sample, label; resize and retry (bounded) until the ratio fits."""
    key = ("engine", settings.engine)
    if key not in _CACHE:
        _CACHE[key] = get_engine(settings.engine)
    engine = _CACHE[key]
    D = g.diagonal(mesh)
    tau, rim = settings.tau * D, settings.rim_distance * D
    lo, hi = settings.ratio
    base = {**settings.defect_params.get(job.defect, {}), "tau": settings.tau, "rim_distance": settings.rim_distance}
    scale, target, best, errors, draw, resized, last_r = 1.0, None, None, [], 0, 0, 0.0
    for attempt in range(settings.max_retries + 1):
        # the same draw (place, shape) is resized until it fits; a new draw only when the
        # operator fails or resizing stalls, so the ratio responds smoothly to the scale
        params = dict(base, size_scale=scale)
        if target is not None:
            params["target_ratio"] = target
        try:
            res = engine.apply(mesh, job.defect, params, seed + [draw])
        except ValueError as exc:  # this draw cannot make the defect (cutter missed, ...): redraw
            errors.append(str(exc))
            draw, scale, resized = draw + 1, 1.0, 0
            continue
        if target is None:
            target = float(res.params.get("target_ratio", np.sqrt(lo * hi)))
        rng = np.random.default_rng(seed + [draw, resized, 1])
        pts = sample_surface(res.mesh, n, rng)[0].astype(np.float32)
        lab = label_points(pts, mesh, res, tau, rim)
        r = float(lab.mean())
        miss = abs(np.log(max(r, 1e-6) / target))
        inside = lo <= r <= hi
        if best is None or (inside, -miss) > (best[0], -best[1]):
            best = (inside, miss, res, pts, lab, r, attempt + 1)
        if inside and miss <= np.log(settings.accept_factor):
            break
        step = (target / max(r, target / 8)) ** (1.0 / RETRY_EXPONENT.get(job.defect, 1.5))
        stalled = resized > 0 and abs(np.log(max(r, 1e-6) / max(last_r, 1e-6))) < 0.1  # size capped
        last_r = r
        resized += 1
        if resized >= 3 or stalled or abs(np.log(step)) < 0.05:  # try another place
            draw, scale, resized = draw + 1, 1.0, 0
        else:
            scale *= step
    if best is None:
        raise RuntimeError(f"{job.cls}/{job.name}: every attempt failed ({'; '.join(errors[-3:])})")
    _, _, res, pts, lab, r, attempts = best
    return res, pts, lab, target, attempts


def make_sample(settings: Settings, job: Job):
    """(PointSample, Record, defective mesh or None) of one job. Pure given settings."""
    t0 = time.perf_counter()
    mesh, _ = class_mesh(settings, job.cls)
    seed = sample_seed(settings.seed, job.cls, job.split, job.index)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(settings.points[0], settings.points[1] + 1))
    if job.defect == GOOD:
        pts = sample_surface(mesh, n, rng)[0].astype(np.float32)
        lab = np.zeros(n, np.uint8)
        rec = Record(job.cls, job.split, job.name, GOOD, seed, n, 0.0)
        out_mesh = mesh
    else:
        res, pts, lab, target, attempts = _anomalous_sample(settings, mesh, job, seed, n)
        params = {k: _jsonable(v) for k, v in sorted(res.params.items()) if k not in ("tau", "rim_distance")}
        rec = Record(job.cls, job.split, job.name, job.defect, seed, n, float(lab.mean()), target, attempts, params)
        out_mesh = res.mesh
    rec.seconds = time.perf_counter() - t0
    sample = PointSample(points=pts, labels=lab, cls=job.cls, split=job.split, defect=job.defect, name=job.name)
    return sample, rec, out_mesh


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float):
        return float(f"{v:.6g}")
    return v


def record_path(out: Path, cls: str, name: str) -> Path:
    return out / STATE_DIR / "records" / cls / f"{name}.json"


def run_job(args) -> Record:
    """Worker entry: build one sample and write its files, then its record (all atomic)."""
    settings, out, job = args
    out = Path(out)
    sample, rec, mesh = make_sample(settings, job)
    asn.write_sample(out, sample, binary=settings.binary)
    if _writes_mesh(settings, job):
        write_bytes_atomic(out / "obj" / job.cls / f"{job.name}.obj", obj_bytes(mesh))
    cp = out / STATE_DIR / "classes" / f"{job.cls}.json"
    if not cp.is_file():
        fine, desc = class_mesh(settings, job.cls)
        write_text_atomic(cp, json.dumps({**desc, "refined_faces": int(len(fine.faces)),
                                          "area": round(float(fine.area), 6)}, sort_keys=True))
    write_text_atomic(record_path(out, job.cls, job.name), json.dumps(asdict(rec)))
    return rec


def _writes_mesh(settings: Settings, job: Job) -> bool:
    """obj/<class>/<name>.obj: the class's normal mesh (first template) always unless 'none';
    every test sample's mesh (defective or not) with 'all'."""
    if settings.write_meshes == "all":
        return job.split == "test" or job.index == 0
    return settings.write_meshes == "normal" and job.split == "train" and job.index == 0


def _done(out: Path, job: Job, settings: Settings) -> Record | None:
    """The record of a sample a previous run finished (its files all present), else None."""
    rp = record_path(out, job.cls, job.name)
    if not rp.is_file():
        return None
    base = out / "pcd" / job.cls
    need = [base / job.split / f"{job.name}.pcd"]
    if job.split == "test" and job.defect != GOOD:
        need.append(base / "GT" / f"{job.name}.txt")
    if _writes_mesh(settings, job):
        need.append(out / "obj" / job.cls / f"{job.name}.obj")
    if not all(p.is_file() for p in need):
        return None
    try:
        return Record(**json.loads(rp.read_text()))
    except (json.JSONDecodeError, TypeError):
        return None


# ------------------------------------------------------------------ the build

@dataclass
class BuildResult:
    out: Path
    records: list[Record]
    seconds: float
    reused: int
    manifest: Path

    ratio_range: tuple[float, float] = (0.0, 1.0)

    @property
    def out_of_range(self) -> list[Record]:
        """Anomalous samples whose ratio missed the recipe range after every retry."""
        lo, hi = self.ratio_range
        return [r for r in self.records if r.defect != GOOD and not lo <= r.anomaly_ratio <= hi]

    def table(self) -> str:
        """Per defect type: samples, points, anomaly ratio, attempts, time."""
        head = ["defect", "samples", "points min/med/max", "ratio min/med/max", "attempts mean", "s/sample"]
        rows = []
        for d in [GOOD, *DEFECTS]:
            rs = [r for r in self.records if r.defect == d]
            if not rs:
                continue
            pts = np.array([r.points for r in rs])
            rat = np.array([r.anomaly_ratio for r in rs])
            rows.append([d, str(len(rs)), f"{pts.min()}/{int(np.median(pts))}/{pts.max()}",
                         "-" if d == GOOD else f"{rat.min():.4f}/{np.median(rat):.4f}/{rat.max():.4f}",
                         "-" if d == GOOD else f"{np.mean([r.attempts for r in rs]):.2f}",
                         f"{np.mean([r.seconds for r in rs]):.3f}"])
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
        return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def resolve_classes(classes, available: list[str], default) -> list[str]:
    """`--classes N` (first N), 'a,b,c' or a list; default from the recipe (a number there is
    capped at what the source has, so a folder of 3 meshes builds 3 classes)."""
    if classes is None:
        classes = min(int(default), len(available)) if isinstance(default, int) else default
    if isinstance(classes, int) or (isinstance(classes, str) and classes.strip().isdigit()):
        n = int(classes)
        if not 1 <= n <= len(available):
            raise AnomalygenError(f"--classes {n}: choose 1..{len(available)} (the source has {len(available)} classes)")
        return available[:n]
    names = [c.strip() for c in (classes.split(",") if isinstance(classes, str) else classes) if c.strip()]
    bad = [c for c in names if c not in available]
    if bad:
        raise AnomalygenError(f"unknown class(es) {', '.join(bad)}; available: {', '.join(available)}")
    return names


def defect_params(recipe: dict, defect: str, difficulty: float | None = None) -> dict:
    """Everything `anomalygen.mesh.apply_defect` needs for one defect type, from a recipe: its
    `defects.<defect>` section at the recipe's `difficulty` (or the given t, see
    anomalygen.builds.difficulty) plus the label thresholds (tau, rim_distance)."""
    section = get_key(recipe, f"defects.{defect}", None)
    if not isinstance(section, dict):
        raise AnomalygenError(f"recipe {recipe.get('_source', '')} has no defects.{defect} section")
    tau = float(require(recipe, "labels.tau", (int, float), 0, 1))
    t = recipe_difficulty(recipe) if difficulty is None else difficulty
    return {**scale_defect(defect, section, t, tau), "tau": tau,
            "rim_distance": float(require(recipe, "labels.rim_distance", (int, float), 0, 1))}


def settings_from_recipe(recipe: dict, *, seed=None, engine=None, source=None, defects=None) -> Settings:
    pts = require(recipe, "dataset.points", int, 1)
    ratio = require(recipe, "labels.anomaly_ratio", (int, float), 0, 1)
    dparams = get_key(recipe, "defects")
    level, tau = recipe_difficulty(recipe), float(require(recipe, "labels.tau", (int, float), 0, 1))
    for d in defects or []:
        if d not in DEFECTS:
            raise AnomalygenError(f"unknown defect {d!r}; known: {', '.join(DEFECTS)}")
    return Settings(
        seed=int(get_key(recipe, "seed") if seed is None else seed),
        points=(int(pts[0]), int(pts[1])), ratio=(float(ratio[0]), float(ratio[1])),
        tau=float(require(recipe, "labels.tau", (int, float), 0, 1)),
        rim_distance=float(require(recipe, "labels.rim_distance", (int, float), 0, 1)),
        max_retries=int(require(recipe, "labels.max_retries", int, 0, 50)),
        accept_factor=float(require(recipe, "labels.accept_factor", (int, float), 1)),
        max_edge=float(require(recipe, "shapes.max_edge", (int, float), 1e-4, 1)),
        voxel_pitch=float(require(recipe, "shapes.voxel_pitch", (int, float), 1e-4, 1)),
        defect_params={k: scale_defect(k, dict(v), level, tau) for k, v in dparams.items()},
        engine=str(get_key(recipe, "engine") if engine is None else engine),
        source=None if (source or get_key(recipe, "shapes.source")) is None else str(source or get_key(recipe, "shapes.source")),
        binary=bool(get_key(recipe, "dataset.pcd_binary")),
        write_meshes=_mesh_mode(get_key(recipe, "dataset.write_meshes")),
    )


def _mesh_mode(v) -> str:
    v = {True: "all", False: "none"}.get(v, v) if isinstance(v, bool) else str(v)
    if v not in ("normal", "all", "none"):
        raise AnomalygenError(f"recipe key 'dataset.write_meshes': {v!r}; use normal, all or none")
    return v


def fingerprint(settings: Settings, jobs: list[Job]) -> str:
    blob = json.dumps([asdict(settings), [asdict(j) for j in jobs]], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_dataset(out, recipe: dict, *, classes=None, source=None, train_per_class=None, test_per_class=None,
                  defects=None, engine=None, workers=None, seed=None, overwrite=False, progress=None) -> BuildResult:
    """Build an Anomaly-ShapeNet-layout dataset in `out`. Re-running resumes (same bytes).

    `progress(iterable, total)` wraps the stream of finished samples (e.g. tqdm)."""
    t0 = time.perf_counter()
    out = Path(out)
    defects = list(get_key(recipe, "dataset.defects") if defects is None else defects)
    settings = settings_from_recipe(recipe, seed=seed, engine=engine, source=source, defects=defects)
    get_engine(settings.engine)  # fail fast with the engine's own message
    src = open_source(settings.source, settings.voxel_pitch)
    names = resolve_classes(classes, src.classes(), get_key(recipe, "dataset.classes"))
    train = int(require(recipe, "dataset.train_per_class", int, 0) if train_per_class is None else train_per_class)
    test = int(require(recipe, "dataset.test_per_class", int, 0) if test_per_class is None else test_per_class)
    if train < 0 or test < 0 or train + test == 0:
        raise AnomalygenError("--train-per-class and --test-per-class must be >= 0 and not both 0")
    frac = float(require(recipe, "dataset.normal_test_fraction", (int, float), 0, 1))
    jobs = [j for c in names for j in plan_class(c, settings.seed, train, test, frac, defects)]
    fp = fingerprint(settings, jobs)
    state = out / STATE_DIR / "build.json"
    if state.is_file() and not overwrite:
        old = json.loads(state.read_text()).get("fingerprint")
        if old != fp:
            raise AnomalygenError(f"{out} holds a build with other settings; pass --overwrite or choose another --out")
    elif out.exists() and any(out.iterdir()) and not state.is_file() and not overwrite:
        raise AnomalygenError(f"{out} is not empty and not an anomalygen build; choose another --out or pass --overwrite")
    if overwrite:  # start clean: only what a build writes, nothing else in `out`
        import shutil

        for name in ("pcd", "obj", STATE_DIR):
            shutil.rmtree(out / name, ignore_errors=True)
        (out / "manifest.json").unlink(missing_ok=True)
    write_text_atomic(state, json.dumps({"fingerprint": fp}))

    done = {} if overwrite else {j: r for j in jobs if (r := _done(out, j, settings)) is not None}
    todo = [j for j in jobs if j not in done]
    workers = max(1, int(workers or 1))
    results: dict[Job, Record] = dict(done)
    args = [(settings, str(out), j) for j in todo]
    chunk = max(1, min(8, len(args) // (workers * 4) or 1))
    for j, rec in zip(todo, ordered_map(run_job, args, workers, progress, chunk, _worker_init), strict=True):
        results[j] = rec
    records = [results[j] for j in jobs]
    manifest = write_manifest(out, recipe, settings, src, names, jobs, records, train, test, defects)
    return BuildResult(out, records, time.perf_counter() - t0, len(done), manifest, settings.ratio)


def _worker_init():
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def write_manifest(out: Path, recipe: dict, settings: Settings, src, names, jobs, records, train, test, defects) -> Path:
    """manifest.json: recipe, seed, label rule, per-class source, per-sample defect/params/points/ratio,
    and the 'validate' bounds. Holds no timings, so it is byte-identical run to run."""
    classes = {}
    for c in names:
        cp = out / STATE_DIR / "classes" / f"{c}.json"
        classes[c] = json.loads(cp.read_text()) if cp.is_file() else {}
    body = {
        "generator": f"anomalygen {__version__} build-shapenet",
        "layout": asn.LAYOUT,
        "shapes": src.summary(),
        "seed": settings.seed,
        "engine": settings.engine,
        "label_rule": LABEL_RULE,
        "labels": {"tau": settings.tau, "rim_distance": settings.rim_distance, "removal_defects": list(REMOVAL)},
        "counts": {"classes": len(names), "train_per_class": train, "test_per_class": test,
                   "samples": len(records), "anomalous": sum(r.defect != GOOD for r in records)},
        "defects": defects,
        "validate": {"points": list(settings.points), "anomaly_ratio": list(settings.ratio)},
        "recipe": {k: v for k, v in recipe.items() if k != "_source"},
        "recipe_source": Path(str(recipe.get("_source", ""))).name,
        "classes": classes,
        "samples": [{k: v for k, v in asdict(r).items() if k != "seconds"} for r in records],
    }
    return write_text_atomic(out / "manifest.json", json.dumps(body, indent=1, sort_keys=False) + "\n")

