"""Reporting pages, one module per page family: its read assembly, its tables and its views.

- ``dashboards``: the spend link, the organisation overview and the team page (HTML and JSON);
  their figures in ``dashboard_data`` (on ``dashboard_measures``, ``dashboard_burn``), their
  tables in ``dashboard_tables``.
- ``catalog``: the model catalog and the re-price of a team's traffic (tables in
  ``catalog_tables``).
- ``keys``: a team's keys (``/teams/<id>/keys/``), with spend and budget shares.
- ``alerts``: one alert (where every alert email links).
- ``statements``: a team's monthly chargeback statement (its record and CSV in
  ``statement_tables``).
"""
