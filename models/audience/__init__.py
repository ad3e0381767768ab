"""Profiles, identities, segments and their rules, imports, suppression and namespace actions.

entities (the Tortoise models), values and segment_rules (pure), profiles/profile_writes/profile_queries,
segments, suppression, imports/import_format, namespaces.
"""
