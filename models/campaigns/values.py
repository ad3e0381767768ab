"""Stored campaign values: limits, shape validation (the review judges readiness), the typed errors of the
campaign actions, and the stored schedule read back."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from models.audience.entities import ContactChannel
from models.campaigns.review import Alert
from models.campaigns.rules import (
    Channel,
    InvalidTransition,
)
from models.campaigns.schedule import DeliverAt, PassedTime, Schedule, validate_schedule
from models.campaigns.waves import Waves, validate_waves, waves_from_stored

OBJECT_TYPE = "Campaign"
MAX_NAME = 200
MAX_TEXT = 500_000  # per content field; the review warns far below (EMAIL_TOO_LARGE at 100 KB)
MAX_TAGS = 20
MAX_TAG = 50
TIME_OF_DAY_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

CONTACT_CHANNEL = {
    Channel.EMAIL: ContactChannel.EMAIL,
    Channel.SMS: ContactChannel.SMS,
    Channel.PUSH: ContactChannel.PUSH,
}


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    code: str
    message: str


class CampaignError(Exception):
    """Base of the expected refusals the GraphQL layer maps to union members."""


class CampaignNotFoundError(CampaignError):
    def __init__(self, field: str, given: Any) -> None:
        self.field = field
        self.given = given
        super().__init__(f"`{field}`: nothing with id {given!r} in this sandbox")


class CampaignInvalidInputError(CampaignError):
    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


class CampaignConflictError(CampaignError):
    def __init__(self, current_version: int) -> None:
        self.current_version = current_version
        super().__init__(f"the campaign changed since it was read (current version {current_version})")


class CampaignStateError(CampaignError):
    def __init__(self, transition: InvalidTransition) -> None:
        self.current = transition.current
        self.allowed_actions = transition.allowed_actions
        super().__init__(str(transition))


class ReviewFailedError(CampaignError):
    def __init__(self, alerts: list[Alert]) -> None:
        self.alerts = alerts
        super().__init__(f"{sum(1 for a in alerts if a.severity.value == 'ERROR')} review error(s)")


# ---- validation of stored values (shape only: the review judges readiness) ----------------------------------


def _text_problems(value: Any, field: str, *, limit: int = MAX_TEXT, required: bool = False) -> list[FieldProblem]:
    if value is None:
        return [FieldProblem(field, "REQUIRED", "is required")] if required else []
    if not isinstance(value, str):
        return [FieldProblem(field, "INVALID", "must be text")]
    if "\x00" in value:
        return [FieldProblem(field, "INVALID_CHARACTER", "must not contain NUL characters")]
    if len(value) > limit:
        return [FieldProblem(field, "TOO_LONG", f"at most {limit} characters")]
    if required and not value.strip():
        return [FieldProblem(field, "REQUIRED", "must not be blank")]
    return []


def validate_values(values: Mapping[str, Any]) -> list[FieldProblem]:
    """Checks the shape of campaign column values (as stored) before anything is written."""
    problems: list[FieldProblem] = []
    if "name" in values:
        problems += _text_problems(values["name"], "input.name", limit=MAX_NAME, required=True)
    if "description" in values:
        problems += _text_problems(values["description"], "input.description", limit=10_000)
    if "tags" in values:
        tags = values["tags"]
        if len(tags) > MAX_TAGS:
            problems.append(FieldProblem("input.tags", "TOO_MANY", f"at most {MAX_TAGS} tags"))
        for i, tag in enumerate(tags):
            tag_problems = _text_problems(tag, f"input.tags.{i}", limit=MAX_TAG, required=True)
            if not tag_problems and "|" in tag:
                # "|" separates tags in `tags_search`: a tag "a|b" would match filters on "a" and "b".
                tag_problems = [FieldProblem(f"input.tags.{i}", "INVALID_CHARACTER", "must not contain |")]
            problems += tag_problems
    if "throttle_per_second" in values and values["throttle_per_second"] is not None:
        if not -(2**31) < values["throttle_per_second"] < 2**31:
            problems.append(FieldProblem("input.throttle", "OUT_OF_RANGE", "must be between 1 and 2000"))
    if "priority" in values and not (isinstance(values["priority"], int) and 0 <= values["priority"] <= 100):
        problems.append(FieldProblem("input.priority", "OUT_OF_RANGE", "must be between 0 and 100"))
    sample = values.get("trigger_context_sample")
    if sample is not None:
        if not isinstance(sample, dict) or any(
            not isinstance(sample.get(k, {}), dict) for k in ("trigger", "recipient")
        ):
            problems.append(
                FieldProblem(
                    "input.triggerContextSample", "NOT_AN_OBJECT", 'give {"trigger": {...}, "recipient": {...}}'
                )
            )
        elif len(json.dumps(sample)) > 64 * 1024:
            problems.append(FieldProblem("input.triggerContextSample", "TOO_LARGE", "at most 64 KB"))
    problems += content_problems(values.get("content"), "input.content")
    if values.get("schedule"):
        problems += _schedule_problems(values["schedule"])
    if values.get("waves"):
        problems += _waves_problems(values["waves"], values.get("schedule") or {})
    return problems


def content_problems(content: Mapping[str, Any] | None, path: str) -> list[FieldProblem]:
    """The shape of a stored content (the campaign's, or a treatment's), field paths under `path`."""
    problems: list[FieldProblem] = []
    for channel_key, parts in (content or {}).items():
        for part, value in (parts or {}).items():
            if part == "buttons":
                if len(value) > 3:
                    problems.append(FieldProblem(f"{path}.inApp.buttons", "TOO_MANY", "at most 3 buttons"))
                for i, button in enumerate(value):
                    problems += _text_problems(button.get("label"), f"{path}.inApp.buttons.{i}.label", limit=200)
                    problems += _text_problems(button.get("url"), f"{path}.inApp.buttons.{i}.url", limit=2000)
            elif part == "customData":
                problems += push_data_problems(value, f"{path}.push.customData")
            else:
                problems += _text_problems(value, f"{path}.{channel_key}.{part}")
    return problems


def _waves_problems(stored: Mapping[str, Any], schedule: Mapping[str, Any]) -> list[FieldProblem]:
    problems = [
        FieldProblem(f"input.waves.{p.field}", p.code.value, p.message)
        for p in validate_waves(waves_from_stored(stored) or Waves(0))
    ]
    if schedule.get("deliverAt") == DeliverAt.PROFILE_TIME_ZONE.value:
        problems.append(
            FieldProblem("input.waves", "INVALID", "waves cannot be combined with delivery at each profile's time zone")
        )
    return problems


def merged_waves_problems(values: Mapping[str, Any], waves: Any, schedule: Any) -> list[FieldProblem]:
    """An update giving waves or a schedule, but not both: the other one is the stored one (`waves`, `schedule`)
    and the two together must not send in waves at each profile's time zone."""
    if ("waves" in values) == ("schedule" in values):
        return []  # both given: validate_values checked them; neither: nothing changes
    waves = values.get("waves", waves)
    schedule = values.get("schedule", schedule) or {}
    if not waves or schedule.get("deliverAt") != DeliverAt.PROFILE_TIME_ZONE.value:
        return []
    field = "input.waves" if "waves" in values else "input.schedule.deliverAt"
    return [FieldProblem(field, "INVALID", "waves cannot be combined with delivery at each profile's time zone")]


