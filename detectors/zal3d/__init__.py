"""3DzAL: zero-shot 3D anomaly localization (Wang, Peng, Fu; WACV 2025); see detector.py."""
