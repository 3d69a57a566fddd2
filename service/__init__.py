"""User-facing edges: the command-line interface and the HTTP API."""