# FCM refuses these data keys ("from", "message_type", and any starting with "google" or "gcm").
PUSH_RESERVED_KEYS = frozenset({"from", "message_type"})
PUSH_RESERVED_PREFIXES = ("google", "gcm")


def push_data_problems(data: Any, path: str = "input.content.push.customData") -> list[FieldProblem]:
    """FCM data is string → string: a JSON value (number, boolean, object) is refused, not converted; clients
    wanting structure send it as JSON text (`"{\"a\": 1}"`) and parse it on the device."""
    if data is None:
        return []
    if not isinstance(data, Mapping):
        return [FieldProblem(path, "INVALID", "an object whose values are strings")]
    problems: list[FieldProblem] = []
    for key, item in data.items():
        field = f"{path}.{key}"
        problems += _text_problems(key, field, limit=200)
        lowered = str(key).lower()
        if lowered in PUSH_RESERVED_KEYS or lowered.startswith(PUSH_RESERVED_PREFIXES):
            problems.append(FieldProblem(field, "RESERVED_KEY", "FCM reserves from, message_type, google*, gcm*"))
        if not isinstance(item, str):
            problems.append(
                FieldProblem(field, "NOT_A_STRING", "push data values are strings: send JSON values as JSON text")
            )
        else:
            problems += _text_problems(item, field, limit=4000)
    return problems


def _schedule_problems(stored: Mapping[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    time_of_day = stored.get("timeOfDay")
    if time_of_day is not None and not (isinstance(time_of_day, str) and TIME_OF_DAY_RE.match(time_of_day)):
        problems.append(FieldProblem("input.schedule.timeOfDay", "INVALID", "must be HH:MM (24 h)"))
    for day in stored.get("daysOfMonth") or []:
        if not 1 <= day <= 31:
            problems.append(FieldProblem("input.schedule.daysOfMonth", "OUT_OF_RANGE", "days are 1 to 31"))
            break
    if not problems:
        for problem in validate_schedule(schedule_from_stored(stored)):
            if problem.code.value in ("TIMEZONE_INVALID", "NAIVE_DATETIME", "LOCAL_TIME_INVALID"):
                problems.append(FieldProblem(f"input.schedule.{problem.field}", problem.code.value, problem.message))
    return problems


def schedule_from_stored(stored: Mapping[str, Any]) -> Schedule:
    def when(key: str) -> datetime | None:
        value = stored.get(key)
        return datetime.fromisoformat(value) if value else None

    time_of_day = stored.get("timeOfDay")
    return Schedule(
        frequency=stored.get("frequency") or "ONCE",
        start_at=when("startAt"),
        end_at=when("endAt"),
        time_of_day=time.fromisoformat(time_of_day) if time_of_day and TIME_OF_DAY_RE.match(time_of_day) else None,
        days_of_week=tuple(stored.get("daysOfWeek") or ()),
        days_of_month=tuple(stored.get("daysOfMonth") or ()),
        timezone=stored.get("timeZone") or "UTC",
        deliver_at=DeliverAt(stored.get("deliverAt") or DeliverAt.CAMPAIGN_TIME_ZONE),
        on_passed_time=PassedTime(stored.get("onPassedTime") or PassedTime.SEND_NOW),
    )
