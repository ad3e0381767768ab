"""What an SMTP refusal means for the address: RFC 3463 enhanced status codes as data, then the reply text.

Only a problem with the recipient's address suppresses it. Refusals about the sender (policy, reputation,
relaying, DMARC/SPF/DKIM) or its credentials say nothing about the recipient: a misconfigured relay answering
`550 5.7.1` to everyone must not put the whole audience on the suppression list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class SmtpVerdict(StrEnum):
    HARD_BOUNCE = "HARD_BOUNCE"  # the address does not exist or can never receive mail: suppressed
    MAILBOX_FULL = "MAILBOX_FULL"  # a soft bounce: not delivered this time, the address kept
    SENDER = "SENDER"  # policy, reputation or relaying refused for the sender: nobody suppressed
    AUTH = "AUTH"  # the sender's credentials or authentication setup: nobody suppressed
    MESSAGE = "MESSAGE"  # this message's content or size
    REMOTE = "REMOTE"  # another permanent failure of the receiving system, not about the address
    RETRY = "RETRY"  # 4.x.x: try again later


# Permanent (5.x.x) enhanced codes by "subject.detail" (RFC 3463, 3886, 4954, 5248 registry, 7293, 7372, 7505).
ENHANCED_CODES: dict[str, SmtpVerdict] = {
    # X.1 addressing
    "1.0": SmtpVerdict.HARD_BOUNCE,  # other address status
    "1.1": SmtpVerdict.HARD_BOUNCE,  # bad destination mailbox address
    "1.2": SmtpVerdict.HARD_BOUNCE,  # bad destination system address
    "1.3": SmtpVerdict.HARD_BOUNCE,  # bad destination mailbox address syntax
    "1.4": SmtpVerdict.HARD_BOUNCE,  # destination mailbox address ambiguous
    "1.6": SmtpVerdict.HARD_BOUNCE,  # destination mailbox has moved, no forwarding address
    "1.7": SmtpVerdict.SENDER,  # bad sender's mailbox address syntax
    "1.8": SmtpVerdict.SENDER,  # bad sender's system address
    "1.10": SmtpVerdict.HARD_BOUNCE,  # recipient address has null MX
    # X.2 mailbox status
    "2.0": SmtpVerdict.HARD_BOUNCE,  # other or undefined mailbox status
    "2.1": SmtpVerdict.HARD_BOUNCE,  # mailbox disabled, not accepting messages
    "2.2": SmtpVerdict.MAILBOX_FULL,  # mailbox full
    "2.3": SmtpVerdict.MESSAGE,  # message length exceeds administrative limit
    "2.4": SmtpVerdict.HARD_BOUNCE,  # mailing list expansion problem
    # X.3 mail system status
    "3.0": SmtpVerdict.REMOTE,  # other or undefined mail system status
    "3.1": SmtpVerdict.REMOTE,  # mail system full
    "3.2": SmtpVerdict.REMOTE,  # system not accepting network messages
    "3.3": SmtpVerdict.MESSAGE,  # system not capable of selected features
    "3.4": SmtpVerdict.MESSAGE,  # message too big for system
    "3.5": SmtpVerdict.REMOTE,  # system incorrectly configured
    # X.4 network and routing
    "4.0": SmtpVerdict.REMOTE,  # other or undefined network or routing status
    "4.1": SmtpVerdict.REMOTE,  # no answer from host
    "4.2": SmtpVerdict.REMOTE,  # bad connection
    "4.3": SmtpVerdict.REMOTE,  # directory server failure
    "4.4": SmtpVerdict.HARD_BOUNCE,  # unable to route: the domain has no mail host
    "4.6": SmtpVerdict.REMOTE,  # routing loop detected
    "4.7": SmtpVerdict.REMOTE,  # delivery time expired
    # X.5 mail delivery protocol: our client's side of the conversation
    "5.0": SmtpVerdict.REMOTE,  # other or undefined protocol status
    "5.1": SmtpVerdict.REMOTE,  # invalid command
    "5.2": SmtpVerdict.REMOTE,  # syntax error
    "5.3": SmtpVerdict.REMOTE,  # too many recipients
    "5.4": SmtpVerdict.REMOTE,  # invalid command arguments
    "5.5": SmtpVerdict.REMOTE,  # wrong protocol version
    # X.6 message content or media
    "6.0": SmtpVerdict.MESSAGE,  # other or undefined media error
    "6.1": SmtpVerdict.MESSAGE,  # media not supported
    "6.2": SmtpVerdict.MESSAGE,  # conversion required and prohibited
    "6.3": SmtpVerdict.MESSAGE,  # conversion required but not supported
    "6.5": SmtpVerdict.MESSAGE,  # conversion failed
    "6.6": SmtpVerdict.MESSAGE,  # message content not available
    "6.7": SmtpVerdict.MESSAGE,  # non-ASCII addresses not permitted for that sender/recipient
    # X.7 security or policy: about the sender, never the recipient's address
    "7.0": SmtpVerdict.SENDER,  # other or undefined security status
    "7.1": SmtpVerdict.SENDER,  # delivery not authorized, message refused (relaying denied, blocklists)
    "7.2": SmtpVerdict.SENDER,  # mailing list expansion prohibited
    "7.3": SmtpVerdict.SENDER,  # security conversion required but not possible
    "7.4": SmtpVerdict.SENDER,  # security features not supported
    "7.5": SmtpVerdict.SENDER,  # cryptographic failure
    "7.6": SmtpVerdict.SENDER,  # cryptographic algorithm not supported
    "7.7": SmtpVerdict.SENDER,  # message integrity failure
    "7.8": SmtpVerdict.AUTH,  # authentication credentials invalid
    "7.9": SmtpVerdict.AUTH,  # authentication mechanism is too weak
    "7.10": SmtpVerdict.AUTH,  # encryption needed
    "7.11": SmtpVerdict.AUTH,  # encryption required for requested authentication mechanism
    "7.12": SmtpVerdict.AUTH,  # a password transition is needed
    "7.13": SmtpVerdict.AUTH,  # user account disabled (the sending account)
    "7.14": SmtpVerdict.SENDER,  # trust relationship required
    "7.15": SmtpVerdict.SENDER,  # priority level is too low
    "7.16": SmtpVerdict.MESSAGE,  # message is too big for the specified priority
    "7.17": SmtpVerdict.HARD_BOUNCE,  # mailbox owner has changed
    "7.18": SmtpVerdict.HARD_BOUNCE,  # domain owner has changed
    "7.19": SmtpVerdict.SENDER,  # RRVS test cannot be completed
    "7.20": SmtpVerdict.SENDER,  # no passing DKIM signature found
    "7.21": SmtpVerdict.SENDER,  # no acceptable DKIM signature found
    "7.22": SmtpVerdict.SENDER,  # no valid author-matched DKIM signature found
    "7.23": SmtpVerdict.SENDER,  # SPF validation failed
    "7.24": SmtpVerdict.SENDER,  # SPF validation error
    "7.25": SmtpVerdict.SENDER,  # reverse DNS validation failed
    "7.26": SmtpVerdict.SENDER,  # multiple authentication checks failed
    "7.27": SmtpVerdict.SENDER,  # sender address has null MX
}

# An enhanced code whose detail is not listed above takes its subject's verdict.
SUBJECT_DEFAULTS: dict[str, SmtpVerdict] = {
    "1": SmtpVerdict.HARD_BOUNCE,
    "2": SmtpVerdict.HARD_BOUNCE,
    "3": SmtpVerdict.REMOTE,
    "4": SmtpVerdict.REMOTE,
    "5": SmtpVerdict.REMOTE,
    "6": SmtpVerdict.MESSAGE,
    "7": SmtpVerdict.SENDER,
}

# Without an enhanced code: the reply text, first match wins (sender-side phrases first, so "relaying denied
# for user@…" is not read as an unknown user).
TEXT_PATTERNS: tuple[tuple[re.Pattern[str], SmtpVerdict], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), verdict)
    for pattern, verdict in (
        (r"authenticat|credentials|login", SmtpVerdict.AUTH),
        (
            r"relay|spam|block ?list|black ?list|blocked|reputation|dmarc|spf|dkim|policy|"
            r"not authori[sz]ed|rate limit|listed",
            SmtpVerdict.SENDER,
        ),
        (r"mailbox (is )?full|over ?quota|quota exceeded|insufficient (system )?storage", SmtpVerdict.MAILBOX_FULL),
        (r"too (large|big)|size limit|exceeds", SmtpVerdict.MESSAGE),
        (
            r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|doesn't exist|"
            r"invalid (recipient|mailbox|address)|recipient (address )?rejected|mailbox unavailable|"
            r"address rejected|not found|disabled|inactive",
            SmtpVerdict.HARD_BOUNCE,
        ),
    )
)

# The last resort, by basic reply code (RFC 5321 §4.2.3).
BASIC_CODES: dict[int, SmtpVerdict] = {
    530: SmtpVerdict.AUTH,  # authentication required
    535: SmtpVerdict.AUTH,  # authentication credentials invalid
    550: SmtpVerdict.HARD_BOUNCE,  # mailbox unavailable
    551: SmtpVerdict.HARD_BOUNCE,  # user not local
    552: SmtpVerdict.MAILBOX_FULL,  # exceeded storage allocation
    553: SmtpVerdict.HARD_BOUNCE,  # mailbox name not allowed
    554: SmtpVerdict.SENDER,  # transaction failed: most often a policy refusal
}

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class SmtpRefusal:
    verdict: SmtpVerdict
    # The enhanced status code read from the reply, e.g. "5.1.1"; None when the server gave none.
    enhanced: str | None

    @property
    def suppresses(self) -> bool:
        return self.verdict is SmtpVerdict.HARD_BOUNCE


def enhanced_code(text: str) -> str | None:
    match = _ENHANCED.match(text)
    return ".".join(match.groups()) if match else None


def classify_smtp_reply(code: int, text: str) -> SmtpRefusal:
    """The verdict for a refusal `code text` (text without the code, as aiosmtplib gives it)."""
    enhanced = enhanced_code(text)
    if code < 500 or (enhanced is not None and enhanced.startswith("4.")):
        return SmtpRefusal(SmtpVerdict.RETRY, enhanced)
    if enhanced is not None:
        subject_detail = enhanced.split(".", 1)[1]
        verdict = ENHANCED_CODES.get(subject_detail) or SUBJECT_DEFAULTS.get(subject_detail.split(".")[0])
        if verdict is not None:
            return SmtpRefusal(verdict, enhanced)
    for pattern, verdict in TEXT_PATTERNS:
        if pattern.search(text):
            return SmtpRefusal(verdict, enhanced)
    return SmtpRefusal(BASIC_CODES.get(code, SmtpVerdict.REMOTE), enhanced)


# Where relays put their id in the 250 reply to DATA: Postfix, SendGrid and Postmark "… queued as ID",
# Amazon SES "Ok ID".
_QUEUED_AS = re.compile(r"queued as\s+<?([^\s<>]{1,255})>?", re.IGNORECASE)
_OK_ID = re.compile(r"^(?:2\.\d{1,3}\.\d{1,3}\s+)?ok\s+<?([0-9A-Za-z][\w.@=+-]{7,254})>?\s*$", re.IGNORECASE)


def relay_id(reply_text: str) -> str | None:
    """The relay's id for an accepted message, read from the text of its 250 reply (None when it names none)."""
    match = _QUEUED_AS.search(reply_text) or _OK_ID.match(reply_text.strip())
    return match.group(1) if match else None
