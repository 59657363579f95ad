"""Reporting exports: datasets for other tools, streamed from the rollups (``focus``: FOCUS 1.2)."""
