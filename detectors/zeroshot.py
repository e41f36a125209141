"""The zero-shot protocol of 3DzAL: train on one class, test on every other (Tables 1-2).

    from anomalygen.detectors.zeroshot import zero_shot, matrices_markdown
    result = zero_shot(["zal3d", "btf"], "out/rendered", "runs/zero-shot")   # every class of the root
    print(matrices_markdown(result))

For each detector and each training class A of the square, one detector run
(`train_detector` with train_classes=[A], test_classes=the others) lives in
OUT/<detector>/<A>/: a detector that ignores task-irrelevant data trains one model on A
and scores every other class with it; one that draws pseudo anomalies from them
(`uses_irrelevant`) trains one model per test class B, its task-irrelevant data being every
class of the root other than A and B (the paper's leave-one-out; 8 classes on MVTec 3D-AD).
Each entry (A, B) is therefore exactly what `train-detector --train-class A --test-class B`
gives with the same settings.

OUT/zero-shot.json records the protocol (detectors, data, classes, recipe, overrides) and,
once done, the matrices; zero-shot.csv / zero-shot.md hold them too. Killed midway, the same
call continues: finished rows are read back, an interrupted row is resumed (train_detector's
resume) or re-evaluated.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from anomalygen.errors import AnomalygenError
from anomalygen.io import open_dataset, write_text_atomic
from anomalygen.io.lock import lock_folder
from anomalygen.io.mvtec3d import LAYOUT as MVTEC_LAYOUT
from anomalygen.io.output_dir import check_out_path
from anomalygen.detectors import get_detector
from anomalygen.detectors.stored import DamagedFile, read_json
from anomalygen.detectors.tasks import split_classes

PROTOCOL_FILE = "zero-shot.json"
METRICS = (("aupro", "pixel AUPRO (Table 1)"), ("i_auroc", "image AUROC (Table 2)"))


def check_protocol(detectors, data, classes=None) -> tuple[list[str], list[str]]:
    """(detectors, classes) after checking them: registered detectors, no repeats, >= 2 classes of an
    MVTec 3D-AD-layout root (default: all of its classes), each with train and test samples."""
    names = [d.strip() for d in (detectors.split(",") if isinstance(detectors, str) else detectors or []) if d.strip()]
    if not names:
        raise AnomalygenError("name at least one detector (--detectors btf or --detectors zal3d,btf)")
    if len(set(names)) != len(names):
        raise AnomalygenError(f"detector named twice in {','.join(names)}")
    for name in names:
        get_detector(name)
    wanted = split_classes(classes)  # a class named twice: refused before the data is opened
    dataset = open_dataset(Path(data))
    if dataset.layout != MVTEC_LAYOUT:
        raise AnomalygenError(f"{data} is {dataset.layout}; the zero-shot protocol needs an MVTec 3D-AD-layout root "
                              "(pixel AUPRO), e.g. from `anomalygen render-mvtec3d`")
    known = dataset.classes()
    chosen = wanted or known
    for c in chosen:
        if c not in known:
            raise AnomalygenError(f"class {c!r} is not in {data}; it holds: {', '.join(known)}")
    if len(set(chosen)) != len(chosen):
        raise AnomalygenError(f"class named twice in {','.join(chosen)}")
    if len(chosen) < 2:
        raise AnomalygenError(f"the zero-shot protocol needs at least 2 classes (train on one, test on another); "
                              f"got {', '.join(chosen) or 'none'}")
    for c in chosen:
        if not dataset.samples(c, "train") or not dataset.samples(c, "test"):
            raise AnomalygenError(f"class {c!r} needs both a train and a test split in {data}")
    return names, chosen


def zero_shot(detectors, data, out, classes=None, recipe: str = "detectors", overrides: dict | None = None,
              device: str | None = None, progress: bool = True) -> dict:
    """Run the square for each detector (see the module doc); returns the result dict that
    OUT/zero-shot.json holds: the protocol and per detector and metric the matrix
    {train: {test: value}}, per-row means and the overall mean."""
    from anomalygen.detectors.engine import train_detector

    names, chosen = check_protocol(detectors, data, classes)
    out = Path(out)
    protocol = {"detectors": names, "data": str(Path(data).resolve()), "classes": chosen, "recipe": str(recipe),
                "overrides": overrides or {}, "device": device}
    _claim(out, protocol)
    rows = {d: {} for d in names}
    bar = tqdm(total=len(names) * len(chosen), desc="zero-shot", unit="row", disable=not progress, dynamic_ncols=True)
    for det in names:
        for train in chosen:
            bar.set_postfix_str(f"{det} train {train}")
            tests = [c for c in chosen if c != train]
            run_dir = out / det / train
            metrics = _finished_metrics(run_dir)
            if metrics is None:
                if run_dir.is_dir() and not (run_dir / "run.json").is_file():
                    shutil.rmtree(run_dir)  # killed before its run.json was written: nothing to continue
                resume = run_dir.is_dir()
                run = train_detector(det, data, run_dir, train_classes=[train], test_classes=tests, recipe=recipe,
                                     overrides=overrides, device=device, evaluate=True, progress=False,
                                     resume=resume)
                metrics = run["metrics"]
            rows[det][train] = {r["test"]: {k: r.get(k) for k, _ in METRICS} for r in metrics["rows"]}
            bar.update(1)
    bar.close()
    result = {**protocol, "status": "done", "matrices": _matrices(rows, chosen)}
    if len(names) > 1:
        result["gain"] = _gain(result["matrices"], names[0], names[1])
    write_results(out, result)
    return result


def _claim(out: Path, protocol: dict) -> None:
    """Start OUT, or continue the same protocol in it; anything else there is refused."""
    p = out / PROTOCOL_FILE
    if p.is_file():
        lock_folder(out)  # one writer: a second zero-shot into OUT stops here
        try:
            previous = read_json(p, "zero-shot protocol file")
        except DamagedFile as exc:
            raise exc.with_remedy("start the square again in an empty --out") from None
        differ = [k for k in protocol if previous.get(k) != json.loads(json.dumps(protocol[k]))]
        if differ:
            raise AnomalygenError(f"{out} holds a zero-shot run with other {', '.join(differ)}; "
                                  "choose another --out or repeat that run's options")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AnomalygenError(f"{out} exists and is not an empty folder; choose another --out")
    check_out_path(out)
    out.mkdir(parents=True, exist_ok=True)
    lock_folder(out)
    if any(out.iterdir()):  # another zero-shot started here a moment before
        raise AnomalygenError(f"{out} exists and is not an empty folder; choose another --out")
    write_text_atomic(p, json.dumps({**protocol, "status": "running"}, indent=1))


def _finished_metrics(run_dir: Path) -> dict | None:
    """The metrics of a run that finished; re-evaluates one trained but not scored; None otherwise."""
    from anomalygen.detectors.engine import evaluate_run
    from anomalygen.detectors.runs import RUN_FILE, TRAINED, read_run

    if not (run_dir / RUN_FILE).is_file() or read_run(run_dir)["status"] != TRAINED:
        return None
    m = run_dir / "metrics.json"
    if m.is_file():
        try:
            return json.loads(m.read_text())
        except json.JSONDecodeError:
            pass
    return evaluate_run(run_dir, progress=False)


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


def _matrices(rows: dict, classes: list[str]) -> dict:
    """{detector: {metric: {"rows": {train: {test: v}}, "row_mean": {train: v}, "mean": v}}}."""
    res = {}
    for det, by_train in rows.items():
        res[det] = {}
        for key, _ in METRICS:
            mat = {a: {b: by_train[a][b][key] for b in classes if b != a} for a in classes}
            row_mean = {a: _mean(mat[a].values()) for a in classes}
            res[det][key] = {"rows": mat, "row_mean": row_mean, "mean": _mean(row_mean.values())}
    return res


def _gain(matrices: dict, first: str, second: str) -> dict:
    """Mean of `first` minus mean of `second`, per metric and per training class (the paper's arrows)."""
    out = {"of": first, "over": second}
    for key, _ in METRICS:
        a, b = matrices[first][key], matrices[second][key]
        per_row = {t: (a["row_mean"][t] - b["row_mean"][t]) if None not in (a["row_mean"][t], b["row_mean"][t])
                   else None for t in a["row_mean"]}
        out[key] = {"mean": _mean(per_row.values()), "per_train": per_row}
    return out


def _fmt(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def _fmt_gain(v) -> str:
    return "n/a" if v is None else f"{100 * v:+.1f}"


def matrices_markdown(result: dict) -> str:
    """Tables 1 and 2: per metric, each detector's train x test matrix (%) with its per-row mean,
    then the per-row means side by side with the gain of the first detector over the second."""
    classes, names = result["classes"], result["detectors"]
    lines = []
    for key, title in METRICS:
        for det in names:
            m = result["matrices"][det][key]
            lines += [f"### {det}: {title}, %", "",
                      "| train \\ test | " + " | ".join(classes) + " | mean |",
                      "|---|" + "---:|" * (len(classes) + 1)]
            for a in classes:
                cells = ["-" if b == a else _fmt(m["rows"][a][b]) for b in classes]
                lines.append(f"| {a} | " + " | ".join(cells) + f" | {_fmt(m['row_mean'][a])} |")
            lines.append("| mean | " + " | ".join("" for _ in classes) + f" | {_fmt(m['mean'])} |")
            lines.append("")
        if len(names) > 1:
            g = result["gain"][key]
            lines += [f"### {title}: per-row means, %", "",
                      "| train | " + " | ".join(names) + f" | gain {names[0]} - {names[1]} |",
                      "|---|" + "---:|" * (len(names) + 1)]
            for a in classes:
                means = [_fmt(result["matrices"][d][key]["row_mean"][a]) for d in names]
                lines.append(f"| {a} | " + " | ".join(means) + f" | {_fmt_gain(g['per_train'][a])} |")
            means = [_fmt(result["matrices"][d][key]["mean"]) for d in names]
            lines.append("| mean | " + " | ".join(means) + f" | {_fmt_gain(g['mean'])} |")
            lines.append("")
    return "\n".join(lines)


def matrices_csv(result: dict) -> str:
    """One row per entry: detector, metric, train, test, value (full precision; empty when undefined)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["detector", "metric", "train", "test", "value"])
    for det in result["detectors"]:
        for key, _ in METRICS:
            m = result["matrices"][det][key]
            for a, row in m["rows"].items():
                for b, v in row.items():
                    w.writerow([det, key, a, b, "" if v is None else repr(float(v))])
                w.writerow([det, key, a, "mean", "" if m["row_mean"][a] is None else repr(m["row_mean"][a])])
    return buf.getvalue()


def write_results(out: Path, result: dict) -> None:
    out = Path(out)
    write_text_atomic(out / "zero-shot.csv", matrices_csv(result))
    write_text_atomic(out / "zero-shot.md", matrices_markdown(result) + "\n")
    write_text_atomic(out / PROTOCOL_FILE, json.dumps(result, indent=1))
