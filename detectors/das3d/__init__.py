"""DAS3D (ECCV 2024): reconstruction nets + dual-modal discriminator trained on our depth + RGB synthesis
(detector.py; network.py, loss.py, data.py)."""
