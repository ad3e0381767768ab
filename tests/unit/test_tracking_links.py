"""Tracking tokens and link rewriting: pure functions."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.webhooks import twilio_signature
from models.reporting.link_tracking import (
    _HREF,
    _TEXT_URL,
    _href_value,
    _split_text_url,
    add_open_pixel,
    find_html_links,
    html_links,
    is_trackable,
    rewrite_html,
    rewrite_text,
    text_links,
)
from models.reporting.tracking_tokens import TokenPurpose, TokenSigner

OWN = "https://herald.example/t/"
SIGNER = TokenSigner("a-secret-key-long-enough-for-tests-0123456789")


def test_tokens_round_trip_and_name_their_purpose() -> None:
    click = SIGNER.sign(TokenPurpose.CLICK, 123456789, 42)
    assert SIGNER.verify(TokenPurpose.CLICK, click).delivery_id == 123456789
    assert SIGNER.verify(TokenPurpose.CLICK, click).link_id == 42
    opened = SIGNER.sign(TokenPurpose.OPEN, 7)
    assert SIGNER.verify(TokenPurpose.OPEN, opened).delivery_id == 7
    # A token is good for its own purpose only.
    assert SIGNER.verify(TokenPurpose.UNSUBSCRIBE, opened) is None
    assert SIGNER.verify(TokenPurpose.OPEN, click) is None
    assert len(click) <= 40 and all(c.isalnum() or c in "._-" for c in click)


def _altered(token: str) -> list[str]:
    delivery, *rest = token.split(".")
    variants = [
        token[:-1],  # truncated
        token + "A",
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # tag changed
        f"{int(delivery, 36) + 1:x}." + ".".join(rest),  # another delivery, same tag
        "0" + token,  # a second spelling of the same id
        token.upper(),
        "",
    ]
    if len(rest) == 2:
        variants.append(f"{delivery}.{'2' if rest[0] != '2' else '3'}.{rest[1]}")  # another link, same tag
    return variants


@pytest.mark.parametrize("purpose", list(TokenPurpose))
def test_forged_altered_or_truncated_tokens_are_refused(purpose: TokenPurpose) -> None:
    token = SIGNER.sign(purpose, 99, 5 if purpose is TokenPurpose.CLICK else None)
    for bad in _altered(token):
        assert SIGNER.verify(purpose, bad) is None, bad
    other = TokenSigner("another-secret-key-long-enough-0123456789")
    assert other.verify(purpose, token) is None
    assert "secret" not in repr(SIGNER)


def test_only_http_links_of_anchor_elements_are_rewritten() -> None:
    body = (
        "<p><a href=\"https://shop.example/a?x=1&amp;y=2\">A</a> <A HREF='http://b.example/'>B</A>"
        '<a href="mailto:x@example.com">m</a><a href="#top">t</a><a href="tel:+1555">p</a>'
        f'<a href="{OWN}u/abc">unsubscribe</a><link href="https://cdn.example/s.css">'
        '<img src="https://img.example/x.png"><a class="b" href = "https://c.example/">C</a></p>'
    )
    assert html_links(body, OWN) == ["https://shop.example/a?x=1&y=2", "http://b.example/", "https://c.example/"]
    ids = {"https://shop.example/a?x=1&y=2": "L1", "http://b.example/": "L2", "https://c.example/": "L3"}
    out = rewrite_html(body, OWN, lambda url: f"{OWN}c/{ids[url]}")
    assert f'<a href="{OWN}c/L1">A</a>' in out
    assert f'<A HREF="{OWN}c/L2">B</A>' in out
    assert f'<a class="b" href = "{OWN}c/L3">C</a>' in out
    for kept in ("mailto:x@example.com", "#top", "tel:+1555", f"{OWN}u/abc", "https://cdn.example/s.css"):
        assert kept in out
    # Returning None leaves a link alone.
    assert rewrite_html(body, OWN, lambda url: None) == body


def test_text_links_keep_the_sentence_punctuation() -> None:
    text = "See https://a.example/x. Or (https://b.example/y), https://en.example/wiki/A_(b) and " + OWN + "u/z"
    assert text_links(text, OWN) == ["https://a.example/x", "https://b.example/y", "https://en.example/wiki/A_(b)"]
    out = rewrite_text(text, OWN, lambda url: "T[" + url[-1] + "]")
    assert out == "See T[x]. Or (T[y]), T[)] and " + OWN + "u/z"


def test_open_pixel_goes_before_the_end_of_body() -> None:
    assert add_open_pixel("<html><body><p>x</p></BODY></html>", "P").startswith('<html><body><p>x</p><img src="P"')
    assert add_open_pixel("<p>x</p>", "P").startswith('<p>x</p><img src="P"')


def test_twilio_signature_matches_the_documented_example() -> None:
    # The worked example of Twilio's signature validation snippets (twilio-samples/api-snippets).
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675310"),
        ("Digits", "1234"),
        ("From", "+14158675310"),
        ("To", "+18005551212"),
    ]
    assert twilio_signature("12345", url, params) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


def test_public_url_is_an_http_origin_without_trailing_slash() -> None:
    from pydantic import ValidationError

    from api.settings import Settings

    assert Settings(public_url="https://mail.example.com/").public_url == "https://mail.example.com"
    assert Settings(public_url="https://example.com/herald").public_url == "https://example.com/herald"
    for bad in ("ftp://example.com", "example.com", "https://example.com/?x=1", "https://example.com/#f"):
        with pytest.raises(ValidationError):
            Settings(public_url=bad)


# The rewriting as it was before links were found in one scan (re.sub with a callback per match): the single-scan
# rewriting must give the same text for any input.
def _sub_html(body: str, own_prefix: str, tracked_url: Callable[[str], str | None]) -> str:
    def replace(match: re.Match[str]) -> str:
        url = _href_value(match)
        if not is_trackable(url, own_prefix):
            return match.group(0)
        target = tracked_url(url)
        return match.group(0) if target is None else f'{match.group(1)}"{target}"'

    return _HREF.sub(replace, body)


def _sub_text(text: str, own_prefix: str, tracked_url: Callable[[str], str | None]) -> str:
    def replace(match: re.Match[str]) -> str:
        url, tail = _split_text_url(match.group(0))
        if not is_trackable(url, own_prefix):
            return match.group(0)
        target = tracked_url(url)
        return match.group(0) if target is None else target + tail

    return _TEXT_URL.sub(replace, text)


FRAGMENTS = [
    '<a href="https://a.example/x">', "<a href='http://b.example/(y)'>", '<area shape="rect" href="https://c.example/?a=1&amp;b=2">',
    f'<a href="{OWN}u/1">', '<a href="mailto:x@example.com">', "</a>", " https://d.example/z.", " (https://e.example/w_(v))",
    "text ", "é ", "\n", '<A HREF = "https://f.example/">', "<a title=x href=\"https://a.example/x\">", "<p>",
]  # fmt: skip


_RUN_MEMO: dict[str, str | None] = {}


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from(FRAGMENTS), max_size=12), skip=st.sets(st.sampled_from(["a", "x", "y", "z"])))
def test_single_scan_rewriting_equals_the_substitution(parts: list[str], skip: set[str]) -> None:
    body = "".join(parts)

    def tracked(url: str) -> str | None:
        return None if url[-1] in skip else f"{OWN}c/{len(url)}"

    assert rewrite_html(body, OWN, tracked) == _sub_html(body, OWN, tracked)
    # With a memo shared by every example, as a run's tracker shares one across its messages.
    assert find_html_links(body, OWN, _RUN_MEMO).rewrite(tracked) == _sub_html(body, OWN, tracked)
    assert rewrite_text(body, OWN, tracked) == _sub_text(body, OWN, tracked)
