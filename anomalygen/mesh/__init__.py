"""Mesh refinement, defect operators, point sampling and per-point labels.

    refine.refine(mesh, max_edge)                    -> uniformly fine mesh
    defects.apply_defect(mesh, defect, params, rng)  -> DefectResult
    sampling.sample_surface(mesh, n, rng)            -> (n,3) points
    labels.label_points(points, original, result, tau, rim_distance) -> (n,) uint8
    engines.get_engine('numpy' | 'blender')          -> object with .apply(mesh, defect, params, seed)
    build.build_dataset(...)                         -> the `build-shapenet` driver
"""
