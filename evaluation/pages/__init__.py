"""Evaluation pages, one module per page family: its read assembly, its tables and its views.

- ``routers``: a cost router's page (savings, quality, what-if; HTML and JSON) and its tables;
  its figures in ``router_report``.
- ``experiments``: an A/B experiment's page (per arm), its figures and its tables.
"""
