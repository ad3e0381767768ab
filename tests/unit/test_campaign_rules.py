"""The campaign status machine of DESIGN §4 and the actions offered per role."""

import pytest

from models.campaigns.rules import (
    ACTION_MIN_ROLE,
    ROLE_NAMES,
    TRANSITIONS,
    CampaignAction,
    CampaignEvent,
    CampaignStatus,
    InvalidTransition,
    available_actions,
    check_transition,
    is_editable,
    role_rank,
    status_actions,
)
from models.tenancy.sandbox import Role

S = CampaignStatus
A = CampaignAction
E = CampaignEvent

# Every allowed (from, trigger) -> to of DESIGN §4, written out independently of the table.
EXPECTED = {
    (S.DRAFT, A.EDIT): S.DRAFT,
    (S.DRAFT, A.REVIEW): S.DRAFT,
    (S.DRAFT, A.DUPLICATE): S.DRAFT,
    (S.DRAFT, A.DELETE): None,
    (S.DRAFT, A.REQUEST_APPROVAL): S.IN_REVIEW,
    (S.IN_REVIEW, A.REVIEW): S.IN_REVIEW,
    (S.IN_REVIEW, A.DUPLICATE): S.IN_REVIEW,
    (S.IN_REVIEW, A.REQUEST_CHANGES): S.DRAFT,
    (S.APPROVED, A.REVIEW): S.APPROVED,
    (S.APPROVED, A.DUPLICATE): S.APPROVED,
    (S.APPROVED, A.REQUEST_CHANGES): S.DRAFT,
    (S.SCHEDULED, A.REVIEW): S.SCHEDULED,
    (S.SCHEDULED, A.STOP): S.STOPPED,
    (S.SCHEDULED, A.DUPLICATE): S.SCHEDULED,
    (S.SCHEDULED, E.START): S.LIVE,
    (S.SCHEDULED, E.FAIL): S.FAILED,
    (S.LIVE, A.REVIEW): S.LIVE,
    (S.LIVE, A.STOP): S.STOPPED,
    (S.LIVE, A.DUPLICATE): S.LIVE,
    (S.LIVE, E.COMPLETE): S.COMPLETED,
    (S.LIVE, E.FAIL): S.FAILED,
    (S.STOPPED, A.DUPLICATE): S.STOPPED,
    (S.STOPPED, A.ARCHIVE): S.ARCHIVED,
    (S.COMPLETED, A.DUPLICATE): S.COMPLETED,
    (S.COMPLETED, A.ARCHIVE): S.ARCHIVED,
    (S.FAILED, A.DUPLICATE): S.FAILED,
    (S.FAILED, A.ARCHIVE): S.ARCHIVED,
    (S.ARCHIVED, A.DUPLICATE): S.ARCHIVED,
}

ALL_PAIRS = [(status, trigger) for status in S for trigger in [*A, *E]]


@pytest.mark.parametrize(("status", "trigger"), ALL_PAIRS)
def test_every_status_and_trigger_pair(status: CampaignStatus, trigger) -> None:
    if (status, trigger) in EXPECTED:
        assert check_transition(status, trigger) == EXPECTED[(status, trigger)]
    elif (status, trigger) in ((S.DRAFT, A.ACTIVATE), (S.APPROVED, A.ACTIVATE)):
        assert check_transition(status, trigger) is S.LIVE
        assert check_transition(status, trigger, starts_later=True) is S.SCHEDULED
    elif (status, trigger) == (S.IN_REVIEW, A.APPROVE):
        # An approval that leaves a policy short keeps the campaign IN_REVIEW; the last one approves it.
        assert check_transition(status, trigger) is S.IN_REVIEW
        assert check_transition(status, trigger, approved=True) is S.APPROVED
    else:
        with pytest.raises(InvalidTransition) as raised:
            check_transition(status, trigger)
        assert raised.value.current is status
        assert raised.value.action == trigger
        assert raised.value.allowed_actions == status_actions(status)
        assert status.value in str(raised.value)


