"""PatchAE: a point-patch autoencoder, the reference neural detector (see detector.py)."""
