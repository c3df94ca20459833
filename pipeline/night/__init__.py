"""One night from start to finish: its stages, items, manifest, warnings and the nights on record."""
