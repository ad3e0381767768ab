"""Review to activate (DESIGN §5): one pure function over a frozen snapshot of plain values.

Three callers: the review query, the activate mutation (inside its transaction, after locking) and the
run job (before sending). `now` is always passed in. Field paths name the GraphQL input fields.

Conventions decided here:
- Opt-out link: a marketing email's HTML needs an `<a href="{{ context.unsubscribeUrl }}">` (the href
  references UNSUBSCRIBE_VARIABLE; the sender fills it per recipient).
- Sizes: EMAIL_TOO_LARGE counts the UTF-8 bytes of the HTML and text sources; PUSH_PAYLOAD_TOO_LARGE the
  compact JSON of {title, body, deepLink, data}; both before rendering.
- Time checks (START_IN_PAST, END_BEFORE_START against now) only apply to a DRAFT: once activated, the
  start has legitimately passed.
- API_TRIGGERED campaigns get their recipients from the API call: no segment, schedule or 12 h checks;
  they still need an identity namespace.
- In-app content is required too (IN_APP_CONTENT_MISSING): DESIGN §5 lists no code for it, and an
  empty in-app message should not go live.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from models.campaigns import email_html
from models.campaigns.experiment_rules import ArmSize, expected_sizes
from models.campaigns.review_snapshot import (
    CampaignSnapshot,
    EmailContent,
    InAppContent,
    PresetFacts,
    PushContent,
    content_variants,
)
from models.campaigns.rules import NOT_ACTIVATED, CampaignType, Category, Channel
from models.campaigns.schedule import ScheduleCode, fire_times, validate_schedule
from models.campaigns.templates import CompiledTemplate, parse_template, profile_paths, references, unknown_roots
from models.campaigns.waves import validate_waves

UNSUBSCRIBE_VARIABLE = "context.unsubscribeUrl"
PRESET_ACTIVE = "ACTIVE"
PUSH_PAYLOAD_LIMIT = 4 * 1024
# Identity namespaces whose tokens belong to one platform (models/tenancy/identity.py defaults); FCM tokens
# exist for every platform the preset lists.
NAMESPACE_PLATFORM = {"APNS": "IOS"}
EMAIL_SIZE_LIMIT = 100 * 1024
THROTTLE_MIN, THROTTLE_MAX = 1, 2000
THROTTLE_WINDOW = timedelta(hours=12)
RECURRING_CHANNELS = frozenset({Channel.EMAIL, Channel.SMS, Channel.PUSH})


class Severity(StrEnum):
    ERROR = "ERROR"
    WARNING = "WARNING"


class AlertCode(StrEnum):
    # errors
    NAME_MISSING = "NAME_MISSING"
    ACTION_MISSING = "ACTION_MISSING"
    PRESET_MISSING = "PRESET_MISSING"
    PRESET_NOT_FOUND = "PRESET_NOT_FOUND"
    PRESET_NOT_ACTIVE = "PRESET_NOT_ACTIVE"
    PRESET_CHANNEL_MISMATCH = "PRESET_CHANNEL_MISMATCH"
    PRESET_CATEGORY_MISMATCH = "PRESET_CATEGORY_MISMATCH"
    EMAIL_SUBJECT_MISSING = "EMAIL_SUBJECT_MISSING"
    EMAIL_BODY_MISSING = "EMAIL_BODY_MISSING"
    SMS_TEXT_MISSING = "SMS_TEXT_MISSING"
    PUSH_CONTENT_MISSING = "PUSH_CONTENT_MISSING"
    PUSH_PAYLOAD_TOO_LARGE = "PUSH_PAYLOAD_TOO_LARGE"
    PUSH_PLATFORM_NOT_IN_PRESET = "PUSH_PLATFORM_NOT_IN_PRESET"
    IN_APP_CONTENT_MISSING = "IN_APP_CONTENT_MISSING"
    TEMPLATE_SYNTAX = "TEMPLATE_SYNTAX"
    TEMPLATE_UNKNOWN_ROOT = "TEMPLATE_UNKNOWN_ROOT"
    AUDIENCE_MISSING = "AUDIENCE_MISSING"
    SEGMENT_NOT_FOUND = "SEGMENT_NOT_FOUND"
    NAMESPACE_MISSING = "NAMESPACE_MISSING"
    NAMESPACE_NOT_FOUND = "NAMESPACE_NOT_FOUND"
    START_IN_PAST = "START_IN_PAST"
    END_BEFORE_START = "END_BEFORE_START"
    FREQUENCY_INVALID = "FREQUENCY_INVALID"
    THROTTLE_OUT_OF_RANGE = "THROTTLE_OUT_OF_RANGE"
    LINKS_TO_LOOPBACK = "LINKS_TO_LOOPBACK"
    WAVES_INVALID = "WAVES_INVALID"
    TRIGGER_CONTEXT_MISSING = "TRIGGER_CONTEXT_MISSING"
    # warnings
    AUDIENCE_EMPTY = "AUDIENCE_EMPTY"
    OPT_OUT_LINK_MISSING = "OPT_OUT_LINK_MISSING"
    EMAIL_TEXT_MISSING = "EMAIL_TEXT_MISSING"
    EMAIL_EMPTY_LINK = "EMAIL_EMPTY_LINK"
    EMAIL_TOO_LARGE = "EMAIL_TOO_LARGE"
    TEMPLATE_PATH_UNSEEN = "TEMPLATE_PATH_UNSEEN"
    RECURRING_WITHOUT_END = "RECURRING_WITHOUT_END"
    THROTTLE_TOO_SLOW = "THROTTLE_TOO_SLOW"
    WAVE_START_IN_PAST = "WAVE_START_IN_PAST"
    BUSINESS_RULES_EXCLUDE_MOST = "BUSINESS_RULES_EXCLUDE_MOST"
    PUSH_PLATFORM_UNVERIFIED = "PUSH_PLATFORM_UNVERIFIED"


WARNINGS = frozenset(
    {
        AlertCode.AUDIENCE_EMPTY,
        AlertCode.OPT_OUT_LINK_MISSING,
        AlertCode.EMAIL_TEXT_MISSING,
        AlertCode.EMAIL_EMPTY_LINK,
        AlertCode.EMAIL_TOO_LARGE,
        AlertCode.TEMPLATE_PATH_UNSEEN,
        AlertCode.RECURRING_WITHOUT_END,
        AlertCode.THROTTLE_TOO_SLOW,
        AlertCode.WAVE_START_IN_PAST,
        AlertCode.BUSINESS_RULES_EXCLUDE_MOST,
        AlertCode.PUSH_PLATFORM_UNVERIFIED,
    }
)


def severity_of(code: AlertCode) -> Severity:
    return Severity.WARNING if code in WARNINGS else Severity.ERROR


@dataclass(frozen=True)
class Alert:
    severity: Severity
    code: AlertCode
    field: str
    message: str


# --- rules ------------------------------------------------------------------------------------------


def _alert(code: AlertCode, field_path: str, message: str) -> Alert:
    return Alert(severity_of(code), code, field_path, message)


def _blank(value: str | None) -> bool:
    return not value or not value.strip()


def _check_identity(s: CampaignSnapshot) -> Iterator[Alert]:
    if _blank(s.name):
        yield _alert(AlertCode.NAME_MISSING, "name", "The campaign needs a name.")


def _check_action(s: CampaignSnapshot) -> Iterator[Alert]:
    if s.channel is None:
        yield _alert(AlertCode.ACTION_MISSING, "action.channel", "Choose the channel of the message.")
        return
    preset = s.preset
    if preset is None:
        yield _alert(AlertCode.PRESET_MISSING, "action.preset", "Choose the message preset to send with.")
        return
    if not preset.exists:
        yield _alert(AlertCode.PRESET_NOT_FOUND, "action.preset", "The selected message preset no longer exists.")
        return
    if preset.status != PRESET_ACTIVE:
        yield _alert(
            AlertCode.PRESET_NOT_ACTIVE, "action.preset", f"The message preset is {preset.status}, not ACTIVE."
        )
    if preset.channel != s.channel:
        yield _alert(
            AlertCode.PRESET_CHANNEL_MISMATCH,
            "action.preset",
            f"The message preset is for {preset.channel}, the campaign sends {s.channel}.",
        )
    if preset.category != s.category:
        yield _alert(
            AlertCode.PRESET_CATEGORY_MISMATCH,
            "action.preset",
            f"The message preset is {preset.category}, the campaign is {s.category}.",
        )
    if s.channel is Channel.PUSH and preset.channel is Channel.PUSH:
        yield from _check_push_platforms(s, preset)


def _check_push_platforms(s: CampaignSnapshot, preset: PresetFacts) -> Iterator[Alert]:
    """The platform the audience's tokens belong to is one the preset sends to; each platform the preset lists
    passed its dry run at the preset's last validation (jobs/preset_checks.push_checks)."""
    target = NAMESPACE_PLATFORM.get(s.audience.namespace_code or "")
    if target is not None and target not in preset.platforms:
        yield _alert(
            AlertCode.PUSH_PLATFORM_NOT_IN_PRESET,
            "audience.namespace",
            f"The {s.audience.namespace_code} tokens are {target} devices; the message preset's platforms are "
            f"{', '.join(preset.platforms) or 'none'}.",
        )
    if preset.verified_platforms is None:
        return
    for platform in preset.platforms:
        if platform not in preset.verified_platforms:
            yield _alert(
                AlertCode.PUSH_PLATFORM_UNVERIFIED,
                "action.preset",
                f"The message preset lists {platform}, but its last validation did not try a {platform} message: "
                "run messagePresetValidate.",
            )


