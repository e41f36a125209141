"""Write one self-contained HTML page from groups of samples (anomalygen.view.samples).

The page needs nothing at view time: the viewer library, the page's script and style and every
sample's bytes are inside it, and its Content-Security-Policy forbids any fetch, so it opens
offline, from a mail attachment or a file share alike. Samples are encoded one by one into a temp
file (memory stays flat for thousands of clouds), then the page is written: index (names, counts,
manifest records) and viewer first, data last. The page size is kept under `max_mb` by lowering
each sample's point cap as needed.

Viewer library: three.js 0.185.1, pinned and shipped in anomalygen/view/vendor/three (MIT, its
LICENSE beside it). Why three.js: 0.79 MB minified with its orbit controls (plotly.js-dist-min
4.1.2 is 4.8 MB; deck.gl needs its luma.gl stack besides), one draw call per cloud through a small
shader of ours (colour by label, or by score against a threshold uniform, so moving the slider
re-uploads nothing), and hundreds of samples cost nothing until one is picked (one sample is
decoded and uploaded at a time); a GPU draws 30k points in a fraction of a frame (SwiftShader, the
CPU rasterizer the tests use, took ~0.3 s per redraw on a busy 2-core machine). regl 2.1.1 is smaller (0.09 MB) but leaves camera controls, viewports
and resizing to hand-written code; three.js ships OrbitControls and is the more maintained.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from anomalygen.errors import AnomalygenError
from anomalygen.io.atomic import atomic_path
from anomalygen.preview.colors import SCORE_RAMP
from anomalygen.preview.splat import ANOMALY_RGB, NORMAL_RGB
from anomalygen.view.encode import SCORE_BINS, best_f1_bin, bytes_per_point, encode_sample
from anomalygen.view.samples import ViewGroup

PAGE_MARK = '<meta name="generator" content="anomalygen view">'  # in viewer.html: tells our pages apart
MIN_POINTS = 256  # below this a cloud is no longer worth looking at: the budget is refused instead
THREE_FILES = {"three-core": "three.core.min.js", "three-module": "three.module.min.js",
               "three-orbit": "OrbitControls.js"}


@dataclass
class PageSummary:
    path: Path
    bytes: int
    samples: int
    groups: int
    thinned: int          # samples shown with fewer points than they have
    fewest_shown: int     # smallest point count shown for a thinned sample (0 when none)
    largest: int          # the most points any sample has


def _asset(*parts: str) -> str:
    return resources.files("anomalygen.view").joinpath(*parts).read_text(encoding="utf-8")


def _script(kind: str, ident: str, text: str) -> str:
    if "</script" in text.lower():
        raise AnomalygenError(f"cannot inline {ident}: it holds a closing script tag")
    return f'<script type="{kind}" id="{ident}">{text}</script>\n'


def _finite(obj):
    """NaN and infinities (which a manifest may hold; JSON.parse refuses them) as null."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json(obj) -> str:
    """JSON safe inside a script element (no `</` sequence, no NaN)."""
    return json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def claim_page(out: str | Path, overwrite: bool = False) -> None:
    """Refuse an --out that is a folder, or an existing file that is not a page of ours (unless
    `overwrite`): a mistyped path never replaces someone's file."""
    out = Path(out)
    if out.is_dir():
        raise AnomalygenError(f"{out} is a folder; --out names the HTML file to write")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:  # found before any sample is encoded
        raise AnomalygenError(f"cannot write {out}: {blocker} is a file, not a folder")
    if out.exists() and not overwrite:
        try:
            with open(out, "rb") as fh:
                ours = PAGE_MARK.encode() in fh.read(4096)
        except OSError:
            ours = False
        if not ours:
            raise AnomalygenError(f"{out} exists and is not an anomalygen page; pass --overwrite to replace it")


