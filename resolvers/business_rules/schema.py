"""Business rule sets over GraphQL (ADMIN only): frequency caps and quiet hours. Rules and writes live in
models/business_rules; this module translates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.relay.utils import to_base64

from models.business_rules.actions import (
    RuleSetChange,
    RuleSetConflictError,
    RuleSetInputError,
    RuleSetNotFoundError,
    create_rule_set,
    delete_rule_set,
    update_rule_set,
)
from models.business_rules.model import BusinessRuleSet as RuleSetRow
from models.business_rules.rules import CapPeriod as CapPeriodEnum
from models.business_rules.rules import QuietAction as QuietActionEnum
from resolvers.campaigns.enums import Weekday
from resolvers.context import Info
from resolvers.errors import ConflictError, FieldError, InvalidInputError, NotFoundError, field_error_code, not_found
from resolvers.nodes import pk_of
from resolvers.pagination import Connection, paginate
from resolvers.permissions import ADMIN
from resolvers.vocabulary import INPUT_ARG, Category, Channel, described_enum

CapPeriod = described_enum(
    CapPeriodEnum,
    name="FrequencyCapPeriod",
    description="The period a frequency cap counts sends in.",
    values={
        "DAY": "The calendar day, from local midnight, in the profile's time zone.",
        "WEEK": "The calendar week, from Monday local midnight, in the profile's time zone.",
        "MONTH": "The calendar month, from the 1st at local midnight, in the profile's time zone.",
        "ROLLING_HOURS": "The last `hours` hours.",
    },
)
QuietAction = described_enum(
    QuietActionEnum,
    name="QuietHoursAction",
    description="What happens to a send due inside quiet hours.",
    values={
        "DELAY": "It waits (QUEUED) until the quiet hours end, and is sent then; it uses no cap budget meanwhile.",
        "SKIP": "It is not sent: EXCLUDED with reason QUIET_HOURS.",
    },
)


@strawberry.type(description="At most `limit` messages per profile on a channel and category in a period.")
class FrequencyCap:
    channel: Channel = strawberry.field(description="The channel counted.")  # type: ignore[valid-type]
    category: Category = strawberry.field(description="The category counted.")  # type: ignore[valid-type]
    limit: int = strawberry.field(description="Messages per profile in the period, at most (0 to 10000).")
    period: CapPeriod = strawberry.field(description="The period counted in.")  # type: ignore[valid-type]
    hours: int | None = strawberry.field(description="ROLLING_HOURS: how many hours; null otherwise.")


@strawberry.type(description="A window of the week when nothing is sent on a channel, in the profile's time zone.")
class QuietHours:
    channel: Channel = strawberry.field(description="The channel kept quiet.")  # type: ignore[valid-type]
    weekdays: list[Weekday] = strawberry.field(  # type: ignore[valid-type]
        description="The days the window starts on."
    )
    from_: str = strawberry.field(name="from", description="Local start, HH:MM.")
    until: str = strawberry.field(description="Local end, HH:MM; at or before `from`: the next day (past midnight).")
    action: QuietAction = strawberry.field(description="DELAY or SKIP.")  # type: ignore[valid-type]


@strawberry.type(description="Frequency caps and quiet hours for a sandbox's MARKETING sends.")
class BusinessRuleSet:
    id: strawberry.ID = strawberry.field(description="Global id.")
    name: str = strawberry.field(description="Name, unique in the sandbox.")
    description: str = strawberry.field(description="Free text.")
    caps: list[FrequencyCap] = strawberry.field(description="Frequency caps.")
    quiet_hours: list[QuietHours] = strawberry.field(description="Quiet hours.")
    default_time_zone: str = strawberry.field(
        description="IANA zone of calendar periods and quiet hours for profiles without a time zone; empty: the "
        "sandbox's `timeZone`, else UTC."
    )
    is_default: bool = strawberry.field(
        description="The sandbox's default: MARKETING campaigns naming no rule set follow it (one at most)."
    )
    version: int = strawberry.field(description="Increments on every change; send it back with updates.")
    created_at: datetime = strawberry.field(description="When it was created.")
    updated_at: datetime = strawberry.field(description="Last change.")

    @classmethod
    def from_row(cls, row: RuleSetRow) -> BusinessRuleSet:
        stored = row.rules or {}
        return cls(
            id=strawberry.ID(to_base64("BusinessRuleSet", row.id)),
            name=row.name,
            description=row.description,
            caps=[
                FrequencyCap(
                    channel=c["channel"],
                    category=c["category"],
                    limit=c["limit"],
                    period=CapPeriodEnum(c["period"]),
                    hours=c.get("hours"),
                )
                for c in stored.get("caps", [])
            ],
            quiet_hours=[
                QuietHours(
                    channel=q["channel"],
                    weekdays=[Weekday[d] for d in q["weekdays"]],
                    from_=q["from"],
                    until=q["until"],
                    action=QuietActionEnum(q["action"]),
                )
                for q in stored.get("quietHours", [])
            ],
            default_time_zone=row.default_time_zone,
            is_default=row.is_default,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.input(description="A frequency cap.")
class FrequencyCapInput:
    channel: Channel = strawberry.field(description="The channel counted.")  # type: ignore[valid-type]
    category: Category = strawberry.field(  # type: ignore[valid-type]
        description="The category counted (TRANSACTIONAL sends are exempt from rule sets)."
    )
    limit: int = strawberry.field(description="Messages per profile in the period, at most (0 to 10000).")
    period: CapPeriod = strawberry.field(description="The period counted in.")  # type: ignore[valid-type]
    hours: int | None = strawberry.field(default=None, description="ROLLING_HOURS only: 1 to 744 hours.")


@strawberry.input(description="Quiet hours on a channel.")
class QuietHoursInput:
    channel: Channel = strawberry.field(description="The channel kept quiet.")  # type: ignore[valid-type]
    weekdays: list[Weekday] = strawberry.field(description="The days the window starts on.")  # type: ignore[valid-type]
    from_: str = strawberry.field(name="from", description="Local start, HH:MM (24 h).")
    until: str = strawberry.field(description="Local end, HH:MM; at or before `from`: the next day.")
    action: QuietAction = strawberry.field(description="DELAY or SKIP.")  # type: ignore[valid-type]


@strawberry.input(description="A new business rule set.")
class BusinessRuleSetCreateInput:
    name: str = strawberry.field(description="Name, unique in the sandbox.")
    description: str = strawberry.field(default="", description="Free text.")
    caps: list[FrequencyCapInput] = strawberry.field(default_factory=list, description="Frequency caps.")
    quiet_hours: list[QuietHoursInput] = strawberry.field(default_factory=list, description="Quiet hours.")
    default_time_zone: str = strawberry.field(
        default="",
        description="IANA zone for profiles without a time zone; empty = the sandbox's `timeZone` (else UTC).",
    )
    is_default: bool = strawberry.field(
        default=False, description="Make it the sandbox's default for MARKETING campaigns (unmarks the previous)."
    )


@strawberry.input(description="Changes to a business rule set; omitted fields stay (lists replace).")
class BusinessRuleSetUpdateInput:
    id: strawberry.ID = strawberry.field(description="The rule set.")
    version: int | None = strawberry.field(
        default=None, description="The `version` you read; a stale one is refused with ConflictError."
    )
    name: str | None = strawberry.field(default=None, description="New name.")
    description: str | None = strawberry.field(default=None, description="New description.")
    caps: list[FrequencyCapInput] | None = strawberry.field(default=None, description="New caps (replace).")
    quiet_hours: list[QuietHoursInput] | None = strawberry.field(default=None, description="New quiet hours (replace).")
    default_time_zone: str | None = strawberry.field(
        default=None, description="New default time zone; empty = follow the sandbox's `timeZone`."
    )
    is_default: bool | None = strawberry.field(default=None, description="Mark or unmark as the default.")


@strawberry.type(description="The rule set after the change.")
class BusinessRuleSetSuccess:
    business_rule_set: BusinessRuleSet = strawberry.field(description="The rule set.")


@strawberry.type(description="The rule set was deleted.")
class BusinessRuleSetDeleteSuccess:
    deleted_id: strawberry.ID = strawberry.field(description="Global id of the deleted rule set.")


BusinessRuleSetCreateResult = Annotated[
    BusinessRuleSetSuccess | InvalidInputError,
    strawberry.union("BusinessRuleSetCreateResult", description="Result of `businessRuleSetCreate`."),
]
BusinessRuleSetUpdateResult = Annotated[
    BusinessRuleSetSuccess | InvalidInputError | NotFoundError | ConflictError,
    strawberry.union("BusinessRuleSetUpdateResult", description="Result of `businessRuleSetUpdate`."),
]
BusinessRuleSetDeleteResult = Annotated[
    BusinessRuleSetDeleteSuccess | InvalidInputError | NotFoundError,
    strawberry.union("BusinessRuleSetDeleteResult", description="Result of `businessRuleSetDelete`."),
]


def _cap(cap: FrequencyCapInput) -> dict[str, Any]:
    return {
        "channel": cap.channel.value,
        "category": cap.category.value,
        "limit": cap.limit,
        "period": cap.period.value,
        "hours": cap.hours,
    }


def _quiet(quiet: QuietHoursInput) -> dict[str, Any]:
    return {
        "channel": quiet.channel.value,
        "weekdays": [d.name for d in quiet.weekdays],
        "from": quiet.from_,
        "until": quiet.until,
        "action": quiet.action.value,
    }


def _invalid(error: RuleSetInputError) -> InvalidInputError:
    return InvalidInputError(
        message="The business rule set was refused; nothing was changed.",
        field_errors=[FieldError(field=f, code=field_error_code(c), message=m) for f, c, m in error.errors],
    )


@strawberry.type
class BusinessRulesQuery:
    @strawberry.field(description="This sandbox's business rule sets, newest first.", permission_classes=ADMIN)
    async def business_rule_sets(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size, 0 to 100 (default 20).")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor to continue from.")] = None,
    ) -> Connection[BusinessRuleSet]:
        return await paginate(
            RuleSetRow.filter(sandbox_id=info.context.require_caller().sandbox_id),
            first=first,
            after=after,
            max_page_size=info.context.limits.max_page_size,
            to_node=BusinessRuleSet.from_row,
        )


@strawberry.type
class BusinessRulesMutation:
    @strawberry.mutation(description="Create a business rule set (caps, quiet hours).", permission_classes=ADMIN)
    async def business_rule_set_create(
        self, info: Info, input: Annotated[BusinessRuleSetCreateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> BusinessRuleSetCreateResult:
        caller = info.context.require_caller()
        change = RuleSetChange(
            name=input.name,
            description=input.description,
            caps=[_cap(c) for c in input.caps],
            quiet_hours=[_quiet(q) for q in input.quiet_hours],
            default_time_zone=input.default_time_zone,
            is_default=input.is_default,
        )
        try:
            row = await create_rule_set(sandbox_id=caller.sandbox_id, actor=caller.actor, change=change)
        except RuleSetInputError as error:
            return _invalid(error)
        return BusinessRuleSetSuccess(business_rule_set=BusinessRuleSet.from_row(row))

    @strawberry.mutation(description="Change a business rule set.", permission_classes=ADMIN)
    async def business_rule_set_update(
        self, info: Info, input: Annotated[BusinessRuleSetUpdateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> BusinessRuleSetUpdateResult:
        caller = info.context.require_caller()
        pk = pk_of(input.id, "BusinessRuleSet")
        if pk is None:
            return not_found(input.id)
        change = RuleSetChange(
            name=input.name,
            description=input.description,
            caps=[_cap(c) for c in input.caps] if input.caps is not None else None,
            quiet_hours=[_quiet(q) for q in input.quiet_hours] if input.quiet_hours is not None else None,
            default_time_zone=input.default_time_zone,
            is_default=input.is_default,
        )
        try:
            row = await update_rule_set(
                sandbox_id=caller.sandbox_id, rule_set_id=pk, actor=caller.actor, version=input.version, change=change
            )
        except RuleSetInputError as error:
            return _invalid(error)
        except RuleSetNotFoundError:
            return not_found(input.id)
        except RuleSetConflictError as error:
            return ConflictError(message=str(error), current_version=error.current_version)
        return BusinessRuleSetSuccess(business_rule_set=BusinessRuleSet.from_row(row))

    @strawberry.mutation(
        description="Delete a business rule set; refused while a campaign names it.", permission_classes=ADMIN
    )
    async def business_rule_set_delete(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The rule set.")]
    ) -> BusinessRuleSetDeleteResult:
        caller = info.context.require_caller()
        pk = pk_of(id, "BusinessRuleSet")
        try:
            if pk is None:
                raise RuleSetNotFoundError
            await delete_rule_set(sandbox_id=caller.sandbox_id, rule_set_id=pk, actor=caller.actor)
        except RuleSetInputError as error:
            return _invalid(error)
        except RuleSetNotFoundError:
            return not_found(id)
        return BusinessRuleSetDeleteSuccess(deleted_id=id)
