"""SQL pieces of the compiled reads (resolvers/compiled_reads.py): a JSON object built in PostgreSQL with its
response cost and value checks, and values written as stock execution writes them."""

from __future__ import annotations

from dataclasses import dataclass, field


class Unsupported(Exception):
    """The document holds something the compiler does not answer: stock execution does."""


@dataclass
class JsonObject:
    """A JSON object being built: SQL of its pairs, of its cost, and of the checks its values must pass."""

    pairs: list[str] = field(default_factory=list)
    cost: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def add(self, key: str, value_sql: str) -> None:
        if key in self.keys:
            raise Unsupported(f"response key {key} twice")  # merging fields is stock execution's business
        self.keys.add(key)
        self.pairs.append(f"{literal(key)}, {value_sql}")

    def json(self) -> str:
        if len(self.pairs) > 50:  # json_build_object takes at most 100 arguments
            raise Unsupported("too many fields")
        return f"json_build_object({', '.join(self.pairs)})"

    def cost_sql(self) -> str:
        return " + ".join([str(len(self.pairs)), *self.cost])

    def check_sql(self) -> str:
        return " AND ".join(self.checks) if self.checks else "TRUE"


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def columns(names: set[str]) -> str:
    return ", ".join(f'"{name}"' for name in sorted(names))


def global_id(type_name: str, pk_sql: str) -> str:
    return f"encode(convert_to({literal(type_name + ':')} || {pk_sql}::text, 'UTF8'), 'base64')"


def cursor(pk_sql: str) -> str:
    """pagination._encode_cursor([id]): urlsafe base64 of `[id]`."""
    return f"translate(encode(convert_to('[' || {pk_sql}::text || ']', 'UTF8'), 'base64'), '+/', '-_')"


def datetime_text(column_sql: str) -> str:
    """datetime.isoformat() of the UTC value Tortoise hands stock execution."""
    utc = f"({column_sql} AT TIME ZONE 'UTC')"
    return (
        f"CASE WHEN {column_sql} IS NULL THEN NULL ELSE to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN date_part('microseconds', {utc})::bigint % 1000000 = 0 THEN '' ELSE to_char({utc}, '.US') END"
        " || '+00:00' END"
    )