def write_page(out: str | Path, groups: list[ViewGroup], title: str, about: dict | None = None,
               kind: str = "dataset", max_points: int = 30_000, max_mb: float = 45.0,
               progress=None) -> PageSummary:
    """Encode every sample of `groups` into one HTML file at `out` (written atomically).

    kind 'dataset' shows one view per sample (ground truth); 'run' shows the ground truth beside
    the predicted map with a threshold slider. `about` (e.g. the manifest's header) is shown on the
    page. `progress(iterable, total)` wraps the sample loop (e.g. tqdm).

    Two passes: the samples are encoded into an unnamed temp file while their facts are gathered,
    then the page is written index and viewer first, data last. The viewer is an async module, so
    it draws the first sample while the browser still parses the rest of a 45 MB page."""
    out = Path(out)
    total = sum(len(g.loaders) for g in groups)
    if total == 0:
        raise AnomalygenError("nothing to show: no samples in the chosen classes")
    template = _asset("assets", "viewer.html")
    head, rest = template.split("<!--STYLE-->")
    body, tail = rest.split("<!--DATA-->")
    fixed = len(template) + sum(len(_asset("vendor", "three", f)) for f in THREE_FILES.values()) \
        + len(_asset("assets", "viewer.js")) + len(_asset("assets", "viewer.css")) + 2000 * len(groups)
    budget = max_mb * 1e6 - fixed
    if budget / total < MIN_POINTS * 12 * 4 / 3 + 1000:
        raise AnomalygenError(f"--max-mb {max_mb:g} leaves {max(budget, 0) / total / 1e3:.1f} kB per sample for "
                              f"{total} samples; raise --max-mb or choose fewer --classes")
    entries = []
    jobs = [(gi, loader) for gi, g in enumerate(groups) for loader in g.loaders]
    hists = [np.zeros((2, SCORE_BINS), np.int64) for _ in groups]
    spent = 0  # bytes of the page the samples take so far: their data blocks and index entries
    with tempfile.TemporaryFile(dir=out.parent if out.parent.is_dir() else None) as data:
        for i, (gi, loader) in enumerate(progress(jobs, total) if progress else jobs):
            sample = loader()
            share = max(budget - spent, 0) / (total - i) - len(_json(sample.record)) - 400  # 400: the other facts
            cap = int(max(share, 0) * 3 / 4 / bytes_per_point(sample))
            raw, facts, hist = encode_sample(sample, max(min(max_points, cap), MIN_POINTS), groups[gi].score_range)
            if hist is not None:
                hists[gi] += hist
            facts["group"] = gi
            entries.append(facts)
            spent += data.write(f'<script type="application/octet-stream" id="d{i}">'
                                f'{base64.b64encode(raw).decode()}</script>\n'.encode())
            spent += len(_json(facts)) + 1
        group_index = []
        for gi, g in enumerate(groups):
            entry = {"name": g.name, "info": g.info}
            if g.score_range is not None:
                lo, hi = g.score_range
                entry.update(lo=float(lo), hi=float(hi), threshold_bin=best_f1_bin(hists[gi]))
            group_index.append(entry)
        index = {"title": title, "kind": kind, "about": about or {}, "groups": group_index, "samples": entries,
                 "colors": {"normal": NORMAL_RGB.tolist(), "anomaly": ANOMALY_RGB.tolist(),
                            "ramp": SCORE_RAMP.tolist()},
                 "score_bins": SCORE_BINS}
        data.seek(0)
        with atomic_path(out) as tmp, open(tmp, "wb") as fh:
            for text in (head.replace("{{TITLE}}", html.escape(title)), f"<style>{_asset('assets', 'viewer.css')}</style>",
                         body.replace("{{TITLE}}", html.escape(title)), _script("application/json", "index", _json(index)),
                         *(_script("text/plain", ident, _asset("vendor", "three", name)) for ident, name in THREE_FILES.items()),
                         _script("module", "viewer", _asset("assets", "viewer.js")).replace("<script ", "<script async ", 1)):
                fh.write(text.encode("utf-8"))
            shutil.copyfileobj(data, fh, 1 << 20)
            fh.write(tail.encode("utf-8"))
    thinned = [e["n"] for e in entries if e["n"] < e["total"]]
    return PageSummary(out, out.stat().st_size, total, len(groups), len(thinned), min(thinned, default=0),
                       max(e["total"] for e in entries))
