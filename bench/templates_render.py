"""Renders per second of a compiled personalization template, guarded vs plain python-liquid.

Run: python -m bench.templates_render  (prints the figures and their ratio; no assertion).
"""

from __future__ import annotations

import time

from liquid import Environment

from models.campaigns.templates import CompiledTemplate, parse_template, render

SOURCE = (
    "<html><body><h1>Hello {{ profile.person.name.firstName | default: 'there' }}</h1>\n"
    + "<p>"
    + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 30
    + "</p>\n"
    + "<p>You have {{ profile.loyalty.points }} points, {{ profile.person.name.lastName }}.</p>\n"
    + "<ul>{% for o in profile.orders %}<li>{{ o.sku }}: {{ o.price | times: 1.2 | round: 2 }}</li>{% endfor %}</ul>\n"
    + '<p>{{ campaign.name }}</p><a href="{{ context.unsubscribeUrl }}">Unsubscribe</a></body></html>'
)
CONTEXT = {
    "profile": {
        "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
        "loyalty": {"points": 1200},
        "orders": [{"sku": f"SKU-{i}", "price": 10 + i} for i in range(5)],
    },
    "campaign": {"name": "Spring sale"},
    "context": {"unsubscribeUrl": "https://herald.test/u/abc"},
}


def rate(fn, seconds: float = 2.0) -> float:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            fn()
        count += 100
    return count / elapsed


def main() -> None:
    compiled = parse_template(SOURCE, "content.email.html")
    assert isinstance(compiled, CompiledTemplate), compiled
    plain = Environment().from_string(SOURCE)
    assert render(compiled, CONTEXT) == plain.render(**CONTEXT)
    guarded_rate = rate(lambda: render(compiled, CONTEXT))
    plain_rate = rate(lambda: plain.render(**CONTEXT))
    parse_rate = rate(lambda: parse_template(SOURCE, "f"), seconds=1.0)
    print(f"template {len(SOURCE)} chars; parse+analyse {parse_rate:,.0f}/s")
    print(f"guarded render {guarded_rate:,.0f}/s; plain python-liquid {plain_rate:,.0f}/s")
    print(f"ratio {guarded_rate / plain_rate:.2f}")


if __name__ == "__main__":
    main()
