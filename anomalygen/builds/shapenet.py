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
from array import array
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from anomalygen import __version__
from anomalygen.errors import AnomalygenError
from anomalygen.io import PointSample, write_bytes_atomic, write_text_atomic
from anomalygen.io.atomic import all_or_nothing, clean_temp
from anomalygen.io.json_stream import write_json_stream_atomic
from anomalygen.io.output_dir import claim_output
from anomalygen.limits import class_list
from anomalygen.io import anomaly_shapenet as asn
from anomalygen.io.samples import GOOD
from anomalygen.recipes import get_key, require
from anomalygen import geometry as g
from anomalygen.builds.cluster import BuildFailed, run_samples
from anomalygen.builds.difficulty import recipe_difficulty, scale_defect
from anomalygen.builds.engines import get_engine
from anomalygen.builds.point_layouts import REAL3D_TYPE, point_output
from anomalygen.mesh.labels import beyond_share, label_parts
from anomalygen.mesh.objfile import obj_bytes
from anomalygen.mesh.refine import refine
from anomalygen.mesh.result import DEFECTS, REMOVAL
from anomalygen.mesh.sampling import sample_surface
from anomalygen.seeds import class_entropy
from anomalygen.shapes.repair import RepairSettings
from anomalygen.shapes.sources import open_source

SPLIT_CODE = {"train": 0, "test": 1}
RETRY_EXPONENT = {"bulge": 2.0, "concavity": 2.0, "bending": 1.0, "hole": 1.5, "break": 1.5, "crack": 1.0, "scratch": 1.0}
LABEL_RULE = ("a point is anomalous iff its distance to the ORIGINAL (pre-defect) surface exceeds tau, or, for "
              "removal defects (hole, break, crack), it lies within rim_distance of the rim of the removed region; "
              "tau and rim_distance are fractions of the object's bounding-box diagonal")
STATE_DIR = ".anomalygen"
BATCH = 10  # samples of one class per task: their files share one file-system sync (builds.cluster.run_samples)


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
    layout: str = asn.LAYOUT  # 'anomaly-shapenet' | 'real3d-ad' (anomalygen.builds.point_layouts)
    max_repair_tau: float = 1.0  # a source mesh whose repair moved it farther (in tau) is refused

    def repair(self) -> RepairSettings:
        """How source meshes are repaired and when a repair is refused (anomalygen.shapes.repair)."""
        return RepairSettings(voxel_pitch=self.voxel_pitch, max_tau=self.max_repair_tau, tau=self.tau)


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
    attempts: int = 0     # defect draws and resizes tried
    params: dict = field(default_factory=dict)
    rejected: str = ""    # why no files were written for this sample (its ratio missed the recipe range)
    seconds: float = 0.0  # in memory only: never in a record file or the manifest (timing differs run to run)
    beyond_tau_share: float | None = None  # share of the labelled points farther than tau from the original surface

    def stored(self) -> dict:
        """What the record file and the manifest hold: no timing, `rejected` and `beyond_tau_share`
        only when set."""
        return {k: v for k, v in asdict(self).items()
                if k != "seconds" and (k != "rejected" or v) and (k != "beyond_tau_share" or v is not None)}


# ------------------------------------------------------------------ planning

def sample_seed(seed: int, cls: str, split: str, index: int) -> list[int]:
    return class_entropy(seed, cls, SPLIT_CODE[split], index)


def iter_class(cls: str, seed: int, train: int, test: int, normal_fraction: float, defects: list[str],
               layout: str = asn.LAYOUT):
    """The jobs of one class, one at a time: `train` templates, then `test` samples whose defect types
    cycle through `defects` (order shuffled per class) with round(test * normal_fraction) normals.
    File names follow `layout`; the draws do not depend on it. The test plan is held as one small
    integer per sample."""
    names = point_output(layout)
    for k in range(train):
        yield Job(cls, "train", k, GOOD, names.sample_name(cls, "train", k))
    rng = np.random.default_rng(class_entropy(seed, cls, 7))
    n_normal = int(round(test * normal_fraction)) if defects else test
    order = [GOOD, *rng.permutation(defects)] if defects else [GOOD]
    kinds = np.array([0] * n_normal + [1 + i % (len(order) - 1) for i in range(test - n_normal)], np.int8)
    for n, d in enumerate(kinds[rng.permutation(len(kinds))]):
        yield Job(cls, "test", n, str(order[d]), names.sample_name(cls, "test", n, str(order[d])))


