"""The fast path of normalize_email gives exactly what email-validator gives (or refuses what it refuses)."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from models.audience.values import ValueProblem, _validate_email, normalize_email

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
DOMAINS = [
    "example.com",
    "Example.COM",
    "b.co",
    "x.c",
    "123.com",
    "b.123",
    "localhost",
    "a.local",
    "x.test",
    "xn--abc.com",
    "xn--bcher-kva.de",
    "x-.com",
    "-x.com",
    "a..b.com",
    "sub.example.org",
    "a" * 64 + ".com",
    "a" * 63 + ".com",
    ("a" * 60 + ".") * 4 + "com",
    "exa_mple.com",
    "[127.0.0.1]",
    "ex ample.com",
    "é.fr",
    "example.invalid",
    "ex--ample.com",
    "ONION.onion",
    "a.b.c.d.e.f",
]


def outcome(function, value: str) -> str:
    try:
        return function(value)
    except ValueProblem as problem:
        return f"refused {problem.code}"


@settings(max_examples=400, deadline=None)
@given(
    local=st.text(alphabet=ATEXT + '."@ é', min_size=0, max_size=70),
    domain=st.sampled_from(DOMAINS),
)
def test_fast_path_agrees_with_email_validator(local: str, domain: str) -> None:
    value = f"{local}@{domain}"
    assert outcome(normalize_email, value) == outcome(_validate_email, value)


def test_examples() -> None:
    assert normalize_email("Ann.Smith@Example.COM") == "ann.smith@example.com"
    for bad in ("a..b@example.com", ".a@example.com", "a@localhost", "a@x.test", "a@b@c", "a@" + "b" * 250 + ".com"):
        assert outcome(normalize_email, bad).startswith("refused INVALID_EMAIL")
