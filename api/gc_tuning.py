"""Garbage-collector settings for a serving process (DESIGN §10: the read path).

A Herald process holds a large, permanent heap (the GraphQL schema, strawberry's types, the ORM's models) and
every request allocates thousands of short-lived containers. With Python's defaults, a full collection walks that
permanent heap every few dozen requests: about a tenth of a read request's CPU in the graphql_read bench.
Freezing what exists after start-up moves it out of the collector's way; a larger first-generation threshold
collects the request garbage in fewer, cheaper passes. Reference counting still frees most objects at once, so
memory stays bounded.
"""

from __future__ import annotations

import gc

FIRST_GENERATION_THRESHOLD = 20_000


def tune_for_serving() -> None:
    """Call once the application is built (before serving requests)."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(FIRST_GENERATION_THRESHOLD, second, third)
