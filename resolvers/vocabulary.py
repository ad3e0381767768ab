"""GraphQL enums shared by several domains (one Python enum may be wrapped only once), and `described_enum`,
which gives each value the description its domain module holds beside the enum."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

import strawberry

from models.campaigns.rules import Category as CategoryEnum
from models.campaigns.rules import Channel as ChannelEnum
from models.ledger.figures import COUNTER_DESCRIPTIONS
from models.ledger.vocabulary import (
    DELIVERY_REASON_DESCRIPTIONS,
    DELIVERY_STATUS_DESCRIPTIONS,
)
from models.ledger.vocabulary import DeliveryReason as DeliveryReasonEnum
from models.ledger.vocabulary import DeliveryStatus as DeliveryStatusEnum
from resolvers.enum_values import ENUM_VALUE_DESCRIPTIONS

E = TypeVar("E", bound=type[Enum])


def described_enum(
    enum: E | None = None, *, description: str, values: Mapping[Any, str] | None = None, name: str | None = None
) -> Any:
    """strawberry.enum with a description per value, from `values` (keyed by member or member name) or else from
    resolvers/enum_values.py by GraphQL name; every member must have one (a missing one fails at import, so a
    new member cannot reach the schema undescribed). Without `enum`, a class decorator."""
    if enum is None:
        return lambda cls: described_enum(cls, description=description, values=values, name=name)
    graphql_name = name or enum.__name__
    table = {getattr(k, "name", k): v for k, v in (values or ENUM_VALUE_DESCRIPTIONS.get(graphql_name, {})).items()}
    missing = [m.name for m in enum if m.name not in table]  # type: ignore[attr-defined]
    if missing:
        raise ValueError(f"{graphql_name}: no description for {', '.join(missing)}")
    wrapped = strawberry.enum(enum, name=name, description=description)
    for value in wrapped.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = table[value.name]
    return wrapped


Channel = described_enum(
    ChannelEnum,
    name="Channel",
    description="A channel messages go out on.",
    values={
        ChannelEnum.EMAIL: "Email over the preset's SMTP server.",
        ChannelEnum.SMS: "SMS through the preset's SMS provider.",
        ChannelEnum.PUSH: "Mobile push through the preset's push provider.",
        ChannelEnum.IN_APP: "A message in the in-app inbox of the identity.",
    },
)
Category = described_enum(
    CategoryEnum,
    name="Category",
    description="MARKETING messages need consent and honour suppressions; TRANSACTIONAL ones are operational.",
    values={
        CategoryEnum.MARKETING: "Promotional: needs consent, honours suppressions and opt-outs.",
        CategoryEnum.TRANSACTIONAL: "Operational (receipts, alerts): sent without marketing consent.",
    },
)
DeliveryStatus = described_enum(
    DeliveryStatusEnum,
    name="DeliveryStatus",
    description="Where one message of a run stands.",
    values=DELIVERY_STATUS_DESCRIPTIONS,
)
DeliveryReason = described_enum(
    DeliveryReasonEnum,
    name="DeliveryReason",
    description=(
        "Why a delivery was excluded, failed or bounced, or waits for a retry: the one reason enum of the ledger, "
        "the review plan and the reports."
    ),
    values=DELIVERY_REASON_DESCRIPTIONS,
)


LAST_ERROR_DESCRIPTION = "The reason of the latest failed or postponed send, with the deliveries that carry it now."
RESENT_DESCRIPTION = (
    "Messages handed to the provider again after a worker stopped between handing them over and recording the "
    "outcome (the same Message-ID may have reached the recipient twice). An upper bound: the stopped worker may "
    "not have sent them all. In-app messages are never counted (their delivery is idempotent)."
)


def counter(name: str) -> Any:
    """A counter field described once for every type that shows it (models.ledger.figures)."""
    return strawberry.field(description=COUNTER_DESCRIPTIONS[name])


@strawberry.type
class SummaryCounters:
    """The counters `CampaignSummary` shows and `RunCounters` starts with, declared once. Like RunCounters, not a
    GraphQL type of its own (no type names it); its fields come first in the types that inherit it."""

    audience: int = counter("audience")
    targeted: int = counter("targeted")
    excluded: int = counter("excluded")
    sent: int = counter("sent")
    delivered: int = counter("delivered")
    failed: int = counter("failed")


@strawberry.type
class RunCounters(SummaryCounters):
    """The counters `CampaignRun`, `CampaignRunProgress` and `CampaignRunWave` share: the summary's and those of
    the messages still in flight."""

    pending: int = counter("pending")
    retrying: int = counter("retrying")


@strawberry.type(description="A count of deliveries for one reason.")
class ReasonCount:
    reason: DeliveryReason = strawberry.field(description="The reason.")  # type: ignore[valid-type]
    count: int = strawberry.field(description="Deliveries with that reason.")


def reason_counts(counts: Mapping[str, int]) -> list[ReasonCount]:
    """Counts keyed by stored reason values; values this version does not know fold into UNKNOWN."""
    merged: dict[DeliveryReasonEnum, int] = {}
    for value, n in counts.items():
        reason = DeliveryReasonEnum.of(value) or DeliveryReasonEnum.UNKNOWN
        merged[reason] = merged.get(reason, 0) + n
    return [ReasonCount(reason=r, count=n) for r, n in merged.items()]


def last_error(reason: str | None, count: int) -> ReasonCount | None:
    return ReasonCount(reason=DeliveryReasonEnum.of(reason), count=count) if reason is not None else None


# Every mutation takes one `input` (DESIGN §8); its fields carry their own descriptions.
INPUT_ARG = "The mutation's input: what to change, each field described on its input type."
