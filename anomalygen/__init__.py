"""anomalygen: labeled 3D anomaly datasets and the detectors that consume them."""

__version__ = "0.1.0"
