"""The hand-built message bytes parse back, with the stdlib's strict policy, into what was rendered."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy

import pytest

from jobs.channels.base import EmailContent
from jobs.channels.email_message import EmailComposer, EmailSender, InvalidAddressError, ascii_address, message_id

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]


def lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def test_non_ascii_long_content_round_trips():
    composer = EmailComposer(EmailSender("news@shop.example", from_name="Bäckerei Müller, Köln"))
    subject = "Grüße aus Köln — ein sehr langer Betreff, der über eine Zeile hinaus geht und gefaltet werden muss"
    text = "Hallo Jürgen,\n" + "x" * 300 + "\n\n.leading dot\ntrailing space   \n=3D literal\n"
    html = "<p>" + "Grüße " * 80 + "</p>\r\n<p>=_herald_alt looks like a boundary</p>"
    composed = composer.compose(EmailContent(subject, html, text), "juergen@example.com", "run-7:profile/9", now=NOW)

    assert all(len(line) <= 78 for line in composed.data.split(b"\r\n"))
    assert b"\n" not in composed.data.replace(b"\r\n", b"")  # CRLF only
    assert composed.data.isascii()
    message = parse(composed.data)
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == "Bäckerei Müller, Köln"
    assert message["Date"].datetime == NOW
    assert message["Message-ID"] == composed.message_id == "<run-7=3Aprofile/9@shop.example>"
    assert lf(message.get_body(("plain",)).get_content()) == text
    assert lf(message.get_body(("html",)).get_content()) == lf(html)
    assert not message.defects and not any(part.defects for part in message.walk())


def test_single_part_messages():
    composer = EmailComposer(EmailSender("a@shop.example"))
    html_only = parse(composer.compose(EmailContent("s", "<b>hi</b>", None), "b@example.com", "k").data)
    assert html_only.get_content_type() == "text/html"
    assert html_only.get_content().strip() == "<b>hi</b>"
    text_only = parse(composer.compose(EmailContent("s", None, "hi"), "b@example.com", "k").data)
    assert text_only.get_content_type() == "text/plain"
    with pytest.raises(ValueError, match="HTML or a text part"):
        composer.compose(EmailContent("s", None, None), "b@example.com", "k")


def test_header_injection_is_neutralised():
    composer = EmailComposer(EmailSender("a@shop.example", from_name="Evil\r\nBcc: victim@x.example"))
    composed = composer.compose(
        EmailContent("hi\r\nBcc: victim@x.example", None, "x", unsubscribe_url="https://u.example/\r\nX: y"),
        "b@example.com",
        "k",
    )
    message = parse(composed.data)
    assert message["Bcc"] is None and message["X"] is None
    assert message["Subject"] == "hi Bcc: victim@x.example"
    with pytest.raises(InvalidAddressError):
        composer.compose(EmailContent("s", None, "x"), "b@example.com\r\nRCPT TO:<c@x.example>", "k")


def test_list_unsubscribe_only_for_marketing_and_post_only_with_a_url():
    marketing = EmailComposer(EmailSender("a@shop.example", unsubscribe_mailto="u@shop.example"))
    mailto_only = parse(marketing.compose(EmailContent("s", None, "x"), "b@example.com", "k 1").data)
    assert mailto_only["List-Unsubscribe"] == "<mailto:u@shop.example?subject=unsubscribe%20k%201>"
    assert mailto_only["List-Unsubscribe-Post"] is None

    url = "https://shop.example/unsubscribe/" + "t" * 900
    long_url = marketing.compose(EmailContent("s", None, "x", unsubscribe_url=url), "b@example.com", "k").data
    assert max(len(line) for line in long_url.split(b"\r\n")) < 998
    assert parse(long_url)["List-Unsubscribe"].startswith(f"<{url}>, <mailto:")

    for sender in (
        EmailSender("a@shop.example", marketing=False, unsubscribe_mailto="u@shop.example"),
        EmailSender("a@shop.example", list_unsubscribe=False, unsubscribe_mailto="u@shop.example"),
    ):
        composed = EmailComposer(sender).compose(EmailContent("s", None, "x", unsubscribe_url=url), "b@x.example", "k")
        assert parse(composed.data)["List-Unsubscribe"] is None


def test_extra_headers_and_envelope():
    composer = EmailComposer(
        EmailSender("a@shop.example", error_address="bounces@shop.example", bcc_address="copy@shop.example")
    )
    composed = composer.compose(
        EmailContent("s", None, "x", headers=(("X-Campaign", "spring sale"),)), "b@example.com", "k"
    )
    assert composed.envelope_from == "bounces@shop.example"
    assert composed.recipients == ("b@example.com", "copy@shop.example")
    assert parse(composed.data)["X-Campaign"] == "spring sale"
    for name in ("Message-ID", "bad name", "From"):
        with pytest.raises(ValueError):
            composer.compose(EmailContent("s", None, "x", headers=((name, "v"),)), "b@example.com", "k")


def test_addresses_and_message_ids():
    assert ascii_address(" a@bücher.example ") == "a@xn--bcher-kva.example"
    for bad in ("no-at-sign", "@example.com", "a@", "jö@example.com", "a b@example.com"):
        with pytest.raises(InvalidAddressError):
            ascii_address(bad)
    assert message_id("abc-123_X", "d.example") == "<abc-123_X@d.example>"
    # Distinct keys stay distinct after escaping (the escape character itself is escaped).
    assert message_id("a=2E", "d") != message_id("a.", "d")
    assert message_id("ü", "d") == "<=C3=BC@d>"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("plain ascii\nsecond line\n", "7bit"),
        ("ascii but\n--=_herald_alt\nlooks like our boundary", "base64"),
        ("one very long line " * 60, "base64"),
        ("caf\u00e9\n", "base64"),
    ],
)
def test_part_encoding_is_chosen_by_content(text, encoding):
    composer = EmailComposer(EmailSender("a@shop.example"))
    message = parse(composer.compose(EmailContent("s", "<p>x</p>", text), "b@example.com", "k").data)
    plain = message.get_body(("plain",))
    assert plain["Content-Transfer-Encoding"] == encoding
    assert lf(plain.get_content()) == text
    assert lf(message.get_body(("html",)).get_content()) == "<p>x</p>"
    assert len(list(message.iter_parts())) == 2
