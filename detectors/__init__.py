"""anomalygen.detectors: 3D anomaly detectors behind one interface.

Source lives in the top-level `detectors/` folder (mapped by pyproject.toml).
Detectors read datasets only through `anomalygen.io`.
"""
