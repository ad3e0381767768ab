"""The asyncpg connection class of Herald's pools: no reset statement when a connection goes back to the pool.

asyncpg's pool sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release, a
round trip per statement Herald sends (a campaign read by id is one statement, so this doubled its round trips;
issue 22). Herald never leaves session state on a pooled connection: no `SET` (only `SET LOCAL` inside a
transaction, which ends with it), no `LISTEN`, no session advisory locks (the outbox relay takes a
transaction-scoped one; migrations lock on a connection of their own), no cursors outside a transaction.
`tests/unit/test_session_state.py` keeps it so. asyncpg still rolls back a transaction left open and drops
listeners on release: only the reset statement goes.
"""

from __future__ import annotations

import asyncpg


class NoResetConnection(asyncpg.Connection):
    def get_reset_query(self) -> str:
        return ""
