"""Listing profiles with filters (segment membership, test flag, identity) in parameterised SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise import connections

from models.audience.entities import Profile, Segment
from models.audience.segments import segment_predicate
from models.sql.params import SqlParams
from models.sql.reads import dialect_of


@dataclass(frozen=True, slots=True)
class ProfileFilter:
    segment: Segment | None = None
    test_profile: bool | None = None
    identity: tuple[int, str] | None = None  # (namespace id, normalised value)


async def _where(sandbox_id: int, filters: ProfileFilter, params: SqlParams, now: datetime) -> str:
    clauses = [f"p.sandbox_id = {params.add(sandbox_id)}"]
    if filters.test_profile is not None:
        clauses.append(f"p.test_profile = {params.add(filters.test_profile)}")
    if filters.identity is not None:
        namespace_id, value = filters.identity
        clauses.append(
            "EXISTS (SELECT 1 FROM profile_identity i WHERE i.profile_id = p.id "
            f"AND i.namespace_id = {params.add(namespace_id)} AND i.value = {params.add(value)})"
        )
    if filters.segment is not None:
        clauses.append(await segment_predicate(filters.segment, params, now=now))
    return " AND ".join(clauses)


async def profile_page(
    sandbox_id: int, filters: ProfileFilter, *, before_id: int | None, limit: int, now: datetime | None = None
) -> list[Profile]:
    """Up to `limit` profiles, newest id first, with ids below `before_id`."""
    connection = connections.get("default")
    params = SqlParams(dialect_of())
    where = await _where(sandbox_id, filters, params, now or datetime.now(UTC))
    if before_id is not None:
        where += f" AND p.id < {params.add(before_id)}"
    sql = f"SELECT p.id FROM profile p WHERE {where} ORDER BY p.id DESC LIMIT {params.add(limit)}"
    ids = [row["id"] for row in await connection.execute_query_dict(sql, params.values)]
    rows = {row.id: row for row in await Profile.filter(id__in=ids)} if ids else {}
    return [rows[i] for i in ids]


async def count_profiles(sandbox_id: int, filters: ProfileFilter, *, now: datetime | None = None) -> int:
    params = SqlParams(dialect_of())
    where = await _where(sandbox_id, filters, params, now or datetime.now(UTC))
    (row,) = await connections.get("default").execute_query_dict(
        f"SELECT COUNT(*) AS n FROM profile p WHERE {where}", params.values
    )
    return int(row["n"])
