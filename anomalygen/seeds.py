"""Seeds derived from names, so a sample's random draws depend only on what it is.

A sample's Generator is seeded from (recipe seed, class, split, index, ...), never from
the order work happens in, so any number of workers, any order of completion and a
resumed build give the same bytes. Two derivations exist because datasets already
written depend on each (changing either would change their bytes):

    class_entropy(seed, cls, *more)  -> [seed, crc32(cls), *more]   an entropy list for
                                        numpy's SeedSequence (build-shapenet: the class's
                                        shape, its test plan, every sample)
    path_seed(*parts)                -> crc32("part/part/...")      one integer from a path
                                        of names (render-mvtec3d scenes, depth-defects variants)
"""

from __future__ import annotations

import zlib


def class_entropy(seed: int, cls: str, *more: int) -> list[int]:
    """[seed, crc32(cls), *more]: entropy for np.random.default_rng, stable across processes."""
    return [int(seed), zlib.crc32(cls.encode()), *(int(m) for m in more)]


def path_seed(*parts) -> int:
    """Stable integer from a path of names, e.g. (seed, class, split, defect, index)."""
    return zlib.crc32("/".join(map(str, parts)).encode())
