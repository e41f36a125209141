"""Where normal meshes come from: the procedural catalog (default), ShapeNetCore v2, user folders."""
