"""Small path helpers shared by the layout readers."""

from __future__ import annotations

import re
from pathlib import Path

DEFECT_SUFFIX = re.compile(r"^(?P<stem>.*?)_(?P<defect>[A-Za-z]+)\d*$")


def natural_key(path: Path | str) -> list:
    """Sort key so 2_bulge comes before 10_bulge."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", Path(path).name)]


def defect_from_stem(stem: str) -> str:
    """'12_bulge' -> 'bulge', 'ashtray0_bulge3' -> 'bulge', '0_positive' -> 'positive'."""
    m = DEFECT_SUFFIX.match(stem)
    return m.group("defect").lower() if m else stem.lower()


def subdirs(path: Path) -> list[Path]:
    return sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")), key=natural_key) if path.is_dir() else []
