"""DAS3D (ECCV 2024): the detector trained on its own depth + RGB synthesis. Today: its training data."""
