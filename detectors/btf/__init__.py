"""BTF / PatchCore-FPFH baseline (Horwitz & Hoshen, "Back to the Feature", CVPRW 2023)."""

from .detector import BTFDetector

__all__ = ["BTFDetector"]
