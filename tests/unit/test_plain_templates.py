"""The plain-template fast path renders exactly what Liquid renders, or hands the case back to Liquid."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.campaigns.templates import CompiledTemplate, TemplateRenderError, parse_template, render


def compiled(source: str) -> CompiledTemplate:
    result = parse_template(source)
    assert isinstance(result, CompiledTemplate), result
    return result


def liquid_only(template: CompiledTemplate) -> CompiledTemplate:
    return dataclasses.replace(template, plain=None)


def outcome(template: CompiledTemplate, context: dict[str, Any]) -> tuple[str, str]:
    try:
        return "ok", render(template, context)
    except TemplateRenderError as exc:
        return "error", str(exc)


@pytest.mark.parametrize(
    "source",
    [
        "Hello {{ profile.person.name.firstName }}, {{ profile.loyalty.points }} points",
        "{{- profile.name -}}  and  {{ profile.name -}}\n\n x",
        '<a href="https://shop.example/?n={{ profile.name }}">{{ context.unsubscribeUrl }}</a>',
        "{{ profile['name'] }} {{ campaign.name }} {{ campaign.id }}",
    ],
)
def test_plain_templates_take_the_fast_path(source: str) -> None:
    assert compiled(source).plain is not None


@pytest.mark.parametrize(
    "source",
    [
        "{{ profile.name | upcase }}",
        "{% if profile.name %}x{% endif %}",
        "{{ profile.tags.size }}",
        "{{ profile.tags.first }}",
        "{{ profile[context.key] }}",
        "{{ profile.tags[0] }}",
        "{{ 'literal' }}",
    ],
)
def test_other_templates_stay_with_liquid(source: str) -> None:
    assert compiled(source).plain is None


SOURCES = [
    "Hello {{ profile.name }}!\nYour {{ profile.loyalty.points }} points, {{ campaign.name }} ({{ campaign.id }})",
    "{{- profile.name -}} \r\n {{ profile.loyalty.points -}}\r{{ context.unsubscribeUrl }}",
    "{{ profile.name }}{{ profile.missing }}",
    "{{ profile.loyalty }}",
]

values = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.sampled_from(["points", "size"]), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(name=values, points=values, unsubscribe=values, loyalty_is_dict=st.booleans())
def test_fast_path_equals_liquid(name: Any, points: Any, unsubscribe: Any, loyalty_is_dict: bool) -> None:
    context = {
        "profile": {"name": name, "loyalty": {"points": points} if loyalty_is_dict else points},
        "campaign": {"name": "Spring", "id": 7},
        "context": {"unsubscribeUrl": unsubscribe},
    }
    for source in SOURCES:
        template = compiled(source)
        assert template.plain is not None
        assert outcome(template, context) == outcome(liquid_only(template), context), source


def test_output_past_liquids_limit_is_liquids_error() -> None:
    template = compiled("{{ profile.name }}{{ profile.name }}")
    context = {"profile": {"name": "é" * 300_000}}  # 600,000 characters, 1,200,000 UTF-8 bytes
    assert outcome(template, context)[0] == "error"
    assert outcome(template, context) == outcome(liquid_only(template), context)
