"""Scripts that run INSIDE Blender; they import nothing from anomalygen. This file only lets pip ship them."""
