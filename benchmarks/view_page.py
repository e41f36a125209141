"""How fast an `anomalygen view` page opens and how big it is (issue: a 40-class build's page opens in
under 3 s and stays under 50 MB).

Writes the page of DIR (or takes --page), then opens it --rounds times in headless Chromium, each
time in a fresh browser with an empty profile (a cold start: nothing cached), and prints per round:
  first frame   ms from navigation start to the first WebGL frame, as the page itself records it
  cpu           CPU seconds all the browser's processes spent from navigation to that frame: what
                the wall time would be on an idle machine if the work were serial, so a busy
                machine's figure can be read
  heap          the page's JS heap in use after the first frame
and the median of each. Needs /usr/bin/chromium (Debian's chromium package). Example:

    python benchmarks/view_page.py out/anomaly-shapenet --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from chromium import Chromium  # noqa: E402  (the test suite's small DevTools client)

TICK = os.sysconf("SC_CLK_TCK")


def session_cpu(sid: int) -> float:
    """CPU seconds (user + system) of every live process in session `sid` (the browser's own)."""
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of stat: session id
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def open_once(page: Path) -> dict:
    with tempfile.TemporaryDirectory() as profile, Chromium(Path(profile)) as browser:
        browser.call("Performance.enable", session=True)
        cpu0 = session_cpu(browser.pid)
        browser.open(page.as_uri())
        browser.wait_for("document.body && document.body.dataset.frame", timeout=120)
        cpu = session_cpu(browser.pid) - cpu0
        metrics = {m["name"]: m["value"] for m in browser.call("Performance.getMetrics", session=True)["metrics"]}
        return {"first_frame_ms": float(browser.evaluate("document.body.dataset.firstFrameMs")), "cpu_s": cpu,
                "heap_mb": metrics["JSHeapUsedSize"] / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", nargs="?", help="dataset or run folder (the page is written to --page)")
    ap.add_argument("--page", default=None, help="page to open (written from DIR when DIR is given)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    page = Path(args.page or tempfile.mkdtemp() + "/page.html")
    if args.dir:
        from anomalygen.commands.view import view

        t = time.perf_counter()
        view(args.dir, page, overwrite=True)
        print(f"page written in {time.perf_counter() - t:.1f} s (load average {os.getloadavg()[0]:.1f})")
    rounds = []
    for r in range(args.rounds):
        res = open_once(page)
        rounds.append(res)
        print(f"round {r + 1}: first frame {res['first_frame_ms']:.0f} ms, cpu {res['cpu_s']:.2f} s, "
              f"heap {res['heap_mb']:.1f} MB (load average {os.getloadavg()[0]:.1f})")
    med = {k: statistics.median(x[k] for x in rounds) for k in rounds[0]}
    print(f"{page}: {page.stat().st_size / 1e6:.1f} MB (anchor: under 50 MB); median first frame "
          f"{med['first_frame_ms']:.0f} ms, cpu {med['cpu_s']:.2f} s (anchor: under 3 s), heap {med['heap_mb']:.1f} MB; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
