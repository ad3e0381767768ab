"""Herald's pools skip asyncpg's reset statement on release (api/db_connection.py), which is safe only while no
code leaves session state on a pooled connection. This parses the source tree and names every SQL text that
would: a session `SET` or `set_config(…, false)`, `LISTEN`, a session advisory lock, a cursor `WITH HOLD`.
`SET LOCAL` and transaction-scoped locks end with their transaction and are fine. Migrations take their lock on
a connection of their own (api/migrate.py), outside the pools."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from api.db_connection import NoResetConnection
from api.settings import tortoise_config

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("api", "resolvers", "jobs", "models")
OWN_CONNECTION = {"api/migrate.py"}
# Herald writes SQL keywords in capitals (STYLE), which keeps prose ("set startAt instead") out.
SESSION_STATE = re.compile(
    r"(?:^|;)\s*(?:SET\s+(?!LOCAL\b)|RESET\s|LISTEN\s)"
    r"|\bpg_(?:try_)?advisory_lock(?:_shared)?\s*\("
    r"|\bset_config\s*\([^)]*\b(?i:false)\s*\)"
    r"|\bWITH\s+HOLD\b",
)


def _texts(tree: ast.Module) -> list[tuple[int, str]]:
    """String literals but docstrings, with f-strings' literal parts joined (placeholders as `?`)."""
    docstrings = {
        id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    texts = []
    for node in ast.walk(tree):
        if id(node) in docstrings:
            continue
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "?" for v in node.values]
            texts.append((node.lineno, "".join(str(p) for p in parts)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append((node.lineno, node.value))
    return texts


def test_no_sql_leaves_session_state_on_a_pooled_connection() -> None:
    found = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in OWN_CONNECTION:
                continue
            for line, text in _texts(ast.parse(path.read_text(), relative)):
                if SESSION_STATE.search(text):
                    found.append(f"{relative}:{line}: {text[:80]!r}")
    assert not found, "session state on a pooled connection (api/db_connection.py):\n" + "\n".join(found)


def test_the_check_finds_what_it_looks_for() -> None:
    for sql in (
        "SET statement_timeout = 0",
        "SELECT 1; SET search_path TO x",
        "LISTEN herald",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_lock($1)",
        "SELECT set_config('a.b', 'c', false)",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    ):
        assert SESSION_STATE.search(sql), sql
    for sql in (
        "UPDATE campaign SET status = $1",
        "SET LOCAL statement_timeout = 0",
        "SELECT pg_try_advisory_xact_lock(1)",
        "SELECT set_config('a.b', 'c', true)",
    ):
        assert not SESSION_STATE.search(sql), sql


def test_the_pools_use_the_connection_without_reset_statement() -> None:
    config = tortoise_config("postgres://herald@127.0.0.1:5432/herald")["connections"]["default"]
    assert config["credentials"]["connection_class"] is NoResetConnection
    assert config["credentials"]["maxsize"] == "20"
    # Migrations keep asyncpg's own reset; SQLite has no pool of this kind (its client begins IMMEDIATE instead).
    assert isinstance(tortoise_config("postgres://h@127.0.0.1/h", for_migrations=True)["connections"]["default"], str)
    assert tortoise_config("sqlite://:memory:")["connections"]["default"]["engine"] == "api.sqlite_engine"
