"""Approval policies as tables: matching conditions, who may approve, k of n, input checks; and the roles claim."""

from __future__ import annotations

import pytest

from models.approvals.rules import Approver, CampaignFacts, Policy, approved, matches, may_approve, validate_policy
from models.people.role_claims import claim_values, higher_role, roles_by_sandbox

FACTS = CampaignFacts(channel="EMAIL", category="MARKETING", contactable=500, requester_role="MANAGER")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (Policy(1, "any"), True),
        (Policy(1, "email", channels=("EMAIL",)), True),
        (Policy(1, "sms", channels=("SMS", "PUSH")), False),
        (Policy(1, "marketing", categories=("MARKETING",)), True),
        (Policy(1, "transactional", categories=("TRANSACTIONAL",)), False),
        (Policy(1, "above 499", audience_above=499), True),
        (Policy(1, "above 500", audience_above=500), False),  # above, not at
        (Policy(1, "managers", requester_roles=("MANAGER",)), True),
        (Policy(1, "viewers", requester_roles=("PUBLISHER", "ADMIN")), False),
        (Policy(1, "all hold", channels=("EMAIL",), audience_above=10, requester_roles=("MANAGER",)), True),
        (Policy(1, "one fails", channels=("EMAIL",), audience_above=1000), False),
        (Policy(1, "disabled", enabled=False), False),
    ],
)
def test_a_policy_matches_when_every_condition_it_sets_holds(policy: Policy, expected: bool) -> None:
    assert matches(policy, FACTS) is expected


def test_an_audience_that_cannot_be_estimated_matches_a_size_condition() -> None:
    unknown = CampaignFacts(channel="EMAIL", category="MARKETING", contactable=None, requester_role="ADMIN")
    assert matches(Policy(1, "big", audience_above=1_000_000), unknown)


def test_approvers_by_role_or_higher_and_by_name() -> None:
    by_role = Policy(1, "publishers", approver_roles=("PUBLISHER",))
    named = Policy(2, "named", approver_user_ids=(7,))
    assert may_approve(by_role, Approver("apikey:1", "PUBLISHER"))
    assert may_approve(by_role, Approver("apikey:2", "ADMIN"))
    assert not may_approve(by_role, Approver("apikey:3", "MANAGER"))
    assert may_approve(named, Approver("user:x", "MANAGER", user_id=7))
    assert not may_approve(named, Approver("user:y", "ADMIN", user_id=8))


def test_k_of_n_counts_distinct_eligible_approvers_for_every_policy() -> None:
    two = Policy(1, "two publishers", approver_roles=("PUBLISHER",), required_approvals=2)
    named = Policy(2, "carol", approver_user_ids=(3,))
    pub_a, pub_b = Approver("apikey:1", "PUBLISHER"), Approver("apikey:2", "PUBLISHER")
    carol = Approver("user:carol", "MANAGER", user_id=3)
    assert not approved([two], [pub_a])
    assert not approved([two], [pub_a, pub_a])  # the same approver twice counts once
    assert approved([two], [pub_a, pub_b])
    assert not approved([two, named], [pub_a, pub_b])  # every matched policy must be satisfied
    assert approved([two, named], [pub_a, pub_b, carol])
    assert not approved([two], [pub_a, carol])  # carol is not a PUBLISHER


def test_policy_input_problems() -> None:
    assert validate_policy(Policy(0, "ok", approver_roles=("PUBLISHER",))) == []
    problems = validate_policy(
        Policy(0, "", channels=("FAX",), approver_roles=("VIEWER",), required_approvals=0, audience_above=-1)
    )
    assert {(p.field, p.code) for p in problems} == {
        ("input.name", "INVALID"),
        ("input.channels", "INVALID"),
        ("input.approverRoles", "INVALID"),
        ("input.requiredApprovals", "OUT_OF_RANGE"),
        ("input.audienceAbove", "OUT_OF_RANGE"),
    }
    assert [p.code for p in validate_policy(Policy(0, "nobody"))] == ["REQUIRED"]
    too_many = validate_policy(Policy(0, "two of one", approver_user_ids=(1,), required_approvals=2))
    assert [(p.field, p.code) for p in too_many] == [("input.requiredApprovals", "OUT_OF_RANGE")]


@pytest.mark.parametrize(
    ("claims", "claim", "expected"),
    [
        ({"groups": ["prod:ADMIN", "dev:VIEWER", "unrelated"]}, "groups", {"prod": "ADMIN", "dev": "VIEWER"}),
        ({"groups": ["prod:VIEWER", "prod:PUBLISHER"]}, "groups", {"prod": "PUBLISHER"}),  # the higher wins
        ({"groups": ["prod:OWNER", ":ADMIN", "prod"]}, "groups", {}),
        ({"realm_access": {"roles": ["a-b:MANAGER"]}}, "realm_access.roles", {"a-b": "MANAGER"}),
        ({"scope": "prod:VIEWER other"}, "scope", {"prod": "VIEWER"}),  # space-separated string
        ({"groups": "nope"}, "missing", {}),
        ({"groups": [1, None, "x:ADMIN"]}, "groups", {"x": "ADMIN"}),
    ],
)
def test_the_roles_claim(claims: dict, claim: str, expected: dict[str, str]) -> None:
    assert roles_by_sandbox(claim_values(claims, claim)) == expected


def test_higher_role() -> None:
    assert higher_role(None, "VIEWER") == "VIEWER"
    assert higher_role("ADMIN", "MANAGER") == "ADMIN"
    assert higher_role("MANAGER", "PUBLISHER") == "PUBLISHER"
    assert higher_role(None, None) is None
