"""Invoice reconciliation: what the providers say they billed, next to the ledger.

- ``figures``: one provider-reported figure (``Figure``) and the token types;
- ``openai_reports`` / ``anthropic_reports``: the admin APIs' usage and cost reports, read
  page by page into figures;
- ``csv_reports``: uploaded files: the documented generic mapping and Azure Cost Management
  exports (actual-cost and FOCUS);
- ``pull``: one import of a provider's days, replacing what an earlier import said of them;
- ``reconcile``: provider figures against the ledger per UTC day x model x token type, with
  each difference classed as matched, unmetered, over-metered or price drift;
- ``drift``: the price a provider's figures imply, and accepting it (a new catalog price and
  correction rows in the ledger, never an edit of history).
"""
