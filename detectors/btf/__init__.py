"""BTF / PatchCore-FPFH baseline (Horwitz & Hoshen, "Back to the Feature", CVPRW 2023)."""

from anomalygen.detectors.btf.detector import BTFDetector

__all__ = ["BTFDetector"]
