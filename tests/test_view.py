"""`anomalygen view`: one self-contained HTML page per dataset or detector run, tested in a real browser.

Without a browser: what the page holds (every sample, its manifest record, its points and labels
decoded back, the size budget, the output-file rules). With Debian's Chromium (the README's test
command installs it): the page draws WebGL points, another sample changes the picture, the
threshold slider changes the predicted pane only, and nothing is fetched from the network.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.spatial import cKDTree

from anomalygen.cli import cli
from anomalygen.io import PointSample, anomaly_shapenet, open_dataset
from anomalygen.view.encode import QUANT, best_f1_bin, encode_sample, quantize_scores
from anomalygen.view.samples import ViewSample

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
BACKGROUND = (244, 245, 247)  # the canvas clear colour (viewer.js)


def run_view(*args) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["view", *map(str, args), "--quiet"])
    return res.exit_code, res.output


def page_index(page: Path) -> dict:
    text = page.read_text()
    return json.loads(re.search(r'<script type="application/json" id="index">(.*?)</script>', text, re.S).group(1))


def page_block(page: Path, i: int) -> bytes:
    text = page.read_text()
    return base64.b64decode(re.search(rf'<script type="application/octet-stream" id="d{i}">(.*?)</script>', text).group(1))


def decode(facts: dict, raw: bytes) -> dict:
    """The page's decoder (viewer.js geometryOf) in numpy: world points, oct normals, colours, score bins."""
    n = facts["n"]
    q = np.frombuffer(raw, "<u2", 3 * n).reshape(n, 3)
    box = np.array(facts["box"])
    out = {"points": box[:3] + box[3] * q / QUANT, "oct": np.frombuffer(raw, np.uint8, 2 * n, 6 * n)}
    off = 8 * n
    if facts["rgb"]:
        out["rgb"] = np.frombuffer(raw, np.uint8, 3 * n, off).reshape(n, 3)
        off += 3 * n
    if facts["scores"]:
        out["bins"] = np.frombuffer(raw, np.uint8, n, off)
        off += n
    assert off == len(raw)
    return out