def test_stopped_is_final_and_only_duplicate_or_archive_remain() -> None:
    assert status_actions(S.STOPPED) == [A.DUPLICATE, A.ARCHIVE]
    with pytest.raises(InvalidTransition) as raised:
        check_transition(S.STOPPED, A.ACTIVATE)
    assert raised.value.allowed_actions == [A.DUPLICATE, A.ARCHIVE]


def test_table_covers_every_status() -> None:
    assert set(TRANSITIONS) == set(S)
    assert set(ACTION_MIN_ROLE) == set(A)


def test_role_names_follow_the_sandbox_roles() -> None:
    assert ROLE_NAMES == tuple(role.value for role in sorted(Role, key=lambda r: r.rank))
    assert [role_rank(role) for role in Role] == [role.rank for role in Role]
    assert role_rank("NOBODY") == -1


@pytest.mark.parametrize(
    ("status", "role", "expected"),
    [
        (S.DRAFT, Role.VIEWER, []),
        (S.DRAFT, Role.MANAGER, [A.EDIT, A.REVIEW, A.DUPLICATE, A.DELETE, A.REQUEST_APPROVAL]),
        (S.DRAFT, Role.PUBLISHER, [A.EDIT, A.REVIEW, A.ACTIVATE, A.DUPLICATE, A.DELETE, A.REQUEST_APPROVAL]),
        (S.DRAFT, Role.ADMIN, [A.EDIT, A.REVIEW, A.ACTIVATE, A.DUPLICATE, A.DELETE, A.REQUEST_APPROVAL]),
        (S.IN_REVIEW, Role.VIEWER, []),
        (S.IN_REVIEW, Role.MANAGER, [A.REVIEW, A.DUPLICATE, A.APPROVE, A.REQUEST_CHANGES]),
        (S.APPROVED, Role.MANAGER, [A.REVIEW, A.DUPLICATE, A.REQUEST_CHANGES]),
        (S.APPROVED, Role.PUBLISHER, [A.REVIEW, A.ACTIVATE, A.DUPLICATE, A.REQUEST_CHANGES]),
        (S.LIVE, Role.VIEWER, []),
        (S.LIVE, Role.MANAGER, [A.REVIEW, A.DUPLICATE]),
        (S.LIVE, Role.PUBLISHER, [A.REVIEW, A.STOP, A.DUPLICATE]),
        (S.SCHEDULED, Role.PUBLISHER, [A.REVIEW, A.STOP, A.DUPLICATE]),
        (S.STOPPED, Role.MANAGER, [A.DUPLICATE]),
        (S.STOPPED, Role.PUBLISHER, [A.DUPLICATE, A.ARCHIVE]),
        (S.COMPLETED, Role.PUBLISHER, [A.DUPLICATE, A.ARCHIVE]),
        (S.FAILED, Role.ADMIN, [A.DUPLICATE, A.ARCHIVE]),
        (S.ARCHIVED, Role.ADMIN, [A.DUPLICATE]),
        (S.DRAFT, "NOBODY", []),
    ],
)
def test_available_actions_per_role(status: CampaignStatus, role: str, expected: list[CampaignAction]) -> None:
    assert available_actions(status, role) == expected


def test_available_actions_never_offer_a_refused_transition() -> None:
    for status in S:
        for action in available_actions(status, Role.ADMIN):
            check_transition(status, action)  # must not raise


def test_only_drafts_are_editable_except_tags_and_description() -> None:
    assert is_editable(S.DRAFT, "schedule")
    assert not is_editable(S.LIVE, "schedule")
    assert is_editable(S.LIVE, "tags") and is_editable(S.ARCHIVED, "description")
    # In review and approved: read-only, as approvers saw it.
    assert not is_editable(S.IN_REVIEW, "content") and not is_editable(S.APPROVED, "schedule")
