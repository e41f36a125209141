"""Build drivers: recipes in, datasets on disk out.

Each driver loads its recipe, plans one job per sample with a seed derived from
(recipe seed, class, index) (anomalygen.seeds), runs the synthesizers' pure functions
in worker processes, writes every file atomically and writes the manifest.

    shapenet.build_dataset   `build-shapenet`: mesh defects, Anomaly-ShapeNet layout
    render.render_mvtec3d    `render-mvtec3d`: rendered scenes, MVTec 3D-AD layout
    depth.depth_defects      `depth-defects`: DAS3D depth + RGB defects, MVTec 3D-AD layout
    pseudo.pseudo_anomalies  `pseudo-anomalies`: 3DzAL random-CNN pseudo-anomalous patches, labeled
    engines.get_engine       the defect engines a build can use (numpy, blender)
    settings                 recipe -> the synthesizers' typed settings
"""
