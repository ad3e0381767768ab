"""Suppression list actions: addresses that must not be contacted on a channel."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models.audience.entities import ContactChannel, SuppressionEntry, SuppressionReason
from models.audience.values import ValueProblem, normalize_email, normalize_identity, normalize_phone
from models.sql.params import SqlParams
from models.sql.reads import dialect_of
from models.tenancy.audit import record_audit
from models.tenancy.identity import IdentityType


def normalize_address(channel: ContactChannel, address: str) -> str:
    """Emails lower-cased, phones E.164, push tokens trimmed; the form stored and matched."""
    value = normalize_identity(IdentityType.DEVICE, address)  # length and character checks
    if channel is ContactChannel.EMAIL:
        return normalize_email(value)
    if channel is ContactChannel.SMS:
        return normalize_phone(value)
    return value


async def insert_suppressions(
    sandbox_id: int,
    channel: ContactChannel,
    addresses: Sequence[str],
    reason: SuppressionReason,
    now: datetime,
    conn: BaseDBAsyncClient | None = None,
) -> dict[str, int]:
    """One INSERT for many already-normalised addresses; those listed before are left as they are.

    Returns the ids of the entries created now, by address (to audit them).
    """
    if not addresses:
        return {}
    params = SqlParams(dialect_of())
    groups = [
        f"({params.typed(sandbox_id, 'BIGINT')}, {params.typed(address, 'TEXT')}, "
        f"{params.typed(channel.value, 'TEXT')}, {params.typed(reason.value, 'TEXT')}, "
        f"{params.typed(now, 'TIMESTAMPTZ')}, {params.typed(now, 'TIMESTAMPTZ')})"
        for address in dict.fromkeys(addresses)
    ]
    rows = await (conn or connections.get("default")).execute_query_dict(
        "INSERT INTO suppression_entry (sandbox_id, address, channel, reason, created_at, updated_at) VALUES "
        + ", ".join(groups)
        + " ON CONFLICT (sandbox_id, channel, address) DO NOTHING RETURNING id, address",
        params.values,
    )
    return {row["address"]: row["id"] for row in rows}


class SuppressionNotFound(Exception):
    pass


async def add_suppression(
    sandbox_id: int, channel: ContactChannel, address: str, reason: SuppressionReason, *, actor: str
) -> tuple[SuppressionEntry, bool]:
    """The entry for this address, and whether it was created now (an existing entry is kept as it is).

    Raises ValueProblem for an address that is not valid on the channel.
    """
    normalised = normalize_address(channel, address)
    async with in_transaction() as conn:
        existing = await SuppressionEntry.get_or_none(
            sandbox_id=sandbox_id, channel=channel, address=normalised
        ).using_db(conn)
        if existing is not None:
            return existing, False
        entry = await SuppressionEntry.create(
            sandbox_id=sandbox_id, channel=channel, address=normalised, reason=reason, using_db=conn
        )
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="CREATE",
            object_type="SuppressionEntry",
            object_id=entry.id,
            after={"channel": channel.value, "address": normalised, "reason": reason.value},
            using_db=conn,
        )
    return entry, True


async def remove_suppression(sandbox_id: int, entry_id: int, *, actor: str) -> SuppressionEntry:
    async with in_transaction() as conn:
        entry = await SuppressionEntry.get_or_none(sandbox_id=sandbox_id, id=entry_id).using_db(conn)
        if entry is None:
            raise SuppressionNotFound(entry_id)
        await entry.delete(using_db=conn)
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="DELETE",
            object_type="SuppressionEntry",
            object_id=entry_id,
            before={"channel": entry.channel.value, "address": entry.address, "reason": entry.reason.value},
            using_db=conn,
        )
    return entry


__all__ = [
    "SuppressionNotFound",
    "ValueProblem",
    "add_suppression",
    "normalize_address",
    "remove_suppression",
]