def template_fields(s: CampaignSnapshot) -> list[tuple[str, str]]:
    """(field path, template source) of the content of the campaign's channel."""
    c = s.content
    if s.channel is Channel.EMAIL and c.email:
        e = c.email
        return [
            ("content.email.subject", e.subject),
            ("content.email.preheader", e.preheader),
            ("content.email.html", e.html),
            ("content.email.text", e.text),
        ]
    if s.channel is Channel.SMS and c.sms:
        return [("content.sms.text", c.sms.text)]
    if s.channel is Channel.PUSH and c.push:
        p = c.push
        fields = [
            ("content.push.title", p.title),
            ("content.push.body", p.body),
            ("content.push.deepLink", p.deep_link),
        ]
        return fields + [(f"content.push.data.{key}", value) for key, value in p.data]
    if s.channel is Channel.IN_APP and c.in_app:
        fields = [("content.inApp.title", c.in_app.title), ("content.inApp.body", c.in_app.body)]
        for i, button in enumerate(c.in_app.buttons):
            fields += [
                (f"content.inApp.buttons.{i}.label", button.label),
                (f"content.inApp.buttons.{i}.url", button.url),
            ]
        return fields
    return []


def _check_content(s: CampaignSnapshot) -> Iterator[Alert]:
    c = s.content
    if s.channel is Channel.EMAIL:
        email = c.email or EmailContent()
        if _blank(email.subject):
            yield _alert(AlertCode.EMAIL_SUBJECT_MISSING, "content.email.subject", "The subject line is missing.")
        if _blank(email.html) and _blank(email.text):
            yield _alert(AlertCode.EMAIL_BODY_MISSING, "content.email.html", "The email has no body.")
        elif _blank(email.text):
            yield _alert(AlertCode.EMAIL_TEXT_MISSING, "content.email.text", "The text version of the HTML is empty.")
        yield from _check_email_html(s, email)
        size = len(email.html.encode()) + len(email.text.encode())
        if size > EMAIL_SIZE_LIMIT:
            yield _alert(
                AlertCode.EMAIL_TOO_LARGE,
                "content.email.html",
                f"The email is {size} bytes, over the {EMAIL_SIZE_LIMIT}-byte limit.",
            )
    elif s.channel is Channel.SMS:
        if c.sms is None or _blank(c.sms.text):
            yield _alert(AlertCode.SMS_TEXT_MISSING, "content.sms.text", "The SMS text is empty.")
    elif s.channel is Channel.PUSH:
        push = c.push or PushContent()
        for name, value in (("title", push.title), ("body", push.body)):
            if _blank(value):
                yield _alert(AlertCode.PUSH_CONTENT_MISSING, f"content.push.{name}", f"The push {name} is empty.")
        payload = {"title": push.title, "body": push.body, "deepLink": push.deep_link, "data": dict(push.data)}
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        if size > PUSH_PAYLOAD_LIMIT:
            yield _alert(
                AlertCode.PUSH_PAYLOAD_TOO_LARGE,
                "content.push",
                f"The push payload is {size} bytes, over the {PUSH_PAYLOAD_LIMIT}-byte limit.",
            )
    elif s.channel is Channel.IN_APP:
        in_app = c.in_app or InAppContent()
        for name, value in (("title", in_app.title), ("body", in_app.body)):
            if _blank(value):
                yield _alert(AlertCode.IN_APP_CONTENT_MISSING, f"content.inApp.{name}", f"The in-app {name} is empty.")


