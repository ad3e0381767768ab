"""What every provider adapter of the email feedback webhook reads and returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from api.settings import Settings
from jobs.channels.bounces import SmtpVerdict, classify_smtp_reply, enhanced_code
from models.reporting.feedback import Feedback, FeedbackKind
from models.reporting.tracking import BounceType

# Signed timestamps older (or newer) than this are refused: a captured request cannot be replayed later.
MAX_SIGNATURE_AGE_SECONDS = 15 * 60


class FeedbackRefused(Exception):
    """The request is not the provider's (or not for this preset): answered with `status` and nothing applied."""

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class FeedbackRequest:
    headers: Mapping[str, str]
    body: bytes
    # The preset's email settings and opened secrets, as in force.
    preset_settings: Mapping[str, Any]
    secrets: Mapping[str, str]
    settings: Settings
    http: httpx.AsyncClient


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    # Ids the provider names the message by: the relay's own id and/or our Message-ID.
    ids: tuple[str, ...]
    # None: a valid event Herald records nothing for (opens, deferrals, …).
    feedback: Feedback | None
    kind: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderReply:
    """What an adapter found: events to apply, or a body to answer with and nothing to apply."""

    events: list[ProviderEvent]
    answer: dict[str, Any] | None = None


def message_id_forms(value: object) -> tuple[str, ...]:
    """A Message-ID as providers print it (with or without <>), in both forms."""
    if not isinstance(value, str) or not value.strip() or len(value) > 998:
        return ()
    bare = value.strip().strip("<>")
    return (f"<{bare}>", bare)


def bounce(permanent: bool, smtp_code: object, smtp_text: object, reason: str) -> Feedback:
    """A provider's bounce: hard (suppressing) only when permanent and, where the provider passes the remote
    server's reply, that reply is about the address (jobs/channels/bounces.py): a 5.7.x policy refusal a
    provider calls permanent says nothing about the recipient."""
    if not permanent:
        return Feedback(FeedbackKind.BOUNCE, BounceType.SOFT, reason)
    text = smtp_text if isinstance(smtp_text, str) else ""
    code = _int(smtp_code)
    if code is None and enhanced_code(text):
        code = 550 if text.lstrip().startswith("5") else 450
    if code is not None:
        verdict = classify_smtp_reply(code, text).verdict
        if verdict is not SmtpVerdict.HARD_BOUNCE:
            return Feedback(FeedbackKind.BOUNCE, BounceType.SOFT, reason)
    return Feedback(FeedbackKind.BOUNCE, BounceType.HARD, reason)


def _int(value: object) -> int | None:
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if 200 <= number <= 599 else None
