"""The seven defect operators behind one call: pure functions of (mesh, params, rng).

    apply_defect(mesh, defect, params, rng) -> DefectResult

`params` is complete (drivers load recipes, operators never do): the recipe's
`defects.<name>` section, where a [lo, hi] pair is a range drawn with `rng`, plus the
driver's keys (anomalygen.mesh.sizing: target_ratio, size_scale, tau, rim_distance).
Displacement defects live in anomalygen.mesh.displace, carved ones in anomalygen.mesh.carve,
their sizing (shared with the Blender engine) in anomalygen.mesh.sizing.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import trimesh

from anomalygen.errors import AnomalygenError
from anomalygen.mesh.carve import break_, crack, hole, scratch
from anomalygen.mesh.displace import bending, bulge, concavity
from anomalygen.mesh.result import DEFECTS, DefectResult
from anomalygen.mesh.sizing import realize_params

OPERATORS: dict[str, Callable[[trimesh.Trimesh, dict, np.random.Generator], DefectResult]] = {
    "bulge": bulge, "concavity": concavity, "hole": hole, "break": break_,
    "bending": bending, "crack": crack, "scratch": scratch,
}


def apply_defect(mesh: trimesh.Trimesh, defect: str, params: dict, rng: np.random.Generator) -> DefectResult:
    """Apply one defect to a (refined, watertight) mesh. Pure: the input mesh is not changed.

    Raises AnomalygenError for an unknown defect name or a missing parameter; ValueError when
    this draw cannot produce the defect (the caller retries with another draw).
    """
    if defect not in OPERATORS:
        raise AnomalygenError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
    p = realize_params(defect, params, rng)
    res = OPERATORS[defect](mesh, p, rng)
    drawn = {k: v for k, v in p.items() if isinstance(v, (int, float, str, bool))}
    res.params = {**drawn, **res.params}
    return res
