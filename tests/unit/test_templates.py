"""Personalization templates: parsing with positions, references, rendering and the resource bounds."""

import time

import pytest

from models.campaigns.templates import (
    MAX_RANGE_SIZE,
    MAX_TEMPLATE_CHARS,
    CompiledTemplate,
    TemplateProblem,
    TemplateRenderError,
    parse_template,
    profile_paths,
    references,
    render,
    unknown_roots,
)

CONTEXT = {
    "profile": {
        "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
        "loyalty": {"points": 1200},
        "orders": [{"sku": "A-1", "price": 10}, {"sku": "B-2", "price": 25}],
    },
    "campaign": {"name": "Spring sale"},
    "context": {"unsubscribeUrl": "https://herald.test/u/abc"},
}


def compiled(source: str) -> CompiledTemplate:
    result = parse_template(source, "content.email.html")
    assert isinstance(result, CompiledTemplate), result
    return result


def problem(source: str) -> TemplateProblem:
    result = parse_template(source, "content.email.html")
    assert isinstance(result, TemplateProblem), f"{source!r} parsed"
    return result


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{profile.person.name.firstName}}!", "Hi Ada!"),
        ("{{ profile.person.name.firstName | upcase }} {{ campaign.name }}", "ADA Spring sale"),
        ("{% for o in profile.orders %}{{ o.sku }}={{ o.price | times: 2 }};{% endfor %}", "A-1=20;B-2=50;"),
        ("{% if profile.loyalty.points > 1000 %}gold{% else %}basic{% endif %}", "gold"),
        ("{{ profile.nickname | default: 'friend' }}", "friend"),
        ("{% if profile.nickname %}x{% else %}no nickname{% endif %}", "no nickname"),
        ("{% if profile.nickname == nil %}nil{% endif %}", "nil"),
        ("{% assign n = profile.orders | size %}{% for i in (1..n) %}{{ i }}{% endfor %}", "12"),
        ("{{ profile.orders | map: 'sku' | join: ', ' }}", "A-1, B-2"),
        ('<a href="{{ context.unsubscribeUrl }}">stop</a>', '<a href="https://herald.test/u/abc">stop</a>'),
    ],
)
def test_renders(source: str, expected: str) -> None:
    assert render(compiled(source), CONTEXT) == expected


def test_compile_once_render_many_profiles() -> None:
    template = compiled("Hello {{ profile.person.name.firstName | default: 'there' }}")
    outputs = [render(template, {**CONTEXT, "profile": {"person": {"name": {"firstName": n}}}}) for n in "ABC"]
    assert outputs == ["Hello A", "Hello B", "Hello C"]
    assert render(template, {**CONTEXT, "profile": {}}) == "Hello there"


@pytest.mark.parametrize(
    ("source", "line", "column", "fragment"),
    [
        ("{{ 'abc }}", 1, 4, "unexpected"),
        ("line one\n  {% endif %}", 2, 6, "unexpected tag 'endif'"),
        ("Hi\n{{ profile.name | }}", 2, 4, "expected"),
        ("Hi\n\n{% for x in %}\nmore", 3, 15, "expected"),  # the tag's error points just past it
        ("abc\n{% if profile.x %}", 2, 19, "end of template"),  # no token: points at the end
        ("{% bogus %}", 1, 4, "unexpected tag 'bogus'"),
        ("{{ profile.name | nofilter }}", 1, 19, "unknown filter 'nofilter'"),
        ("{% include 'header' %}", 1, 4, "unexpected tag 'include'"),
        ("{% render 'header' %}", 1, 4, "unexpected tag 'render'"),
        ("{{ a }", 1, 1, "expected '}}'"),
    ],
)
def test_syntax_problems_carry_line_and_column(source: str, line: int, column: int, fragment: str) -> None:
    found = problem(source)
    assert (found.line, found.column) == (line, column)
    assert fragment in found.message


def test_paths_list_every_global_reference_with_position() -> None:
    template = compiled(
        "Hi {{ profile.person.name.firstName }}\n"
        "{% for o in profile.orders %}{{ o.sku }}{% endfor %}{% assign x = 1 %}{{ x }}\n"
        "{{ campaign['name'] }} {{ user.email }} {{ profile[context.key] }}"
    )
    assert [(p.dotted, p.line, p.column) for p in template.paths] == [
        ("profile.person.name.firstName", 1, 7),
        ("profile.orders", 2, 13),
        ("campaign.name", 3, 4),
        ("user.email", 3, 27),
        ("profile", 3, 44),  # the dynamic segment is cut off
        ("context.key", 3, 52),
    ]
    assert [p.dotted for p in unknown_roots(template)] == ["user.email"]
    assert [p.segments for p in profile_paths(template)] == [("person", "name", "firstName"), ("orders",)]
    assert references(template, "context.key") and not references(template, "context.unsubscribeUrl")


