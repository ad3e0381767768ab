"""Relay nodes scoped to the caller's sandbox: the one visibility choke point for `node(id)`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Self

from strawberry import relay
from tortoise.models import Model

from resolvers.context import Info
from resolvers.projection import Projection


def parse_pk(node_id: str | int) -> int | None:
    try:
        pk = int(node_id)
    except (TypeError, ValueError):
        return None
    return pk if 0 < pk < 2**63 else None


def pk_of(value: object, type_name: str) -> int | None:
    """Database id from a global id of `type_name`, or from a plain database id; None for anything else."""
    text = str(value)
    try:
        global_id = relay.GlobalID.from_id(text)
    except Exception:  # not a global id: maybe a plain database id
        return parse_pk(text)
    return parse_pk(global_id.node_id) if global_id.type_name == type_name else None


class SandboxNode(relay.Node):
    """A node backed by a sandbox-owned model; ids from another sandbox read as not found."""

    model: ClassVar[type[Model]]
    # The model attributes each field reads, where the type declares them (resolvers/projection.py).
    projection: ClassVar[Projection | None] = None

    @classmethod
    def from_model(cls, row: Any) -> Self:
        raise NotImplementedError

    @classmethod
    def scoped(cls, info: Info):
        return cls.model.filter(sandbox_id=info.context.require_caller().sandbox_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        wanted = [parse_pk(node_id) for node_id in node_ids]
        valid = [pk for pk in wanted if pk is not None]
        rows = {row.id: row for row in await cls.scoped(info).filter(id__in=valid)} if valid else {}
        return [cls.from_model(rows[pk]) if pk in rows else None for pk in wanted]
