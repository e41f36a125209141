"""What a defect engine returns, and the defect type names every engine implements.

The names are the Anomaly-ShapeNet layout's defect types (`anomalygen.io.anomaly_shapenet.DEFECTS`,
the one source); REMOVAL lists the types that take material away, for which the labels add
the rim rule; CARVED the types made with a boolean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trimesh

from anomalygen.io.anomaly_shapenet import DEFECTS

REMOVAL = ("hole", "break", "crack")  # labels add the rim rule for these
CARVED = ("hole", "break", "crack", "scratch")  # made with a boolean


@dataclass
class DefectResult:
    """What an engine returns for one defect.

    mesh        the defective mesh (watertight where the operator can keep it so)
    defect      one of DEFECTS
    params      realized parameter values (JSON-serializable)
    rim_points  (M,3) points on the rim of the removed region (removal defects), else None
    moved       (V,) bool: vertices that moved (displacement defects), else None; vertex
                i of `mesh` is vertex i of the input mesh when this is given
    """

    mesh: trimesh.Trimesh
    defect: str
    params: dict[str, Any]
    rim_points: np.ndarray | None = None
    moved: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    changed_bounds: np.ndarray | None = None  # optional (2,3) box holding every changed face

    # `changed_bounds` is a speed hint for the labeler: a point outside it lies on surface the
    # defect did not touch (distance 0 to the original). Engines that cannot tell leave it None.

    @property
    def removal(self) -> bool:
        return self.defect in REMOVAL


__all__ = ["CARVED", "DEFECTS", "REMOVAL", "DefectResult"]
