"""GraphQL types of the audience: profiles, identities, suppression entries, segments, estimates."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from models.audience.entities import Consent as ConsentEnum
from models.audience.entities import ContactChannel as ContactChannelEnum
from models.audience.entities import Profile as ProfileModel
from models.audience.entities import Segment as SegmentModel
from models.audience.entities import SegmentKind as SegmentKindEnum
from models.audience.entities import SuppressionEntry as SuppressionEntryModel
from models.audience.entities import SuppressionReason as SuppressionReasonEnum
from models.audience.profiles import UpsertStatus as UpsertStatusEnum
from models.audience.profiles import identities_by_profile_id
from models.audience.segment_rules import Operator as OperatorEnum
from resolvers.context import Info
from resolvers.nodes import SandboxNode
from resolvers.projection import Projection
from resolvers.vocabulary import described_enum

Consent = described_enum(ConsentEnum, description="Marketing consent on a channel: Y (yes), N (no) or UNKNOWN.")
ContactChannel = described_enum(
    ContactChannelEnum, description="A channel with per-profile consent and a suppression list."
)
SuppressionReason = described_enum(SuppressionReasonEnum, description="Why an address is suppressed.")
SegmentKind = described_enum(
    SegmentKindEnum, description="RULE: members are the profiles matching a rule. STATIC: a listed set."
)
SegmentOperator = described_enum(
    OperatorEnum,
    description="How a condition compares a profile attribute with its value. Comparisons hold only when "
    "the attribute exists and has the value's JSON type (string, number, boolean).",
)
ProfileUpsertStatus = described_enum(UpsertStatusEnum, description="What an upsert did with one profile.")


@strawberry.type(description="One identity of a profile: a namespace and a normalised value.")
class Identity:
    namespace: str = strawberry.field(description="Code of the identity namespace, e.g. `Email`.")
    value: str = strawberry.field(description="The value: emails lower-cased, phones in E.164.")


@strawberry.type(description="Marketing consent of a profile per channel.")
class ConsentStatus:
    email: Consent = strawberry.field(description="Consent to marketing email.")
    sms: Consent = strawberry.field(description="Consent to marketing SMS.")
    push: Consent = strawberry.field(description="Consent to marketing push notifications.")


def _identity_loader(info: Info) -> DataLoader[int, list[dict]]:
    return info.context.loaders.custom("identities_by_profile_id", identities_by_profile_id)


@strawberry.type(description="A person (or device) the campaigns address: attributes, identities, consent.")
class Profile(SandboxNode):
    model = ProfileModel

    pk: relay.NodeID[int]
    attributes: JSON = strawberry.field(description="Nested attributes, e.g. `person.name.firstName`.")
    consent: ConsentStatus = strawberry.field(description="Marketing consent per channel.")
    time_zone: str | None = strawberry.field(description="IANA time zone, e.g. `Europe/Paris`.")
    test_profile: bool = strawberry.field(description="A test profile, used for proofs.")
    created_at: datetime = strawberry.field(description="When the profile was created.")
    updated_at: datetime = strawberry.field(description="When the profile last changed.")

    @strawberry.field(description="The identities of this profile, oldest first.")
    async def identities(self, info: Info) -> list[Identity]:
        rows = await _identity_loader(info).load(self.pk)
        return [Identity(namespace=row["namespace"], value=row["value"]) for row in rows]

    @classmethod
    def from_model(cls, row: ProfileModel) -> Self:
        return cls(
            pk=row.id,
            attributes=row.attributes,
            consent=ConsentStatus(email=row.consent_email, sms=row.consent_sms, push=row.consent_push),
            time_zone=row.time_zone,
            test_profile=row.test_profile,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type(description="An address that must not be contacted on a channel.")
class SuppressionEntry(SandboxNode):
    model = SuppressionEntryModel

    pk: relay.NodeID[int]
    channel: ContactChannel = strawberry.field(description="The channel the address is suppressed on.")
    address: str = strawberry.field(description="Normalised address: email lower-cased, phone E.164, or token.")
    reason: SuppressionReason = strawberry.field(description="Why it is suppressed.")
    created_at: datetime = strawberry.field(description="Since when it is suppressed.")

    @classmethod
    def from_model(cls, row: SuppressionEntryModel) -> Self:
        return cls(pk=row.id, channel=row.channel, address=row.address, reason=row.reason, created_at=row.created_at)


def rule_to_api(tree: object) -> object:
    """The stored rule with `inSegment` database ids shown as Segment global ids."""
    if not isinstance(tree, dict) or len(tree) != 1:
        return tree
    ((key, child),) = tree.items()
    if key in ("all", "any"):
        return {key: [rule_to_api(item) for item in child]}
    if key == "not":
        return {"not": rule_to_api(child)}
    if key == "inSegment":
        return {"inSegment": str(relay.GlobalID("Segment", str(child)))}
    return tree


@strawberry.type(description="An audience: the profiles matching a rule, or a static list of profiles.")
class Segment(SandboxNode):
    model = SegmentModel

    pk: relay.NodeID[int]
    name: str = strawberry.field(description="Name, unique in the sandbox.")
    description: str = strawberry.field(description="Free text.")
    kind: SegmentKind = strawberry.field(description="RULE or STATIC.")
    rule: JSON | None = strawberry.field(
        description="The rule of a RULE segment, in the shape of `SegmentRuleInput` (`inSegment` holds "
        "Segment ids); null for STATIC segments."
    )
    created_at: datetime = strawberry.field(description="When the segment was created.")
    updated_at: datetime = strawberry.field(description="When the segment last changed.")

    @classmethod
    def from_model(cls, row: SegmentModel) -> Self:
        return cls.from_values(vars(row))

    @classmethod
    def from_values(cls, row: dict[str, Any]) -> Self:
        """From the model's attributes (a list page may read only those its query selects: `projection`);
        an attribute not read is None."""
        get = row.get
        definition = get("definition")
        return cls(
            pk=row["id"],
            name=get("name"),
            description=get("description"),
            kind=get("kind"),
            rule=rule_to_api(definition) if definition is not None else None,
            created_at=get("created_at"),
            updated_at=get("updated_at"),
        )


# The model attributes each field reads (resolvers/projection.py).
Segment.projection = Projection(
    always=("id",),
    reads={
        "id": (),
        "name": ("name",),
        "description": ("description",),
        "kind": ("kind",),
        "rule": ("definition",),
        "createdAt": ("created_at",),
        "updatedAt": ("updated_at",),
    },
)


@strawberry.type(description="How many profiles a segment reaches now.")
class SegmentEstimate:
    qualified: int = strawberry.field(description="Profiles that are members of the segment.")
    with_identity: int = strawberry.field(description="Members with an identity in the given namespace.")
    contactable: int = strawberry.field(
        description="Members with that identity, an address on the channel, consent other than N, and an "
        "address that is not suppressed."
    )
