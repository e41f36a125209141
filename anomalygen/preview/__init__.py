"""PNG previews of datasets (contact sheets)."""