def _check_email_html(s: CampaignSnapshot, email: EmailContent) -> Iterator[Alert]:
    if _blank(email.html):
        return
    found = email_html.links(email.html)
    for link in found:
        if link.empty:
            yield _alert(
                AlertCode.EMAIL_EMPTY_LINK,
                "content.email.html",
                f"Empty link at line {link.line}, column {link.column}.",
            )
    if s.category is Category.MARKETING and not any(_is_opt_out(link.href) for link in found):
        yield _alert(
            AlertCode.OPT_OUT_LINK_MISSING,
            "content.email.html",
            f'A marketing email needs an opt-out link: <a href="{{{{ {UNSUBSCRIBE_VARIABLE} }}}}">.',
        )


def _is_opt_out(href: str | None) -> bool:
    if not href or "{{" not in href:
        return False
    compiled = parse_template(href)
    return isinstance(compiled, CompiledTemplate) and references(compiled, UNSUBSCRIBE_VARIABLE)


def _path_seen(segments: tuple[str | int, ...], seen: frozenset[str]) -> bool:
    """Whether an audience profile has the path, or something under it (array indexes are ignored)."""
    keys = [segment for segment in segments if isinstance(segment, str)]

    def has(prefix: list[str]) -> bool:
        dotted = ".".join(prefix)
        return bool(prefix) and (dotted in seen or any(path.startswith(dotted + ".") for path in seen))

    # `orders.size`, `.first`, `.last` are Liquid properties of the parent.
    return has(keys) or (len(keys) > 1 and keys[-1] in ("size", "first", "last") and has(keys[:-1]))


