"""Recipe YAML files shipped with anomalygen (this file only lets pip package them)."""
