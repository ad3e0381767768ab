"""Campaign ids and domain refusals as GraphQL answers, for every campaign resolver (and the approval ones)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from models.approvals.policies import ApprovalRequiredError as ApprovalRequired
from models.campaigns.values import (
    CampaignConflictError,
    CampaignError,
    CampaignInvalidInputError,
    CampaignNotFoundError,
    CampaignStateError,
    ReviewFailedError,
)
from models.campaigns.versions import CampaignVersionStateError
from resolvers.approvals.types import ApprovalRequiredError
from resolvers.campaigns.review_types import ReviewFailedErrorType, review_alert
from resolvers.context import Info
from resolvers.errors import ConflictError, FieldError, InvalidInputError, InvalidStateError, NotFoundError
from resolvers.nodes import pk_of


def campaign_pk(value: Any) -> int | None:
    """A campaign id given as a global id (`Campaign:12`) or a plain database id."""
    return pk_of(value, "Campaign")


def campaign_error(exc: CampaignError) -> Any:
    """Domain refusals → union members (the approval mutations map the same). Only CampaignError subclasses
    reach here."""
    if isinstance(exc, CampaignNotFoundError):
        return NotFoundError(message=str(exc), id=str(exc.given))
    if isinstance(exc, CampaignInvalidInputError):
        return InvalidInputError(
            message="The input was refused; nothing was changed.",
            field_errors=[FieldError(field=p.field, code=p.code, message=p.message) for p in exc.problems],
        )
    if isinstance(exc, CampaignConflictError):
        return ConflictError(message=str(exc), current_version=exc.current_version)
    if isinstance(exc, CampaignStateError):
        return InvalidStateError(
            message=str(exc), current_status=exc.current.value, allowed_actions=[a.value for a in exc.allowed_actions]
        )
    if isinstance(exc, CampaignVersionStateError):  # e.g. an edit of a draft version IN_REVIEW
        return InvalidStateError(message=str(exc), current_status=exc.current, allowed_actions=[])
    if isinstance(exc, ReviewFailedError):
        return ReviewFailedErrorType(message=str(exc), alerts=[review_alert(a) for a in exc.alerts])
    if isinstance(exc, ApprovalRequired):
        return ApprovalRequiredError(message=str(exc), policies=[policy.name for policy in exc.policies])
    raise exc


def campaign_not_found(given: Any) -> NotFoundError:
    return NotFoundError(message="No campaign with that id in this sandbox.", id=str(given))


async def on_campaign(info: Info, node_id: Any, action: Callable[[int, int, str], Awaitable[Any]]) -> Any:
    """Decode the id, run `action(sandbox_id, pk, actor)` on the caller's campaign; refusals → an Error member."""
    caller = info.context.require_caller()
    pk = campaign_pk(node_id)
    if pk is None:
        return campaign_not_found(node_id)
    try:
        return await action(caller.sandbox_id, pk, caller.actor)
    except CampaignError as exc:
        return campaign_error(exc)
