"""The domain: Tortoise models, their transactions and the pure rules they obey, one package per aggregate.

tenancy (sandboxes, API keys, audit, identity namespaces) · audience (profiles, segments, imports,
suppression) · presets · campaigns (campaign, rules, review, schedule, templates) · ledger (deliveries and
every statement on them) · reporting (reports, tracking, feedback) · sql (dialect, parameters, read helpers).
Package `__init__` modules import nothing, so importing a pure rule module pulls in no framework.
"""
