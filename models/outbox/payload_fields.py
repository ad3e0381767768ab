"""Reading a payload's fields: each refusal is a PayloadError naming the topic and the key (models/outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.campaigns.rules import CampaignStatus


class PayloadError(ValueError):
    """An event that does not match its topic's payload."""


def read_field(data: dict[str, Any], topic: str, key: str, kinds: tuple[type, ...], *, optional: bool = False) -> Any:
    if key not in data or data[key] is None:
        if optional:
            return None
        raise PayloadError(f"{topic}: '{key}' is missing")
    value = data[key]
    # bool is an int in Python: never accept it where a number is meant
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise PayloadError(f"{topic}: '{key}' is {type(value).__name__}, not {'/'.join(k.__name__ for k in kinds)}")
    return value


def read_time(data: dict[str, Any], topic: str, key: str) -> datetime:
    text = read_field(data, topic, key, (str,))
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{topic}: '{key}' is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise PayloadError(f"{topic}: '{key}' has no time zone")
    return value


def read_campaign_status(
    data: dict[str, Any], topic: str, key: str, *, optional: bool = False
) -> CampaignStatus | None:
    text = read_field(data, topic, key, (str,), optional=optional)
    if text is None:
        return None
    try:
        return CampaignStatus(text)
    except ValueError:
        raise PayloadError(f"{topic}: '{key}' is not a campaign status: {text!r}") from None