def _check_templates(s: CampaignSnapshot) -> Iterator[Alert]:
    seen = s.audience.profile_paths_seen
    for field_path, source in template_fields(s):
        if _blank(source):
            continue
        compiled = parse_template(source, field_path)
        if not isinstance(compiled, CompiledTemplate):
            yield _alert(
                AlertCode.TEMPLATE_SYNTAX,
                field_path,
                f"Line {compiled.line}, column {compiled.column}: {compiled.message}",
            )
            continue
        reported: set[str] = set()
        for path in unknown_roots(compiled):
            if path.root not in reported:
                reported.add(path.root)
                yield _alert(
                    AlertCode.TEMPLATE_UNKNOWN_ROOT,
                    field_path,
                    f"Line {path.line}, column {path.column}: {path.root!r} is not available; "
                    "use profile, campaign or context.",
                )
        yield from _check_trigger_context(s, field_path, compiled, reported)
        if seen is None:
            continue
        for path in profile_paths(compiled):
            if path.segments and not _path_seen(path.segments, seen) and path.dotted not in reported:
                reported.add(path.dotted)
                yield _alert(
                    AlertCode.TEMPLATE_PATH_UNSEEN,
                    field_path,
                    f"Line {path.line}, column {path.column}: no profile of the audience has profile.{path.dotted}.",
                )


TRIGGER_CONTEXT_ROOTS = ("trigger", "recipient")


