"""Templates reading `context.trigger` and `context.recipient`: API-triggered campaigns only, and within the
campaign's trigger context sample."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from models.campaigns.review.alerts import Alert, AlertCode, alert
from models.campaigns.review_snapshot import CampaignSnapshot
from models.campaigns.rules import CampaignType
from models.campaigns.templates import CompiledTemplate

TRIGGER_CONTEXT_ROOTS = ("trigger", "recipient")


def check_trigger_context(
    s: CampaignSnapshot, field_path: str, compiled: CompiledTemplate, reported: set[str]
) -> Iterator[Alert]:
    """`context.trigger.*` and `context.recipient.*` exist only in an API trigger's messages, and must be in the
    campaign's `triggerContextSample` (what callers promise to send), or the message fails to render."""
    sample = s.trigger_context_sample or {}
    for path in compiled.paths:
        if path.root != "context" or len(path.segments) < 2 or path.segments[1] not in TRIGGER_CONTEXT_ROOTS:
            continue
        dotted = path.dotted
        if dotted in reported:
            continue
        if s.type is not CampaignType.API_TRIGGERED:
            reported.add(dotted)
            yield alert(
                AlertCode.TRIGGER_CONTEXT_MISSING,
                field_path,
                f"Line {path.line}, column {path.column}: context.{path.segments[1]} is only set for "
                "API-triggered campaigns.",
            )
            continue
        if len(path.segments) > 2 and not _sample_has(sample, path.segments[1:]):
            reported.add(dotted)
            yield alert(
                AlertCode.TRIGGER_CONTEXT_MISSING,
                field_path,
                f"Line {path.line}, column {path.column}: the trigger context sample has no {dotted}; "
                "add it to triggerContextSample or give the template a default.",
            )


def _sample_has(sample: Any, segments: tuple[str | int, ...]) -> bool:
    """Whether the sample has the path (array indexes and Liquid's size/first/last read the parent)."""
    value = sample
    for segment in segments:
        if isinstance(segment, int):
            continue
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list | str | dict) and segment in ("size", "first", "last"):
            return True
        elif isinstance(value, list) and value:
            value = value[0].get(segment) if isinstance(value[0], dict) and segment in value[0] else None
            if value is None:
                return False
        else:
            return False
    return True
