"""Reporting exports: datasets for other tools, streamed from the rollups (``focus``: FOCUS 1.3,
and 1.2 on request)."""