@dataclass(frozen=True)
class Plan:
    """Every job of a build, class after class, planned again on each pass rather than held: the
    driver's memory stays flat however many samples a build has."""

    classes: tuple[str, ...]
    seed: int
    train: int
    test: int
    normal_fraction: float
    defects: tuple[str, ...]
    layout: str = asn.LAYOUT

    def __iter__(self):
        for c in self.classes:
            yield from iter_class(c, self.seed, self.train, self.test, self.normal_fraction, list(self.defects),
                                  self.layout)

    def __len__(self) -> int:
        return len(self.classes) * (self.train + self.test)


# ------------------------------------------------------------------ per-worker state

_CACHE: dict = {}


def _source(settings: Settings):
    key = ("source", settings.source, settings.repair())
    if key not in _CACHE:
        _CACHE[key] = open_source(settings.source, settings.repair())
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
    """Apply the defect, sample, label; resize and retry (bounded) until the ratio fits and enough of
    the labelled points lie beyond tau (`min_share_beyond_tau` of the defect's section: a cut on a
    part thinner than the defect can show, labelled by its rim alone, is redrawn elsewhere)."""
    key = ("engine", settings.engine)
    if key not in _CACHE:
        _CACHE[key] = get_engine(settings.engine)
    engine = _CACHE[key]
    D = g.diagonal(mesh)
    tau, rim = settings.tau * D, settings.rim_distance * D
    lo, hi = settings.ratio
    base = {**settings.defect_params.get(job.defect, {}), "tau": settings.tau, "rim_distance": settings.rim_distance}
    need = float(base.pop("min_share_beyond_tau", 0.0))
    scale, target, best, errors, draw, resized, last_r, tried = 1.0, None, None, [], 0, 0, 0.0, 0
    for attempt in range(settings.max_retries + 1):
        tried = attempt + 1
        # the same draw (place, shape) is resized until it fits; a new draw only when the
        # operator fails, resizing stalls or the place is too thin, so the ratio responds smoothly to the scale
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
        lab, beyond = label_parts(pts, mesh, res, tau, rim)
        r, share = float(lab.mean()), beyond_share(lab, beyond)
        miss = abs(np.log(max(r, 1e-6) / target))
        inside, deep = lo <= r <= hi, share >= need
        if best is None or (inside and deep, inside, -miss) > (best[0] and best[1], best[0], -best[2]):
            best = (inside, deep, miss, res, pts, lab, r, share)
        if inside and deep and miss <= np.log(settings.accept_factor):
            break
        step = (target / max(r, target / 8)) ** (1.0 / RETRY_EXPONENT.get(job.defect, 1.5))
        stalled = resized > 0 and abs(np.log(max(r, 1e-6) / max(last_r, 1e-6))) < 0.1  # size capped
        last_r = r
        resized += 1
        if not deep or resized >= 3 or stalled or abs(np.log(step)) < 0.05:  # try another place
            draw, scale, resized = draw + 1, 1.0, 0
        else:
            scale *= step
    if best is None:
        raise RuntimeError(f"{job.cls}/{job.name}: every attempt failed ({'; '.join(errors[-3:])})")
    _, _, _, res, pts, lab, r, share = best
    return res, pts, lab, target, tried, share, need


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
        res, pts, lab, target, attempts, share, need = _anomalous_sample(settings, mesh, job, seed, n)
        params = {k: _jsonable(v) for k, v in sorted(res.params.items()) if k not in ("tau", "rim_distance")}
        rec = Record(job.cls, job.split, job.name, job.defect, seed, n, float(lab.mean()), target, attempts, params,
                     beyond_tau_share=float(f"{share:.4g}"))
        out_mesh = res.mesh
        lo, hi = settings.ratio
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if not lo <= rec.anomaly_ratio <= hi:  # never write a sample whose labels miss the recipe's bounds
            rec.rejected = (f"anomaly ratio {rec.anomaly_ratio:.4f} outside [{lo:g}, {hi:g}] after {tries} "
                            "(object too small or thin for this defect's sizes?)")
        elif share < need:  # nor one whose defect is only its rim: a cut the part is too thin to show
            rec.rejected = (f"only {share:.0%} of its labelled points lie beyond tau (defects.{job.defect}."
                            f"min_share_beyond_tau: {need:g}) after {tries}: the part is thinner than this defect "
                            "can show wherever it was drawn")
        if rec.rejected:
            rec.seconds = time.perf_counter() - t0
            return None, rec, None
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
    if sample is not None:
        with all_or_nothing(sample_files(out, job, settings)):  # a fault mid-sample leaves none of its files
            point_output(settings.layout).write_sample(out, sample, settings.binary)
            if _writes_mesh(settings, job):
                write_bytes_atomic(out / "obj" / job.cls / f"{job.name}.obj", obj_bytes(mesh))
    cp = out / STATE_DIR / "classes" / f"{job.cls}.json"
    if not cp.is_file():
        fine, desc = class_mesh(settings, job.cls)
        write_text_atomic(cp, json.dumps({**desc, "refined_faces": int(len(fine.faces)),
                                          "area": round(float(fine.area), 6)}, sort_keys=True))
    write_text_atomic(record_path(out, job.cls, job.name), json.dumps(rec.stored()))
    return rec


