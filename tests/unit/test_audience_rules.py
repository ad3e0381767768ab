"""Pure audience rules: rule validation, cycles, identity normalisation, attribute merge."""

from __future__ import annotations

import pytest

from models.audience.segment_rules import (
    MAX_EXPANDED_CONDITIONS,
    SegmentRef,
    expanded_condition_count,
    find_cycle,
    validate_rule,
)
from models.audience.values import ValueProblem, check_attributes, merge_attributes, normalize_identity
from models.tenancy.identity import IdentityType


def cond(path: str, operator: str, value: object = None) -> dict:
    return {"condition": {"path": path, "operator": operator, "value": value}}


def codes(rule: object) -> list[tuple[str, str]]:
    return [(p.field, p.code) for p in validate_rule(rule)]


def test_unknown_operator_and_bad_nodes() -> None:
    assert codes(cond("a", "LIKE", "x")) == [("rule.condition.operator", "UNKNOWN_OPERATOR")]
    assert codes({"all": [], "any": []}) == [("rule", "INVALID_NODE")]
    assert codes({"some": []}) == [("rule", "INVALID_NODE")]
    assert codes({"all": "x"}) == [("rule.all", "INVALID_NODE")]


def test_depth_and_condition_limits_hold_at_the_boundary() -> None:
    rule: dict = cond("a", "EXISTS")
    for _ in range(9):
        rule = {"not": rule}
    assert codes(rule) == []  # 10 levels
    assert [c for _, c in codes({"not": rule})] == ["TOO_DEEP"]
    assert codes({"all": [cond("a", "EQ", 1)] * 200}) == []
    assert codes({"all": [cond("a", "EQ", 1)] * 201}) == [("rule", "TOO_MANY_CONDITIONS")]


def test_cycles_through_in_segment() -> None:
    segments = {2: SegmentRef("RULE", {"inSegment": 3}), 3: SegmentRef("RULE", {"any": [{"inSegment": 1}]})}
    assert find_cycle(1, {"inSegment": 2}, segments) == [1, 2, 3, 1]
    assert find_cycle(1, {"inSegment": 1}, segments) == [1, 1]
    assert find_cycle(4, {"inSegment": 2}, {2: SegmentRef("STATIC")}) is None
    assert find_cycle(None, {"inSegment": 2}, segments) is None


def test_expansion_through_shared_segments_is_counted() -> None:
    # Each level names the one below twice: inlining doubles per level.
    segments = {1: SegmentRef("RULE", {"all": [cond("a", "EQ", 1)] * 100})}
    for level in range(2, 5):
        segments[level] = SegmentRef("RULE", {"any": [{"inSegment": level - 1}, {"inSegment": level - 1}]})
    assert expanded_condition_count({"inSegment": 4}, segments) == 800
    assert expanded_condition_count({"all": [{"inSegment": 4}] * 2}, segments) > MAX_EXPANDED_CONDITIONS


@pytest.mark.parametrize(
    ("kind", "raw", "stored"),
    [
        (IdentityType.EMAIL, " John.Doe@Example.COM ", "john.doe@example.com"),
        (IdentityType.PHONE, "+44 20 7946 0958", "+442079460958"),
        (IdentityType.PHONE, "+1 (202) 555-0143", "+12025550143"),
        (IdentityType.CROSS_DEVICE, " CRM-1 ", "CRM-1"),
    ],
)
def test_identity_normalisation(kind: IdentityType, raw: str, stored: str) -> None:
    assert normalize_identity(kind, raw) == stored


@pytest.mark.parametrize(
    ("kind", "raw", "code"),
    [
        (IdentityType.EMAIL, "no-at-sign", "INVALID_EMAIL"),
        (IdentityType.EMAIL, "a@b@example.com", "INVALID_EMAIL"),
        (IdentityType.PHONE, "0612345678", "INVALID_PHONE"),  # no country code
        (IdentityType.PHONE, "+1 555", "INVALID_PHONE"),
        (IdentityType.COOKIE, "", "EMPTY"),
        (IdentityType.COOKIE, "a\x00b", "INVALID_CHARACTERS"),
        (IdentityType.COOKIE, "x" * 513, "TOO_LONG"),
    ],
)
def test_identity_refusals(kind: IdentityType, raw: str, code: str) -> None:
    with pytest.raises(ValueProblem) as refused:
        normalize_identity(kind, raw)
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0612345678", "a phone number needs its country code, in E.164 form such as +33612345678"),
        ("hello", "not a phone number"),
        ("+1 555", "not a valid phone number"),
        ("+33 6" + "1" * 300, "too long to be a phone number"),
    ],
)
def test_phone_refusals_speak_plainly(raw: str, message: str) -> None:
    with pytest.raises(ValueProblem) as refused:
        normalize_identity(IdentityType.PHONE, raw)
    assert refused.value.message == message


def test_attribute_checks_and_merge() -> None:
    with pytest.raises(ValueProblem, match="NOT_AN_OBJECT"):
        check_attributes([1])
    with pytest.raises(ValueProblem, match="INVALID_NUMBER"):
        check_attributes({"x": float("nan")})
    assert merge_attributes({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": None, "e": 3}, "d": [1]}) == {
        "a": {"c": 2, "e": 3},
        "d": [1],
    }
