"""The defect-engine contract, and the default engine that runs this package's operators.

    engine.apply(mesh, defect, params, seed) -> DefectResult
    engine.apply_many([(mesh, defect, params, seed), ...]) -> [DefectResult]   (batching)

Every engine returns the same DefectResult, which the engine-agnostic labeler reads.
Which engines exist, and how a name becomes one, is the build driver's business
(anomalygen.builds.engines); this package knows only its own.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import trimesh

from anomalygen.mesh.operators import apply_defect
from anomalygen.mesh.result import DefectResult


class Engine(Protocol):
    name: str

    def apply(self, mesh: trimesh.Trimesh, defect: str, params: dict, seed) -> DefectResult: ...

    def apply_many(self, jobs) -> list[DefectResult]: ...


class NumpyEngine:
    """The default engine: the pure operators of anomalygen.mesh, run in-process."""

    name = "numpy"

    def apply(self, mesh: trimesh.Trimesh, defect: str, params: dict, seed) -> DefectResult:
        return apply_defect(mesh, defect, params, np.random.default_rng(seed))

    def apply_many(self, jobs) -> list[DefectResult]:
        return [self.apply(*job) for job in jobs]
