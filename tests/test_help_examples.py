"""Every example printed by `anomalygen --help` and `anomalygen COMMAND --help` runs.

The examples are read from the help texts themselves (any line starting with
`anomalygen `), so an example added to a command is tested without touching this file.
They run in one scratch folder, in dependency order (builds and renders first, then the
commands that read their output), through the CLI in-process.

Sizes are reduced so the whole set runs in minutes; the substitutions, all of them
appended options (click keeps the last value of an option) or a class count, are:

  ~                  a scratch home holding ShapeNetCore.v2/ (taxonomy only: every class
                     falls back to the catalog), data/mvtec3d/ (a 40-pixel bagel/tire tree),
                     cup.ply and my_script.py sit in the scratch folder
  build-shapenet     --classes N (N > 3) -> --classes 3; + --train-per-class 1 --test-per-class 4
                     --set dataset.points=[400,700] --workers 1 --quiet
  render-mvtec3d     + --size 32 (unless the example asks for 64 or less) and counts 2/1/1/1
                     (train/validation/test_good/test_per_defect)
  depth-defects      + --size 32 --per-image 1 (rendered default: the same render counts)
  train-detector,    + --quiet, BTF image grid 32 px / 8 patches, 256 FPFH points
  zero-shot
  preview            + --per-class 2
  validate, evaluate + --quiet (validate: --workers 1)
  blender ...        run only where a Blender is found (`blender info` always runs)
"""

from __future__ import annotations

import shlex

import numpy as np
import pytest
from click.testing import CliRunner

from anomalygen.cli import COMMANDS, cli
from anomalygen.errors import AnomalygenError
from anomalygen.io import ImageSample, mvtec3d

ORDER = ["build-shapenet", "render-mvtec3d", "depth-defects", "pseudo-anomalies", "validate", "preview",
         "pretrain-detector", "train-detector", "zero-shot", "evaluate", "view", "blender"]
RENDER_COUNTS = ["counts.train=2", "counts.validation=1", "counts.test_good=1", "counts.test_per_defect=1"]


def help_examples() -> list[str]:
    """Every `anomalygen ...` line of every --help text, deduplicated, in dependency order."""
    texts = [CliRunner().invoke(cli, ["--help"]).output]
    for name in COMMANDS:
        texts.append(CliRunner().invoke(cli, [name, "--help"]).output)
    for sub in ("run", "info"):
        texts.append(CliRunner().invoke(cli, ["blender", sub, "--help"]).output)
    seen: list[str] = []
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            words = line.split()
            if line.startswith("anomalygen ") and len(words) > 1 and words[1] in COMMANDS and line not in seen:
                seen.append(line)
    return sorted(seen, key=lambda ex: ORDER.index(ex.split()[1]) if ex.split()[1] in ORDER else len(ORDER))


def reduced(example: str, home: str) -> list[str]:
    """The example's arguments with the documented size reductions (module docstring)."""
    args = [a.replace("~", home) for a in shlex.split(example)[1:]]
    cmd = args[0]
    if cmd == "build-shapenet":
        if "--classes" in args and args[args.index("--classes") + 1].isdigit():
            i = args.index("--classes") + 1
            args[i] = str(min(int(args[i]), 3))
        args += ["--train-per-class", "1", "--test-per-class", "4", "--set", "dataset.points=[400,700]",
                 "--workers", "1", "--quiet"]
    elif cmd == "render-mvtec3d":
        small = "--size" in args and int(args[args.index("--size") + 1]) <= 64  # an example's own small size stays
        args += ([] if small else ["--size", "32"]) + [x for c in RENDER_COUNTS for x in ("--set", c)]
    elif cmd == "depth-defects":
        args += ["--size", "32", "--per-image", "1"]
        if not any(a.startswith("mvtec3d=") for a in args):
            args += [x for c in RENDER_COUNTS[:3] for x in ("--set", f"render.{c}")]
    elif cmd in ("train-detector", "zero-shot"):
        args += ["--quiet", "--set", "btf.images.image_size=32", "--set", "btf.images.feature_grid=8",
                 "--set", "btf.points.n_points=256"]
    elif cmd == "preview":
        args += ["--per-class", "2"]
    elif cmd == "validate":
        args += ["--workers", "1", "--quiet"]
    elif cmd == "evaluate":
        args += ["--quiet"]
    return args


def blender_found() -> bool:
    from anomalygen.blender import find_launcher
    try:
        find_launcher()
        return True
    except AnomalygenError:
        return False


def _scratch(tmp_path):
    home = tmp_path / "home"
    (home / "ShapeNetCore.v2").mkdir(parents=True)
    (home / "ShapeNetCore.v2" / "taxonomy.json").write_text("[]")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40].astype(np.float64)
    for cls in ("bagel", "tire"):
        for split, n in (("train", 2), ("validation", 1), ("test", 1)):
            for i in range(n):
                r2 = ((yy - 20 - i) ** 2 + (xx - 20) ** 2) / 12 ** 2
                z = 0.5 - 0.03 * np.sqrt(np.clip(1 - r2, 0, 1)) + 0.0002 * xx
                xyz = np.stack([(xx - 20) * z / 100, (yy - 20) * z / 100, z], -1).astype(np.float32)
                rgb = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
                mvtec3d.write_sample(home / "data" / "mvtec3d", ImageSample(
                    xyz, rgb, np.zeros((40, 40), np.uint8), cls, split, "good", mvtec3d.sample_name(i)))
    import trimesh
    work = tmp_path / "work"
    work.mkdir()
    trimesh.creation.icosphere(3, 0.05).export(work / "cup.ply")
    (work / "my_script.py").write_text("import sys\nprint('args', sys.argv[sys.argv.index('--') + 1:])\n")
    return str(home), work


def test_examples_are_found_for_every_command():
    examples = help_examples()
    for name in COMMANDS:
        assert any(ex.split()[1] == name for ex in examples), name


@pytest.mark.slow
def test_every_help_example_runs_as_printed(tmp_path, monkeypatch):
    home, work = _scratch(tmp_path)
    monkeypatch.chdir(work)
    has_blender = blender_found()
    ran, skipped = [], []
    for example in help_examples():
        args = reduced(example, home)
        if args[0] == "blender" and args[1] != "info" or "--engine" in args and "blender" in args:
            if not has_blender:
                skipped.append(example)
                continue
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, f"{example}\n  ran as: anomalygen {' '.join(args)}\n{res.output}"
        ran.append(example)
    assert len(ran) >= 15, ran