def _check_trigger_context(
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
            yield _alert(
                AlertCode.TRIGGER_CONTEXT_MISSING,
                field_path,
                f"Line {path.line}, column {path.column}: context.{path.segments[1]} is only set for "
                "API-triggered campaigns.",
            )
            continue
        if len(path.segments) > 2 and not _sample_has(sample, path.segments[1:]):
            reported.add(dotted)
            yield _alert(
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


def _check_audience(s: CampaignSnapshot) -> Iterator[Alert]:
    a = s.audience
    triggered = s.type is CampaignType.API_TRIGGERED
    if not triggered:
        if a.segment_id is None:
            yield _alert(AlertCode.AUDIENCE_MISSING, "audience.segment", "Choose the audience to target.")
        elif not a.segment_exists:
            yield _alert(AlertCode.SEGMENT_NOT_FOUND, "audience.segment", "The selected segment no longer exists.")
    if a.namespace_code is None:
        yield _alert(AlertCode.NAMESPACE_MISSING, "audience.namespace", "Choose the identity namespace.")
    elif not a.namespace_exists:
        yield _alert(
            AlertCode.NAMESPACE_NOT_FOUND, "audience.namespace", f"No identity namespace {a.namespace_code!r}."
        )
    if not triggered and a.segment_exists and a.estimate is not None and a.estimate.contactable == 0:
        what = "has no member" if a.estimate.qualified == 0 else "has no member that can be contacted"
        yield _alert(AlertCode.AUDIENCE_EMPTY, "audience.segment", f"The audience {what}.")


def _check_schedule(s: CampaignSnapshot, now: datetime) -> Iterator[Alert]:
    if s.type is CampaignType.API_TRIGGERED:
        return
    schedule = s.schedule
    problems = validate_schedule(schedule)
    for problem in problems:
        code = (
            AlertCode.END_BEFORE_START if problem.code is ScheduleCode.END_BEFORE_START else AlertCode.FREQUENCY_INVALID
        )
        yield _alert(code, f"schedule.{problem.field}", problem.message)
    if schedule.recurring and s.channel is Channel.IN_APP:
        yield _alert(AlertCode.FREQUENCY_INVALID, "schedule.frequency", "In-app messages cannot recur.")
    if problems:
        return
    if s.status in NOT_ACTIVATED:
        if schedule.start_at is not None and schedule.start_at < now:
            yield _alert(AlertCode.START_IN_PAST, "schedule.startAt", "The start is in the past.")
        elif schedule.start_at is None and schedule.end_at is not None and schedule.end_at < now:
            yield _alert(AlertCode.END_BEFORE_START, "schedule.endAt", "The end is before an activation now.")
    if schedule.recurring and schedule.end_at is None:
        yield _alert(
            AlertCode.RECURRING_WITHOUT_END, "schedule.endAt", "A recurring campaign without an end runs until stopped."
        )


def _check_throttle(s: CampaignSnapshot) -> Iterator[Alert]:
    if s.throttle is None:
        return
    if not THROTTLE_MIN <= s.throttle <= THROTTLE_MAX:
        yield _alert(
            AlertCode.THROTTLE_OUT_OF_RANGE,
            "throttle",
            f"The throttle must be between {THROTTLE_MIN} and {THROTTLE_MAX} messages per second.",
        )
        return
    estimate = s.audience.estimate
    if s.type is CampaignType.SCHEDULED and estimate is not None:
        duration = estimated_duration(estimate.contactable, s.throttle)
        if duration is not None and duration > THROTTLE_WINDOW:
            served = int(THROTTLE_WINDOW.total_seconds()) * s.throttle
            yield _alert(
                AlertCode.THROTTLE_TOO_SLOW,
                "throttle",
                f"At {s.throttle}/s only {served} of {estimate.contactable} profiles can be served in 12 hours; "
                "the rest will be excluded.",
            )


def _check_links(s: CampaignSnapshot) -> Iterator[Alert]:
    """In production, tracking and unsubscribe links to a loopback origin are dead for every recipient."""
    if s.links is None or not s.links.production or not _is_loopback(s.links.public_url):
        return
    unsubscribe = s.channel is Channel.EMAIL and s.category is Category.MARKETING
    if s.tracking or unsubscribe:
        what = "tracked links" if s.tracking else "unsubscribe links"
        yield _alert(
            AlertCode.LINKS_TO_LOOPBACK,
            "tracking" if s.tracking else "content.email.html",
            f"The messages would carry {what} to {s.links.public_url}, which recipients cannot reach: set "
            "PUBLIC_URL to the server's public https origin.",
        )


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def review(snapshot: CampaignSnapshot, now: datetime) -> list[Alert]:
    """Every alert of the campaign, errors and warnings, in a stable order."""
    return [
        *_check_identity(snapshot),
        *_check_action(snapshot),
        *_per_content(snapshot),
        *_check_audience(snapshot),
        *_check_schedule(snapshot, now),
        *_check_throttle(snapshot),
        *_check_links(snapshot),
        *_check_waves(snapshot, now),
        *_check_business_rules(snapshot),
    ]


def _per_content(snapshot: CampaignSnapshot) -> Iterator[Alert]:
    """The content checks of each content sent: the campaign's, or every treatment's with its field path and
    key named (`experiment.treatments[1].content.email.subject`, "Treatment B: …")."""
    for prefix, variant in content_variants(snapshot):
        key = variant_key(snapshot, prefix)
        for alert in (*_check_content(variant), *_check_templates(variant)):
            if not prefix:
                yield alert
            else:
                yield Alert(alert.severity, alert.code, prefix + alert.field, f"Treatment {key}: {alert.message}")


def variant_key(snapshot: CampaignSnapshot, prefix: str) -> str:
    index = int(prefix.split("[", 1)[1].split("]", 1)[0]) if prefix else -1
    return snapshot.treatments[index][0] if prefix else ""


def _check_waves(s: CampaignSnapshot, now: datetime) -> Iterator[Alert]:
    if s.waves is None:
        return
    for problem in validate_waves(s.waves):
        yield _alert(AlertCode.WAVES_INVALID, f"waves.{problem.field}", problem.message)
    if s.schedule.local_time:
        yield _alert(AlertCode.WAVES_INVALID, "waves", "Waves cannot be combined with PROFILE_TIME_ZONE delivery.")
    if s.waves.start_times and s.waves.start_times[0] < now:
        yield _alert(
            AlertCode.WAVE_START_IN_PAST,
            "waves.startTimes",
            "Some wave start times have passed: those waves start as soon as the previous one is finished.",
        )


def _check_business_rules(s: CampaignSnapshot) -> Iterator[Alert]:
    rules, estimate = s.business_rules, s.audience.estimate
    if rules is None or estimate is None or estimate.contactable == 0:
        return
    excluded = rules.capped + rules.quiet_skipped
    if excluded * 2 > estimate.contactable:
        yield _alert(
            AlertCode.BUSINESS_RULES_EXCLUDE_MOST,
            "businessRuleSetId",
            f"The business rules of {rules.rule_set_name!r} would exclude about {excluded} of the "
            f"{estimate.contactable} contactable profiles now (frequency caps: {rules.capped}, quiet hours: "
            f"{rules.quiet_skipped}).",
        )


def can_activate(alerts: list[Alert]) -> bool:
    return not any(alert.severity is Severity.ERROR for alert in alerts)


# --- plan -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    qualified: int | None
    with_identity: int | None
    contactable: int | None
    excluded_by_reason: tuple[tuple[str, int], ...]
    next_run_times: tuple[datetime, ...]
    estimated_duration: timedelta | None  # None: no throttle or no estimate
    reviewed_version: int
    # A content experiment: the expected recipients of each treatment, of the holdout and (test then winner) of
    # the rest, out of the contactable profiles.
    arms: tuple[ArmSize, ...] = ()
    excluded_by_rules: tuple[tuple[str, int], ...] = ()  # FREQUENCY_CAPPED, QUIET_HOURS (estimated)
    delayed_share: float | None = None  # of the contactable audience; None: no rule set or no estimate


def estimated_duration(contactable: int, throttle: int | None) -> timedelta | None:
    """How long sending to `contactable` profiles takes at `throttle` messages per second."""
    if throttle is None or throttle <= 0:
        return None
    return timedelta(seconds=math.ceil(contactable / throttle))


def next_run_times(snapshot: CampaignSnapshot, now: datetime, *, count: int = 5) -> list[datetime]:
    """The next fire times from `now`; a draft is taken as activated now."""
    if snapshot.type is CampaignType.API_TRIGGERED:
        return []
    activated_at = now if snapshot.status in NOT_ACTIVATED else snapshot.activated_at
    return fire_times(snapshot.schedule, window_start=now, activated_at=activated_at, limit=count)


def plan(snapshot: CampaignSnapshot, now: datetime, *, runs: int = 5) -> Plan:
    estimate = snapshot.audience.estimate
    return Plan(
        qualified=estimate.qualified if estimate else None,
        with_identity=estimate.with_identity if estimate else None,
        contactable=estimate.contactable if estimate else None,
        excluded_by_reason=estimate.excluded_by_reason if estimate else (),
        next_run_times=tuple(next_run_times(snapshot, now, count=runs)),
        estimated_duration=estimated_duration(estimate.contactable, snapshot.throttle) if estimate else None,
        reviewed_version=snapshot.version,
        arms=tuple(expected_sizes(snapshot.experiment, estimate.contactable))
        if estimate and snapshot.experiment
        else (),
        **_rules_plan(snapshot),
    )


def _rules_plan(snapshot: CampaignSnapshot) -> dict:
    rules, estimate = snapshot.business_rules, snapshot.audience.estimate
    if rules is None or estimate is None:
        return {}
    excluded = (("FREQUENCY_CAPPED", rules.capped), ("QUIET_HOURS", rules.quiet_skipped))
    share = rules.delayed / estimate.contactable if estimate.contactable else 0.0
    return {"excluded_by_rules": tuple((r, n) for r, n in excluded if n), "delayed_share": round(share, 4)}
