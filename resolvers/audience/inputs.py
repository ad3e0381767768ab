"""Inputs of the audience mutations and their translation to the plain values `models/` works with."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from models.audience.entities import ContactChannel as ContactChannelEnum
from models.audience.profiles import KEEP, FieldProblem, IdentityValue, ProfileChanges
from models.audience.segment_rules import MAX_DEPTH
from resolvers.audience.types import Consent, ContactChannel, SegmentKind, SegmentOperator, SuppressionReason
from resolvers.errors import FieldError, InvalidInputError
from resolvers.nodes import parse_pk
from resolvers.tenancy.types import IdentityType


def decode_id(global_id: str, type_name: str) -> int | None:
    """The database id behind a global id of `type_name`; None for malformed or other types' ids."""
    try:
        decoded = relay.GlobalID.from_id(global_id)
    except relay.GlobalIDValueError:
        return None
    return parse_pk(decoded.node_id) if decoded.type_name == type_name else None


def invalid_input(problems: list[FieldProblem]) -> InvalidInputError:
    return InvalidInputError(
        message="The input was refused; nothing was changed.",
        field_errors=[FieldError(field=p.field, code=p.code, message=p.message) for p in problems],
    )


def _given(value: Any) -> Any:
    return KEEP if value is strawberry.UNSET else value


@strawberry.input(description="An identity: a namespace code and a value.")
class IdentityInput:
    namespace: str = strawberry.field(description="Code of the identity namespace, e.g. `Email`, `Phone`.")
    value: str = strawberry.field(description="The value; emails are lower-cased and phones turned into E.164.")

    def to_value(self) -> IdentityValue:
        return IdentityValue(namespace=self.namespace, value=self.value)


@strawberry.input(description="Consent per channel; channels left out keep their consent.")
class ConsentInput:
    email: Consent | None = strawberry.field(default=strawberry.UNSET, description="Consent to marketing email.")
    sms: Consent | None = strawberry.field(default=strawberry.UNSET, description="Consent to marketing SMS.")
    push: Consent | None = strawberry.field(default=strawberry.UNSET, description="Consent to marketing push.")


@strawberry.input(description="One profile to create or update, found by any of its identities.")
class ProfileInput:
    identities: list[IdentityInput] = strawberry.field(
        description="1 to 20 identities. An existing profile holding any of them is updated; the others are "
        "added to it."
    )
    attributes: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Attributes merged into the profile's: objects merge key by key, other values replace, "
        "`null` removes a key. At most 64 KB and 10 levels.",
    )
    consent: ConsentInput | None = strawberry.field(default=strawberry.UNSET, description="Consent changes.")
    time_zone: str | None = strawberry.field(default=strawberry.UNSET, description="IANA time zone; null clears it.")
    test_profile: bool | None = strawberry.field(default=strawberry.UNSET, description="Mark as a test profile.")

    def to_changes(self) -> ProfileChanges:
        consent = {}
        if self.consent:
            for channel, value in (
                (ContactChannelEnum.EMAIL, self.consent.email),
                (ContactChannelEnum.SMS, self.consent.sms),
                (ContactChannelEnum.PUSH, self.consent.push),
            ):
                if value is not strawberry.UNSET and value is not None:
                    consent[channel] = value
        return ProfileChanges(
            identities=[identity.to_value() for identity in self.identities],
            attributes=_given(self.attributes),
            consent=consent,
            time_zone=_given(self.time_zone),
            test_profile=KEEP if self.test_profile in (strawberry.UNSET, None) else self.test_profile,
        )


@strawberry.input(description="Profiles to create or update.")
class ProfilesUpsertInput:
    profiles: list[ProfileInput] = strawberry.field(description="1 to 1,000 profiles.")


@strawberry.input(description="Filters of the `profiles` list; all given filters apply.")
class ProfileFilterInput:
    segment_id: strawberry.ID | None = strawberry.field(default=None, description="Members of this segment.")
    test_profile: bool | None = strawberry.field(default=None, description="Only test (or only other) profiles.")
    identity: IdentityInput | None = strawberry.field(default=None, description="The profile with this identity.")


@strawberry.input(description="Create a custom identity namespace. Its code can never change.")
class IdentityNamespaceCreateInput:
    code: str = strawberry.field(description="Identity symbol: a letter, then letters, digits or '_' (≤ 50).")
    name: str = strawberry.field(description="Display name.")
    type: IdentityType = strawberry.field(description="Kind of identifier.")
    description: str = strawberry.field(default="", description="Free text.")


