"""Strawberry types, inputs, queries, mutations and subscriptions. Translates; `models` decides."""
