"""Mesh refinement, defect operators, point sampling and per-point labels (a synthesizer:
arrays and plain parameters in, meshes and labels out; no file I/O, no recipe reading).

    refine.refine(mesh, max_edge)                          -> uniformly fine mesh
    operators.apply_defect(mesh, defect, params, rng)      -> DefectResult
    sampling.sample_surface(mesh, n, rng)                  -> (n,3) points, face ids
    labels.label_points(points, original, result, tau, rim_distance) -> (n,) uint8
    engines.NumpyEngine().apply(mesh, defect, params, seed) -> the engine contract
    acquire.vary_part / scan_choice / normal_noise / draw_pose -> one part's variation and scan

The build driver (anomalygen.builds.shapenet) loads recipes and writes datasets; the
engine registry (numpy, blender) is anomalygen.builds.engines.
"""

from anomalygen.mesh.labels import label_points
from anomalygen.mesh.operators import apply_defect
from anomalygen.mesh.refine import refine
from anomalygen.mesh.result import CARVED, DEFECTS, REMOVAL, DefectResult
from anomalygen.mesh.sampling import sample_surface

__all__ = ["CARVED", "DEFECTS", "REMOVAL", "DefectResult", "apply_defect", "label_points", "refine", "sample_surface"]