def sample_files(out: Path, job: Job, settings: Settings) -> list[Path]:
    """The files one finished sample consists of (in the build's layout)."""
    need = point_output(settings.layout).sample_files(out, job.cls, job.split, job.name, job.defect != GOOD)
    if _writes_mesh(settings, job):
        need.append(out / "obj" / job.cls / f"{job.name}.obj")
    return need


def _writes_mesh(settings: Settings, job: Job) -> bool:
    """obj/<class>/<name>.obj: with 'normal' the class's normal mesh once (as the first template,
    <class>_template0.obj); with 'all' every sample's mesh: each train template's (named as its
    point cloud, so obj/<class>/*template*.obj finds them all; the templates are point samplings
    of one normal shape, so their meshes are the same) and each test sample's, defective or not."""
    if settings.write_meshes == "all":
        return True
    return settings.write_meshes == "normal" and job.split == "train" and job.index == 0


def _done(out: Path, job: Job, settings: Settings) -> Record | None:
    """The record of a sample a previous run finished (its files all present), else None."""
    rp = record_path(out, job.cls, job.name)
    if not rp.is_file():
        return None
    try:
        rec = Record(**json.loads(rp.read_text()))
    except (json.JSONDecodeError, TypeError):
        return None
    if not rec.rejected and not all(p.is_file() for p in sample_files(out, job, settings)):
        return None
    return rec


# ------------------------------------------------------------------ the build

class SampleStats:
    """The summary table's figures of the written samples, kept per defect type as two float32
    numbers per sample (for the medians) plus running sums, so a 100,000-sample build summarizes
    in ~1 MB. Timings count only the samples built in this run (reused ones carry none)."""

    def __init__(self):
        self.points: dict[str, array] = {}
        self.ratios: dict[str, array] = {}
        self.attempts: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.timed: dict[str, int] = {}

    def add(self, r: Record) -> None:
        self.points.setdefault(r.defect, array("f")).append(r.points)
        self.ratios.setdefault(r.defect, array("f")).append(r.anomaly_ratio)
        self.attempts[r.defect] = self.attempts.get(r.defect, 0.0) + r.attempts
        self.seconds[r.defect] = self.seconds.get(r.defect, 0.0) + r.seconds
        self.timed[r.defect] = self.timed.get(r.defect, 0) + (r.seconds > 0)

    def __len__(self) -> int:
        return sum(len(v) for v in self.points.values())

    def anomalous(self) -> int:
        return len(self) - len(self.points.get(GOOD, ()))

    def table(self) -> str:
        """Per defect type: samples, points, anomaly ratio, attempts, time."""
        head = ["defect", "samples", "points min/med/max", "ratio min/med/max", "attempts mean", "s/sample"]
        rows = []
        for d in [GOOD, *DEFECTS]:
            if d not in self.points:
                continue
            pts, rat, n = np.asarray(self.points[d], np.int64), np.asarray(self.ratios[d], np.float64), len(self.points[d])
            rows.append([d, str(n), f"{pts.min()}/{int(np.median(pts))}/{pts.max()}",
                         "-" if d == GOOD else f"{rat.min():.4f}/{np.median(rat):.4f}/{rat.max():.4f}",
                         "-" if d == GOOD else f"{self.attempts[d] / n:.2f}",
                         f"{self.seconds[d] / self.timed[d]:.3f}" if self.timed.get(d) else "-"])
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
        return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


@dataclass
class BuildResult:
    out: Path
    jobs: Plan
    seconds: float
    reused: int
    manifest: Path | None
    stats: SampleStats = field(default_factory=SampleStats)
    ratio_range: tuple[float, float] = (0.0, 1.0)
    out_of_range: list[Record] = field(default_factory=list)  # anomalous samples whose ratio missed: not written
    rejected_classes: dict = field(default_factory=dict)

    @property
    def records(self) -> list[Record]:
        """Every sample's record, in plan order, read from disk (the build itself keeps none in memory)."""
        return [_read_record(self.out, j) for j in self.jobs]

    def table(self) -> str:
        return self.stats.table()


