"""Tortoise models and pure domain rules. Imports nothing from api, resolvers or jobs."""
