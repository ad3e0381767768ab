"""Tracking (events, links, tokens) and provider feedback; the report aggregates are SQL over the ledger
(models.ledger.reports)."""
