"""Which model attributes each field of a GraphQL type reads, so that a list page reads only the columns its
query selects (models.sql_reads.RowReader): a page of campaigns need not carry each campaign's message, nor each
preset's settings. A field not listed makes the page read every column, so a new field is safe by default;
tests/graphql/test_read_path.py answers each field alone on a page and compares it with the node read whole."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass


@dataclass(frozen=True)
class Projection:
    always: tuple[str, ...]  # read whatever is selected (the id, keys of relations, values other fields use)
    reads: Mapping[str, tuple[str, ...]]  # GraphQL field name -> model attributes its resolver reads

    def attributes_for(self, selected: AbstractSet[str]) -> frozenset[str] | None:
        """Model attributes the fields `selected` (GraphQL names) read; None (all) if one is not listed."""
        needed = set(self.always)
        for name in selected:
            if name == "__typename":
                continue
            attributes = self.reads.get(name)
            if attributes is None:
                return None
            needed.update(attributes)
        return frozenset(needed)