@strawberry.input(description="A condition on a profile attribute: `path` `operator` `value`.")
class SegmentConditionInput:
    path: str = strawberry.field(description="Dotted attribute path, e.g. `loyalty.points`.")
    operator: SegmentOperator = strawberry.field(description="How to compare.")
    value: JSON | None = strawberry.field(
        default=None,
        description="EQ/NE: string, number or boolean. IN/NOT_IN: a list of one type. CONTAINS/STARTS_WITH/"
        "ENDS_WITH: a string. GT/GTE/LT/LTE: number or string. BETWEEN: [low, high]. WITHIN_LAST_DAYS: "
        "days (ISO-8601 UTC text attributes). EXISTS/NOT_EXISTS: none.",
    )


@strawberry.input(
    one_of=True,
    description="A rule: exactly one of `all`, `any`, `not`, `condition`, `inSegment`. At most 10 levels "
    "and 200 conditions.",
)
class SegmentRuleInput:
    all: list[SegmentRuleInput] | None = strawberry.field(
        default=strawberry.UNSET, description="Every rule holds (an empty list holds for everyone)."
    )
    any: list[SegmentRuleInput] | None = strawberry.field(
        default=strawberry.UNSET, description="At least one rule holds."
    )
    not_: SegmentRuleInput | None = strawberry.field(
        default=strawberry.UNSET, name="not", description="The rule does not hold."
    )
    condition: SegmentConditionInput | None = strawberry.field(
        default=strawberry.UNSET, description="A condition on an attribute."
    )
    in_segment: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Member of this other segment."
    )


def rule_from_input(rule: SegmentRuleInput, depth: int = 1) -> Any:
    """The stored form of a rule; validation (models.audience.segment_rules) reports what is wrong with it."""
    if depth > MAX_DEPTH + 1:
        return {"not": {"all": []}}  # deeper than allowed: validation reports TOO_DEEP above this level
    if rule.all not in (strawberry.UNSET, None):
        return {"all": [rule_from_input(item, depth + 1) for item in rule.all]}
    if rule.any not in (strawberry.UNSET, None):
        return {"any": [rule_from_input(item, depth + 1) for item in rule.any]}
    if rule.not_ not in (strawberry.UNSET, None):
        return {"not": rule_from_input(rule.not_, depth + 1)}
    if rule.condition not in (strawberry.UNSET, None):
        condition = rule.condition
        return {
            "condition": {
                "path": condition.path,
                "operator": condition.operator.value,
                "value": condition.value,
            }
        }
    if rule.in_segment not in (strawberry.UNSET, None):
        return {"inSegment": decode_id(rule.in_segment, "Segment") or 0}
    return {}


@strawberry.input(description="Create a segment: a RULE segment with its rule, or an empty STATIC segment.")
class SegmentCreateInput:
    name: str = strawberry.field(description="Name, unique in the sandbox (≤ 100 characters).")
    kind: SegmentKind = strawberry.field(description="RULE or STATIC.")
    description: str = strawberry.field(default="", description="Free text.")
    rule: SegmentRuleInput | None = strawberry.field(default=None, description="Required for RULE segments.")


@strawberry.input(description="Change a segment; fields left out stay as they are. The kind never changes.")
class SegmentUpdateInput:
    id: strawberry.ID = strawberry.field(description="The segment.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    description: str | None = strawberry.field(default=strawberry.UNSET, description="New description.")
    rule: SegmentRuleInput | None = strawberry.field(default=strawberry.UNSET, description="New rule (RULE only).")


@strawberry.input(description="Delete a segment that nothing uses.")
class SegmentDeleteInput:
    id: strawberry.ID = strawberry.field(description="The segment.")


@strawberry.input(description="Profiles, named by identity, to add to or remove from a STATIC segment.")
class SegmentMembersInput:
    segment_id: strawberry.ID = strawberry.field(description="A STATIC segment.")
    identities: list[IdentityInput] = strawberry.field(description="1 to 1,000 identities.")


@strawberry.input(description="Suppress an address on a channel.")
class SuppressionAddInput:
    channel: ContactChannel = strawberry.field(description="The channel.")
    address: str = strawberry.field(description="Email address, phone number (with country code) or token.")
    reason: SuppressionReason = strawberry.field(default=SuppressionReason.MANUAL, description="Why.")


@strawberry.input(description="Lift a suppression.")
class SuppressionRemoveInput:
    id: strawberry.ID = strawberry.field(description="The suppression entry.")
