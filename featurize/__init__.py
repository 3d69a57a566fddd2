"""Composition parsing/validation and composition features (lowest layer: imports nothing of nascreen)."""
