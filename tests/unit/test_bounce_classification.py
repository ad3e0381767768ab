"""SMTP refusal → verdict: one row per enhanced code of the table, then reply text and basic codes."""

from __future__ import annotations

import pytest

from jobs.channels.bounces import ENHANCED_CODES, SmtpVerdict, classify_smtp_reply, relay_id
from models.campaigns.run_rules import pause_reason_of

HARD, FULL, SENDER, AUTH, MESSAGE, REMOTE, RETRY = (
    SmtpVerdict.HARD_BOUNCE,
    SmtpVerdict.MAILBOX_FULL,
    SmtpVerdict.SENDER,
    SmtpVerdict.AUTH,
    SmtpVerdict.MESSAGE,
    SmtpVerdict.REMOTE,
    SmtpVerdict.RETRY,
)

# (reply code, reply text as a server sends it, expected verdict): one row per enhanced code.
ENHANCED_ROWS = [
    (550, "5.1.0 Address rejected", HARD),
    (550, "5.1.1 The email account that you tried to reach does not exist", HARD),
    (550, "5.1.2 Bad destination system address", HARD),
    (553, "5.1.3 Bad recipient address syntax", HARD),
    (550, "5.1.4 Destination mailbox address ambiguous", HARD),
    (551, "5.1.6 Mailbox moved, no forwarding address", HARD),
    (553, "5.1.7 Bad sender's mailbox address syntax", SENDER),
    (553, "5.1.8 Sender domain does not resolve", SENDER),
    (556, "5.1.10 Recipient address has null MX", HARD),
    (550, "5.2.0 Mailbox unavailable", HARD),
    (550, "5.2.1 The email account that you tried to reach is disabled", HARD),
    (552, "5.2.2 Mailbox full", FULL),
    (552, "5.2.3 Message exceeds the recipient's size limit", MESSAGE),
    (550, "5.2.4 Mailing list expansion problem", HARD),
    (550, "5.3.0 Other mail system problem", REMOTE),
    (552, "5.3.1 Mail system full", REMOTE),
    (554, "5.3.2 System not accepting network messages", REMOTE),
    (554, "5.3.3 System not capable of selected features", MESSAGE),
    (552, "5.3.4 Message too big for system", MESSAGE),
    (554, "5.3.5 System incorrectly configured", REMOTE),
    (554, "5.4.0 Routing problem", REMOTE),
    (554, "5.4.1 No answer from host", REMOTE),
    (554, "5.4.2 Bad connection", REMOTE),
    (554, "5.4.3 Directory server failure", REMOTE),
    (550, "5.4.4 Unable to route: no mail hosts for domain", HARD),
    (554, "5.4.6 Routing loop detected", REMOTE),
    (554, "5.4.7 Delivery time expired", REMOTE),
    (500, "5.5.0 Protocol error", REMOTE),
    (500, "5.5.1 Invalid command", REMOTE),
    (501, "5.5.2 Syntax error", REMOTE),
    (452, "4.5.3 Too many recipients", RETRY),
    (552, "5.5.3 Too many recipients", REMOTE),
    (501, "5.5.4 Invalid command arguments", REMOTE),
    (500, "5.5.5 Wrong protocol version", REMOTE),
    (554, "5.6.0 Message content rejected", MESSAGE),
    (554, "5.6.1 Media not supported", MESSAGE),
    (554, "5.6.2 Conversion required and prohibited", MESSAGE),
    (554, "5.6.3 Conversion required but not supported", MESSAGE),
    (554, "5.6.5 Conversion failed", MESSAGE),
    (554, "5.6.6 Message content not available", MESSAGE),
    (553, "5.6.7 Non-ASCII addresses not permitted", MESSAGE),
    (550, "5.7.0 Other security problem", SENDER),
    (550, "5.7.1 Relaying denied", SENDER),
    (550, "5.7.1 Service unavailable; client host blocked using zen.spamhaus.org", SENDER),
    (550, "5.7.1 Unauthenticated email from example.com is not accepted due to domain's DMARC policy", SENDER),
    (550, "5.7.2 Mailing list expansion prohibited", SENDER),
    (554, "5.7.3 Security conversion required but not possible", SENDER),
    (554, "5.7.4 Security features not supported", SENDER),
    (554, "5.7.5 Cryptographic failure", SENDER),
    (554, "5.7.6 Cryptographic algorithm not supported", SENDER),
    (554, "5.7.7 Message integrity failure", SENDER),
    (535, "5.7.8 Authentication credentials invalid", AUTH),
    (534, "5.7.9 Authentication mechanism is too weak", AUTH),
    (523, "5.7.10 Encryption needed", AUTH),
    (538, "5.7.11 Encryption required for requested authentication mechanism", AUTH),
    (432, "4.7.12 A password transition is needed", RETRY),
    (535, "5.7.12 A password transition is needed", AUTH),
    (525, "5.7.13 User account disabled", AUTH),
    (535, "5.7.14 Trust relationship required", SENDER),
    (550, "5.7.15 Priority level is too low", SENDER),
    (552, "5.7.16 Message is too big for the specified priority", MESSAGE),
    (550, "5.7.17 Mailbox owner has changed", HARD),
    (550, "5.7.18 Domain owner has changed", HARD),
    (550, "5.7.19 RRVS test cannot be completed", SENDER),
    (550, "5.7.20 No passing DKIM signature found", SENDER),
    (550, "5.7.21 No acceptable DKIM signature found", SENDER),
    (550, "5.7.22 No valid author-matched DKIM signature found", SENDER),
    (550, "5.7.23 SPF validation failed", SENDER),
    (550, "5.7.24 SPF validation error", SENDER),
    (550, "5.7.25 Reverse DNS validation failed", SENDER),
    (550, "5.7.26 Multiple authentication checks failed", SENDER),
    (550, "5.7.27 Sender address has null MX", SENDER),
]