def _read_record(out: Path, job: Job) -> Record:
    return Record(**json.loads(record_path(out, job.cls, job.name).read_text()))


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
    names = class_list(classes) or []
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


def settings_from_recipe(recipe: dict, *, seed=None, engine=None, source=None, defects=None,
                         layout=None) -> Settings:
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
        max_repair_tau=float(require(recipe, "shapes.max_repair_tau", (int, float), 0)),
        defect_params={k: scale_defect(k, dict(v), level, tau) for k, v in dparams.items()},
        engine=str(get_key(recipe, "engine") if engine is None else engine),
        source=None if (source or get_key(recipe, "shapes.source")) is None else str(source or get_key(recipe, "shapes.source")),
        binary=bool(get_key(recipe, "dataset.pcd_binary")),
        write_meshes=_mesh_mode(get_key(recipe, "dataset.write_meshes")),
        layout=point_output(layout or asn.LAYOUT).name,
    )


def _mesh_mode(v) -> str:
    v = {True: "all", False: "none"}.get(v, v) if isinstance(v, bool) else str(v)
    if v not in ("normal", "all", "none"):
        raise AnomalygenError(f"recipe key 'dataset.write_meshes': {v!r}; use normal, all or none")
    return v


def fingerprint(settings: Settings, jobs) -> str:
    """sha256 of json.dumps([settings, [jobs...]], sort_keys=True), fed one job at a time."""
    h = hashlib.sha256(("[" + json.dumps(asdict(settings), sort_keys=True, default=str) + ", [").encode())
    for i, j in enumerate(jobs):
        h.update(((", " if i else "") + json.dumps(asdict(j), sort_keys=True, default=str)).encode())
    h.update(b"]]")
    return h.hexdigest()[:16]


def build_dataset(out, recipe: dict, *, classes=None, source=None, train_per_class=None, test_per_class=None,
                  defects=None, engine=None, workers=None, seed=None, overwrite=False, progress=None,
                  layout=None, scheduler=None) -> BuildResult:
    """Build a point-cloud dataset in `out`, in the Anomaly-ShapeNet layout (default) or `layout`
    'real3d-ad' (anomalygen.builds.point_layouts). Re-running resumes (same bytes).

    `progress(iterable, total)` wraps the stream of finished samples (e.g. tqdm). `scheduler`: address
    of a running Dask scheduler whose workers share `out`; else `workers` local processes. Samples that
    fail on every attempt raise BuildFailed (with the result so far) after the others are built."""
    t0 = time.perf_counter()
    out = Path(out)
    defects = list(get_key(recipe, "dataset.defects") if defects is None else defects)
    settings = settings_from_recipe(recipe, seed=seed, engine=engine, source=source, defects=defects, layout=layout)
    get_engine(settings.engine)  # fail fast with the engine's own message
    src = open_source(settings.source, settings.repair())
    names = resolve_classes(classes, src.classes(), get_key(recipe, "dataset.classes"))
    if settings.source:
        # the checks repair meshes with booleans in this process: manifold3d's thread pool must not start
        # here with threads of its own, or the worker processes forked below inherit its locks and hang
        g.one_boolean_thread()
    rejected_classes = check_source_meshes(settings, names) if settings.source else {}
    names = [c for c in names if c not in rejected_classes]
    train = int(require(recipe, "dataset.train_per_class", int, 0) if train_per_class is None else train_per_class)
    test = int(require(recipe, "dataset.test_per_class", int, 0) if test_per_class is None else test_per_class)
    if train < 0 or test < 0 or train + test == 0:
        raise AnomalygenError("--train-per-class and --test-per-class must be >= 0 and not both 0")
    frac = float(require(recipe, "dataset.normal_test_fraction", (int, float), 0, 1))
    jobs = Plan(tuple(names), settings.seed, train, test, frac, tuple(defects), settings.layout)
    fp = fingerprint(settings, jobs)
    state = out / STATE_DIR / "build.json"
    if state.is_file() and not overwrite:
        old = json.loads(state.read_text()).get("fingerprint")
        if old != fp:
            raise AnomalygenError(f"{out} holds a build with other settings; pass --overwrite or choose another --out")
    # an empty folder, this command's earlier output (resume), or --overwrite (which removes only what an
    # anomalygen output wrote); also removes temp files a killed run left in .anomalygen/tmp
    claim_output(out, "build-shapenet", overwrite)
    write_text_atomic(state, json.dumps({"fingerprint": fp}))

    stats, out_of_range, failures = SampleStats(), [], []

    def account(rec: Record) -> None:
        if rec.rejected:
            out_of_range.append(rec)
        else:
            stats.add(rec)

    todo = bytearray(len(jobs))  # 1: to build; the finished ones are only counted, never held
    for i, j in enumerate(jobs):
        rec = None if overwrite else _done(out, j, settings)
        if rec is None:
            todo[i] = 1
        else:
            account(rec)
    reused = len(jobs) - sum(todo)
    if reused < len(jobs):
        (out / "manifest.json").unlink(missing_ok=True)
    here = str(out.resolve())  # workers on other machines need the absolute path of the shared folder
    args = ((settings, here, j) for i, j in enumerate(jobs) if todo[i])
    for _, rec in run_samples(run_job, args, len(jobs) - reused, lambda a: f"{a[2].cls}/{a[2].name}", failures,
                              workers=max(1, int(workers or 1)), scheduler=scheduler, progress=progress,
                              initializer=_worker_init, affinity=_class_of, batch=BATCH):
        account(rec)
    result = BuildResult(out, jobs, time.perf_counter() - t0, reused, None, stats, settings.ratio, out_of_range,
                         rejected_classes)
    if failures:
        raise BuildFailed(failures, len(jobs), result)
    result.manifest = write_manifest(out, recipe, settings, src, names, jobs, stats, out_of_range, train, test,
                                     defects, rejected_classes)
    clean_temp(out)  # every temp file was renamed or removed; the empty folder goes too
    result.seconds = time.perf_counter() - t0
    return result


