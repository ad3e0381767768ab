from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from models.tenancy.audit import AuditEvent as AuditEventModel
from models.tenancy.identity import IdentityNamespace as IdentityNamespaceModel
from models.tenancy.identity import IdentityType as IdentityTypeEnum
from models.tenancy.sandbox import Role as RoleEnum
from models.tenancy.sandbox import Sandbox as SandboxModel
from resolvers.nodes import SandboxNode
from resolvers.vocabulary import described_enum

Role = described_enum(
    RoleEnum,
    description="What an API key or a person may do in a sandbox. Each role includes the rights of those before it.",
)
IdentityType = described_enum(IdentityTypeEnum, description="The kind of identifier a namespace holds.")


@strawberry.type(description="An isolated space (like AJO's `prod` or `dev`); nothing crosses sandboxes.")
class Sandbox:
    name: str = strawberry.field(description="Unique sandbox name.")

    @strawberry.field(
        description="IANA zone of profiles without a time zone, for frequency caps' calendar periods and quiet "
        "hours (a rule set may name its own `defaultTimeZone`); null = UTC."
    )
    async def time_zone(self) -> str | None:
        zones = await SandboxModel.filter(name=self.name).values_list("time_zone", flat=True)
        return zones[0] if zones else None


@strawberry.type(description="Who is calling: the sandbox and role of the API key or signed-in person.")
class Viewer:
    sandbox: Sandbox = strawberry.field(description="The sandbox this request acts in.")
    role: Role = strawberry.field(description="The caller's role in this sandbox.")


@strawberry.type(description="A recorded state change: who did what, when, with before and after.")
class AuditEvent(SandboxNode):
    model = AuditEventModel

    pk: relay.NodeID[int]
    actor: str = strawberry.field(description="Who made the change, e.g. `apikey:12`, `cli`, `system`.")
    action: str = strawberry.field(description="What was done, e.g. CREATE, UPDATE, ACTIVATE, REVOKE.")
    object_type: str = strawberry.field(description="Type of the changed object.")
    object_id: str = strawberry.field(description="Database id of the changed object.")
    before: JSON | None = strawberry.field(description="Relevant state before the change.")
    after: JSON | None = strawberry.field(description="Relevant state after the change.")
    created_at: datetime = strawberry.field(description="When the change was committed.")

    @classmethod
    def from_model(cls, row: AuditEventModel) -> Self:
        return cls(
            pk=row.id,
            actor=row.actor,
            action=row.action,
            object_type=row.object_type,
            object_id=row.object_id,
            before=row.before,
            after=row.after,
            created_at=row.created_at,
        )


@strawberry.type(description="A kind of identity (Email, Phone, ECID, …) that profiles are keyed by.")
class IdentityNamespace(SandboxNode):
    model = IdentityNamespaceModel

    pk: relay.NodeID[int]
    code: str = strawberry.field(description="Immutable identity symbol, unique in the sandbox.")
    name: str = strawberry.field(description="Display name.")
    type: IdentityType = strawberry.field(description="Kind of identifier.")
    description: str = strawberry.field(description="Free text.")
    standard: bool = strawberry.field(description="Created with the sandbox; cannot be changed.")

    @classmethod
    def from_model(cls, row: IdentityNamespaceModel) -> Self:
        return cls(
            pk=row.id,
            code=row.code,
            name=row.name,
            type=row.type,
            description=row.description,
            standard=row.standard,
        )