@pytest.mark.parametrize(("code", "text", "verdict"), ENHANCED_ROWS)
def test_enhanced_status_codes(code: int, text: str, verdict: SmtpVerdict) -> None:
    refusal = classify_smtp_reply(code, text)
    assert refusal.verdict is verdict
    assert refusal.enhanced == text.split()[0]
    assert refusal.suppresses is (verdict is HARD)


def test_every_code_of_the_table_has_a_row() -> None:
    rows = {text.split()[0].split(".", 1)[1] for code, text, _ in ENHANCED_ROWS if code >= 500}
    assert rows == set(ENHANCED_CODES)


@pytest.mark.parametrize(
    ("code", "text", "verdict"),
    [
        # Unlisted details take their subject's verdict.
        (550, "5.1.99 Something about the address", HARD),
        (550, "5.7.99 Some new policy", SENDER),
        # Any 4xx, and a 4.x.x code, is temporary.
        (450, "4.2.0 Greylisted, try later", RETRY),
        (421, "Service not available", RETRY),
        (451, "Temporary local problem", RETRY),
        # No enhanced code: the reply text decides.
        (550, "Relaying denied", SENDER),
        (554, "Your IP is listed on a blocklist", SENDER),
        (550, "Message rejected for policy reasons", SENDER),
        (550, "Requested action not taken: mailbox unavailable", HARD),
        (550, "No such user here", HARD),
        (550, "<bob@example.com>: Recipient address rejected: User unknown in virtual mailbox table", HARD),
        (552, "Mailbox is full", FULL),
        (550, "User over quota", FULL),
        (552, "Message size exceeds fixed maximum message size", MESSAGE),
        (530, "Must issue a STARTTLS command first", AUTH),
        (535, "Incorrect authentication data", AUTH),
        # Neither code nor known text: the basic code (RFC 5321).
        (550, "Go away", HARD),
        (551, "Try elsewhere", HARD),
        (552, "Nope", FULL),
        (553, "Nope", HARD),
        (554, "Transaction failed", SENDER),
        (500, "Command unrecognized", REMOTE),
    ],
)
def test_reply_text_and_basic_codes(code: int, text: str, verdict: SmtpVerdict) -> None:
    assert classify_smtp_reply(code, text).verdict is verdict


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            "Ok 0100018c3b2f1d7e-5a1b2c3d-4e5f-6789-abcd-ef0123456789-000000",
            ("0100018c3b2f1d7e-5a1b2c3d-4e5f-6789-abcd-ef0123456789-000000"),
        ),  # Amazon SES
        ("Ok: queued as 14c5d75ce93dfd64b469", "14c5d75ce93dfd64b469"),  # SendGrid
        ("2.0.0 Ok: queued as 4Bq9Xk0Dz3z9vKp", "4Bq9Xk0Dz3z9vKp"),  # Postfix
        ("Ok: queued as <883953f4-6105-42a2-a16a-77a8eac79483>", "883953f4-6105-42a2-a16a-77a8eac79483"),
        ("2.0.0 OK queued", None),
        ("Great success", None),
        ("OK", None),
    ],
)
def test_relay_id_from_the_250_reply(reply: str, expected: str | None) -> None:
    assert relay_id(reply) == expected


# ---- which batches pause a run (models/campaigns/run_rules.pause_reason_of) ----------------------------------

PAUSE_CASES = [
    # (reasons of a batch's sends, None = sent; the pause reason or None)
    (["AUTH_FAILED"], "CREDENTIALS_REFUSED"),
    ([None] * 9 + ["AUTH_FAILED"], "CREDENTIALS_REFUSED"),  # credentials are the preset's, whoever meets them
    (["CONFIGURATION", None], "PROVIDER_CONFIGURATION"),
    (["SENDER_REJECTED"] * 3 + [None] * 3, "SENDER_REFUSED"),  # half the batch: the sender, not the recipients
    (["SENDER_REJECTED"] * 2 + [None] * 3, None),  # a minority: one remote domain's blocklist
    (["SENDER_REJECTED"] * 2 + [None] * 18, None),
    (["SENDER_REJECTED"], "SENDER_REFUSED"),  # a batch of one refused for the sender
    (["HARD_BOUNCE"] * 10, None),  # address problems are the recipients'
    (["TEMPORARY"] * 10, None),
    ([None] * 10, None),
]


@pytest.mark.parametrize(("reasons", "expected"), PAUSE_CASES)
def test_which_batches_pause_a_run(reasons: list[str | None], expected: str | None) -> None:
    reason = pause_reason_of(reasons)
    assert (reason.value if reason else None) == expected
