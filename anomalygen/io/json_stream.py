"""A JSON document whose last key holds a long list, written item by item.

Builds write manifests of 20,000+ samples; holding them all to call json.dumps once would make
the driver's memory grow with the build. The bytes are exactly json.dumps({**head, key: list(items)},
indent=indent) + end, so a streamed manifest equals one written in one call.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from anomalygen.io.atomic import atomic_path

_MARK = "\x00anomalygen-stream-item\x00"


def write_json_stream_atomic(path: str | os.PathLike, head: dict, key: str, items: Iterable,
                             indent: int = 1, end: str = "") -> Path:
    """Write {**head, key: [items...]} (key last) to `path` atomically, one item in memory at a time."""
    it = iter(items)
    first = next(it, _MARK)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        if first is _MARK:
            fh.write(json.dumps({**head, key: []}, indent=indent) + end)
        else:
            text = json.dumps({**head, key: [_MARK]}, indent=indent)
            mark = json.dumps(_MARK)
            at = text.index(mark)
            line = text.rindex("\n", 0, at) + 1
            pad = text[line:at]
            fh.write(text[:at])
            fh.write(json.dumps(first, indent=indent).replace("\n", "\n" + pad))
            for item in it:
                fh.write(",\n" + pad + json.dumps(item, indent=indent).replace("\n", "\n" + pad))
            fh.write(text[at + len(mark):] + end)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)