def check_source_meshes(settings: Settings, names: list[str]) -> dict[str, str]:
    """Load every requested source mesh before anything is written; {class: why it is rejected}
    for meshes that cannot be used (non-finite vertices, not closable, far too thin, ...).
    One clear error when none of the requested classes is usable."""
    rejected = {}
    src = _source(settings)
    for c in names:
        try:  # the source's own load and checks (refinement comes later, per worker)
            src.mesh(c, np.random.default_rng(class_entropy(settings.seed, c)))
        except AnomalygenError as exc:
            rejected[c] = str(exc)
    if rejected and len(rejected) == len(names):
        first = next(iter(rejected.values()))
        more = f" (and {len(rejected) - 1} more class(es))" if len(rejected) > 1 else ""
        raise AnomalygenError(f"no usable source mesh: {first}{more}")
    return rejected


def _class_of(args) -> str:
    """A job's class: a local process builds one class's samples (its refined mesh, manifold and
    raycasting scene are cached per process, ~0.3 s to make), rather than every process every class."""
    return args[2].cls


def _worker_init():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    g.one_boolean_thread()


def write_manifest(out: Path, recipe: dict, settings: Settings, src, names, jobs, stats: SampleStats,
                   rejected: list[Record], train, test, defects, rejected_classes: dict | None = None) -> Path:
    """manifest.json: recipe, seed, label rule, per-class source, per-sample defect/params/points/ratio,
    and the 'validate' bounds. Holds no timings, so it is byte-identical run to run. The samples are
    streamed from their records on disk, one at a time."""
    classes = {}
    for c in names:
        cp = out / STATE_DIR / "classes" / f"{c}.json"
        classes[c] = json.loads(cp.read_text()) if cp.is_file() else {}
    body = {
        "generator": f"anomalygen {__version__} build-shapenet",
        "layout": settings.layout,
        "shapes": src.summary(),
        "seed": settings.seed,
        "engine": settings.engine,
        "label_rule": LABEL_RULE,
        "labels": {"tau": settings.tau, "rim_distance": settings.rim_distance, "removal_defects": list(REMOVAL)},
        "counts": {"classes": len(names), "train_per_class": train, "test_per_class": test,
                   "samples": len(stats), "anomalous": stats.anomalous()},
        "defects": defects,
        **({"layout_defect_names": {d: REAL3D_TYPE.get(d, d) for d in defects}} if settings.layout != asn.LAYOUT else {}),
        "validate": {"points": list(settings.points), "anomaly_ratio": list(settings.ratio)},
        "recipe": {k: v for k, v in recipe.items() if k != "_source"},
        "recipe_source": Path(str(recipe.get("_source", ""))).name,
        "classes": classes,
    }
    if rejected_classes:
        body["rejected_classes"] = dict(sorted(rejected_classes.items()))
    if rejected:
        body["rejected_samples"] = [r.stored() for r in rejected]
    samples = (rec.stored() for j in jobs if not (rec := _read_record(out, j)).rejected)
    return write_json_stream_atomic(out / "manifest.json", body, "samples", samples, indent=1, end="\n")
