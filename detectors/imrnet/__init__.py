"""IMRNet: geometry-aware sampling, masked point reconstruction, iterative reconstruction and dense
feature comparison (Li et al., CVPR 2024, the Anomaly-ShapeNet paper; see detector.py)."""