def test_missing_values_fail_the_render_with_a_position() -> None:
    with pytest.raises(TemplateRenderError, match=r"profile.nickname is undefined \(line 2, column 4\)"):
        render(compiled("Hi\n{{ profile.nickname }}"), CONTEXT)
    with pytest.raises(TemplateRenderError, match="undefined"):
        render(compiled("{{ profile.nickname | upcase }}"), CONTEXT)


def test_object_internals_are_not_reachable() -> None:
    source = "{{ profile.__class__ | default: 'none' }} {{ campaign.name.upper | default: 'none' }}"
    assert render(compiled(source), CONTEXT) == "none none"


def test_template_size_is_capped() -> None:
    assert "longer than" in problem("x" * (MAX_TEMPLATE_CHARS + 1)).message
    assert isinstance(parse_template("x" * MAX_TEMPLATE_CHARS), CompiledTemplate)


def test_literal_ranges_are_bounded_at_parse_time() -> None:
    found = problem("ok\n{{ (1..100000000) | join: ',' | size }}")
    assert (found.line, found.column) == (2, 4) and "range" in found.message
    assert isinstance(parse_template(f"{{{{ (1..{MAX_RANGE_SIZE}) | size }}}}"), CompiledTemplate)


def test_ranges_from_data_are_bounded_at_render_time() -> None:
    template = compiled("{{ (1..profile.n) | join: ',' | size }}")
    assert render(template, {"profile": {"n": 10}}) == "20"
    started = time.monotonic()
    with pytest.raises(TemplateRenderError, match="range"):
        render(template, {"profile": {"n": 100_000_000}})
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{% for a in (1..1000) %}{% for b in (1..1000) %}x{% endfor %}{% endfor %}", "loop iteration limit"),
        ("{% for a in (1..1000) %}{{ 'x' | append: '" + "y" * 2000 + "' }}{% endfor %}", "limit"),
        (
            "{{ 'xxxxxxxxxx'" + " | replace: 'x', 'xxxxxxxxxx'" * 8 + " | size }}",
            "would produce more than",
        ),
        ("{% assign s = 'a,b,c,d,e,f,g,h,i,j' | split: ',' %}{{ s | join: '" + "z" * 200_000 + "' }}", "characters"),
        ("{% assign x = 3 %}{% for i in (1..50) %}{% assign x = x | times: x %}{% endfor %}{{ x }}", "too large"),
        (
            "{% assign s = 'x' %}{% for i in (1..100) %}{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}",
            "limit",
        ),
    ],
)
def test_runaway_templates_stop_quickly(source: str, fragment: str) -> None:
    template = compiled(source)
    started = time.monotonic()
    with pytest.raises(TemplateRenderError, match=fragment):
        render(template, CONTEXT)
    assert time.monotonic() - started < 2


def test_render_time_is_bounded() -> None:
    # Each filter call is cheap, but 10,000 iterations of costly ones exceed a tiny deadline.
    body = "{% assign t = big | split: ',' | sort | join: ',' %}"
    template = compiled("{% for i in (1..1000) %}{% for j in (1..10) %}" + body + "{% endfor %}{% endfor %}")
    big = ",".join(str(n) for n in range(5_000))
    started = time.monotonic()
    with pytest.raises(TemplateRenderError, match="too long"):
        render(template, {"big": big}, max_seconds=0.05)
    assert time.monotonic() - started < 1


def test_a_template_is_parsed_once_per_process_and_renders_alike_from_the_cache() -> None:
    """A trigger campaign's sender builds its renderer at every wake-up: the same parts are not parsed again, and
    the kept template renders each profile as a fresh parse does. Sources over the size bound are not kept."""
    from models.campaigns.templates import PARSED_CACHE_MAX_CHARS, _parse_cached

    source = "Hello {{ profile.person.name.firstName | default: 'you' }} ({{ context.trigger.order.id }})"
    before = _parse_cached.cache_info()
    first, again = parse_template(source, "content.email.subject"), parse_template(source, "content.email.subject")
    after = _parse_cached.cache_info()
    assert first is again
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    assert isinstance(first, CompiledTemplate)
    for name in ("Ada", "Grace"):
        values = {"profile": {"person": {"name": {"firstName": name}}}, "context": {"trigger": {"order": {"id": 7}}}}
        fresh = parse_template(source + " ", "content.email.subject")  # another source: parsed anew
        assert isinstance(fresh, CompiledTemplate)
        assert render(again, values) + " " == render(fresh, values) == f"Hello {name} (7) "
    big = "x" * (PARSED_CACHE_MAX_CHARS + 1)
    assert parse_template(big) is not parse_template(big)