def _sphere(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# ---- encoding ----------------------------------------------------------------------------------

def test_shown_points_are_the_samples_points_with_their_labels_even_when_thinned(rng):
    pts = _sphere(rng, 6000)
    labels = pts[:, 2] > 0.7
    raw, facts, _ = encode_sample(ViewSample("test", "bulge", "1_bulge", pts, labels), max_points=1500)
    assert (facts["n"], facts["total"], facts["anomalous_total"]) == (1500, 6000, int(labels.sum()))
    got = decode(facts, raw)["points"]
    dist, idx = cKDTree(pts).query(got)
    assert dist.max() <= 2 * facts["box"][3] / QUANT  # quantization only: each shown point is a sample point
    assert len(set(idx)) == 1500
    shown_labels = labels[idx]
    assert shown_labels[:facts["k"]].all() and not shown_labels[facts["k"]:].any()  # anomalous first, count k
    # farthest-point thinning spreads points evenly, so the defect keeps about its share of them
    assert abs(facts["k"] / 1500 - labels.mean()) < 0.5 * labels.mean()


def test_a_small_cloud_is_shown_whole():
    pts = _sphere(np.random.default_rng(0), 700)
    raw, facts, _ = encode_sample(ViewSample("train", "good", "x", pts, np.zeros(700)), max_points=30_000)
    assert facts["n"] == facts["total"] == 700 and facts["k"] == 0
    assert len(raw) == 8 * 700


def test_best_threshold_separates_scores_that_separate():
    rng = np.random.default_rng(3)
    labels = rng.random(5000) < 0.1
    scores = np.where(labels, rng.uniform(0.6, 1.0, 5000), rng.uniform(0.0, 0.4, 5000))
    bins = quantize_scores(scores, 0.0, 1.0)
    hist = np.stack([np.bincount(bins[~labels], minlength=256), np.bincount(bins[labels], minlength=256)])
    t = best_f1_bin(hist)
    assert ((bins >= t) == labels).all()
    assert best_f1_bin(np.stack([hist[0], np.zeros(256, int)])) is None  # no anomalous point: no F1


# ---- pages of every layout -----------------------------------------------------------------------

@pytest.fixture
def big_shapenet(tmp_path):
    """Anomaly-ShapeNet layout with clouds of 20k points (what --max-mb has to thin)."""
    root = tmp_path / "big"
    rng = np.random.default_rng(5)
    for k in range(2):
        pts = _sphere(rng, 20_000).astype(np.float32)
        anomaly_shapenet.write_sample(root, PointSample(pts, np.zeros(20_000, np.uint8), "bowl0", "train",
                                                        name=anomaly_shapenet.sample_name("bowl0", "train", k)))
    for i in range(4):
        pts = _sphere(rng, 20_000).astype(np.float32)
        lab = (pts[:, 0] > 0.8).astype(np.uint8)
        anomaly_shapenet.write_sample(root, PointSample(pts, lab, "bowl0", "test", "bulge",
                                                        anomaly_shapenet.sample_name("bowl0", "test", i, "bulge")))
    return root


@pytest.mark.parametrize("layout", ["shapenet_dir", "real3d_dir", "mvtec_dir"])
def test_page_lists_every_sample_of_every_class(layout, request, tmp_path):
    data = request.getfixturevalue(layout)
    code, out = run_view(data, "--out", tmp_path / "page.html")
    assert code == 0, out
    index = page_index(tmp_path / "page.html")
    ds = open_dataset(data)
    assert [g["name"] for g in index["groups"]] == ds.classes()
    listed = {(index["groups"][s["group"]]["name"], s["split"], s["defect"], s["name"]) for s in index["samples"]}
    assert listed == {(r.cls, r.split, r.defect, r.name) for r in ds.samples()}
    for i, facts in enumerate(index["samples"]):
        ref = next(r for r in ds.samples(index["groups"][facts["group"]]["name"])
                   if (r.split, r.defect, r.name) == (facts["split"], facts["defect"], facts["name"]))
        s = ref.load()
        labels = s.labels if hasattr(s, "labels") else s.mask[s.valid]
        decoded = decode(facts, page_block(tmp_path / "page.html", i))
        assert facts["anomalous_total"] == int(np.count_nonzero(labels))
        assert facts["rgb"] == (layout == "mvtec_dir")  # a scan's points carry its colours
        if layout == "mvtec_dir":
            assert (facts["view"], facts["up"]) == ([0, 0, -1], [0, -1, 0])  # first seen from the scanner
            assert decoded["rgb"].shape == (facts["n"], 3)


def test_page_needs_nothing_from_outside(shapenet_dir, tmp_path):
    run_view(shapenet_dir, "--out", tmp_path / "page.html")
    text = (tmp_path / "page.html").read_text()
    assert "default-src 'none'" in text  # the browser itself refuses any fetch the page might try
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", text, flags=re.S)
    assert not re.search(r"\b(src|href)\s*=|<link\b|<iframe\b|@import|url\(", markup, re.I)
    version = re.search(r"three\.js (\S+)", (ROOT / "anomalygen/view/vendor/three/README.md").read_text()).group(1)
    assert f"const t=\"{version.split('.')[1]}\"" in text  # the vendored build is the one inlined
    assert (ROOT / "anomalygen/view/vendor/three/LICENSE").read_text().startswith("The MIT License")


def test_manifest_record_beside_each_sample(tmp_path):
    data = tmp_path / "built"
    res = CliRunner().invoke(cli, ["build-shapenet", "--classes", "bowl0", "--train-per-class", "1",
                                   "--test-per-class", "3", "--set", "dataset.points=[400,700]", "--out", str(data),
                                   "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    run_view(data, "--out", tmp_path / "page.html")
    index = page_index(tmp_path / "page.html")
    manifest = json.loads((data / "manifest.json").read_text())
    assert index["about"]["label_rule"] == manifest["label_rule"]
    records = {(r["split"], r["name"]): r for r in manifest["samples"]}
    assert len(index["samples"]) == len(records)
    for s in index["samples"]:
        assert s["record"] == records[(s["split"], s["name"])]


def test_page_stays_within_max_mb_by_thinning_and_says_so(big_shapenet, tmp_path):
    code, out = run_view(big_shapenet, "--out", tmp_path / "page.html", "--max-mb", "1")
    assert code == 0, out
    assert (tmp_path / "page.html").stat().st_size <= 1_000_000
    index = page_index(tmp_path / "page.html")
    assert all(s["n"] < s["total"] == 20_000 for s in index["samples"])
    assert "thinned" in out and "--max-mb" in out
    code, _ = run_view(big_shapenet, "--out", tmp_path / "whole.html", "--max-mb", "100")
    assert all(s["n"] == s["total"] for s in page_index(tmp_path / "whole.html")["samples"])


def test_a_budget_too_small_is_one_line_and_writes_nothing(tmp_path):
    root = tmp_path / "many"
    rng = np.random.default_rng(2)
    for k in range(120):  # 120 one-sample classes cannot share what 1 MB leaves beside the viewer library
        anomaly_shapenet.write_sample(root, PointSample(_sphere(rng, 300).astype(np.float32), np.zeros(300, np.uint8),
                                                        f"c{k}", "train", name=anomaly_shapenet.sample_name(f"c{k}", "train", 0)))
    code, out = run_view(root, "--out", tmp_path / "q.html", "--max-mb", "1")
    assert code == 2
    assert "--max-mb" in out and len(out.strip().splitlines()) == 1
    assert not (tmp_path / "q.html").exists()
    assert run_view(root, "--out", tmp_path / "q.html", "--max-mb", "4")[0] == 0


def test_out_never_replaces_a_file_that_is_not_a_page(shapenet_dir, tmp_path):
    other = tmp_path / "notes.html"
    other.write_text("<p>mine</p>")
    code, out = run_view(shapenet_dir, "--out", other)
    assert code == 2 and "--overwrite" in out and other.read_text() == "<p>mine</p>"
    assert run_view(shapenet_dir, "--out", other, "--overwrite")[0] == 0
    assert run_view(shapenet_dir, "--out", other)[0] == 0  # our own page is replaced without asking
    assert run_view(shapenet_dir, "--out", tmp_path)[0] == 2  # a folder
    code, out = run_view(shapenet_dir, "--out", other / "page.html")
    assert code == 2 and out.count("\n") == 1 and "is a file, not a folder" in out


def test_unknown_class_is_one_line(shapenet_dir, tmp_path):
    code, out = run_view(shapenet_dir, "--classes", "teapot", "--out", tmp_path / "p.html")
    assert code == 2 and "teapot" in out and "bowl0" in out


@pytest.fixture
def nearest_run(shapenet_dir, tmp_path):
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train-detector", "--detector", "nearest", "--data", str(shapenet_dir),
                                   "--out", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    return run


def test_run_page_holds_each_test_samples_map_and_a_threshold(nearest_run, shapenet_dir, tmp_path):
    code, out = run_view(nearest_run, "--out", tmp_path / "run.html")
    assert code == 0, out
    index = page_index(tmp_path / "run.html")
    assert index["kind"] == "run"
    assert [g["name"] for g in index["groups"]] == ["bowl0", "vase1"]
    for g in index["groups"]:
        assert g["lo"] < g["hi"] and 0 <= g["threshold_bin"] <= 255
        assert "point_auroc" in g["info"]
    ds = open_dataset(shapenet_dir)
    assert len(index["samples"]) == len(ds.samples(split="test"))
    for i, s in enumerate(index["samples"]):
        assert s["scores"] and s["object_score"] is not None
        assert len(decode(s, page_block(tmp_path / "run.html", i))["bins"]) == s["n"]


# ---- in a browser --------------------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=(
    "/usr/bin/chromium is absent: install Debian's chromium package (the README's test command does) "
    "to open the page in a headless browser"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from chromium import Chromium

    with Chromium(tmp_path_factory.mktemp("profile")) as b:
        b.call("Page.addScriptToEvaluateOnNewDocument", session=True, source=(
            "window.__refused = []; document.addEventListener('securitypolicyviolation',"
            " (e) => window.__refused.push(e.blockedURI));"))
        yield b


def open_page(browser, page: Path) -> dict:
    """Load the page and wait for its first frame; returns the canvas rectangle."""
    browser.events.clear()
    browser.open(page.as_uri())
    browser.wait_for("document.body && document.body.dataset.frame")
    return browser.evaluate("(() => { const r = document.getElementById('canvas').getBoundingClientRect();"
                            " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()")


def canvas_pixels(browser, rect) -> np.ndarray:
    from io import BytesIO

    from PIL import Image

    return np.asarray(Image.open(BytesIO(browser.screenshot(rect))).convert("RGB")).astype(int)


def drawn_fraction(img: np.ndarray) -> float:
    return float((np.abs(img - BACKGROUND).sum(-1) > 24).mean())


def select_sample(browser, i: int) -> None:
    """Click sample i's row in the sidebar, as a user does, and wait for its frame."""
    x, y = browser.evaluate(f"""(() => {{ const b = document.querySelector('#list button[data-i="{i}"]');
        b.closest('details').open = true; b.scrollIntoView({{block: 'center'}});
        const r = b.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
    browser.click(x, y)
    browser.wait_for(f"document.body.dataset.sample === '{i}'")
    browser.pump(0.3)


def assert_offline(browser, page: Path) -> None:
    """Nothing was requested but the page itself and its own blob: modules, and the page tried nothing its
    Content-Security-Policy refused (a refused fetch never reaches the network log)."""
    urls = browser.requested_urls()
    assert page.as_uri() in urls
    assert all(u == page.as_uri() or u.startswith("blob:") for u in urls), urls
    assert browser.evaluate("window.__refused") == []
    assert browser.errors() == []


@needs_chromium
@pytest.mark.parametrize("layout", ["shapenet_dir", "mvtec_dir"])
def test_page_draws_in_a_browser_and_another_sample_changes_the_picture(layout, request, browser, tmp_path):
    data = request.getfixturevalue(layout)
    page = tmp_path / "page.html"
    assert run_view(data, "--out", page)[0] == 0
    rect = open_page(browser, page)
    first = canvas_pixels(browser, rect)
    assert drawn_fraction(first) > 0.02  # WebGL drew the cloud, not only the background
    index = page_index(page)
    other = next(i for i, s in enumerate(index["samples"]) if s["defect"] != "good")
    select_sample(browser, other)
    second = canvas_pixels(browser, rect)
    assert drawn_fraction(second) > 0.02
    assert (np.abs(second - first).sum(-1) > 24).mean() > 0.01
    assert browser.evaluate("document.body.dataset.three") == re.search(
        r'const t="(\d+)"', (ROOT / "anomalygen/view/vendor/three/three.core.min.js").read_text()).group(1)
    assert_offline(browser, page)


@needs_chromium
def test_run_page_threshold_slider_changes_the_predicted_pane_only(nearest_run, browser, tmp_path):
    page = tmp_path / "run.html"
    assert run_view(nearest_run, "--out", page)[0] == 0
    rect = open_page(browser, page)
    index = page_index(page)
    select_sample(browser, next(i for i, s in enumerate(index["samples"]) if s["defect"] != "good"))
    before = canvas_pixels(browser, rect)
    frame = browser.evaluate("document.body.dataset.frame")
    browser.evaluate("(() => { const s = document.getElementById('thr'); s.value = 0;"
                     " s.dispatchEvent(new Event('input')); })()")
    browser.wait_for(f"document.body.dataset.frame !== '{frame}'")
    after = canvas_pixels(browser, rect)
    half = before.shape[1] // 2
    changed = np.abs(after - before).sum(-1) > 24
    assert changed[:, :half].mean() == 0  # ground truth: untouched
    assert changed[:, half:].mean() > 0.01
    # at the lowest threshold every point is flagged, so the predicted pane has no grey (unflagged) point left,
    # while the ground truth shows its normal points grey
    assert grey_share(after[:, half:]) < 0.05 and grey_share(after[:, :half]) > 0.5
    assert_offline(browser, page)


def grey_share(img: np.ndarray) -> float:
    """Of the drawn pixels, the share that is neutral grey (a normal, unflagged point)."""
    drawn = np.abs(img - BACKGROUND).sum(-1) > 24
    grey = (img.max(-1) - img.min(-1)) < 16
    return float((grey & drawn).sum() / max(drawn.sum(), 1))
