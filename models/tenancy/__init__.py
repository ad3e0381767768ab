"""Sandboxes, API keys, the audit trail and identity namespaces (models: sandbox, audit, identity; actions)."""
