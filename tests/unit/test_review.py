"""Review to activate: every alert code with a case that raises it and a close case that does not."""

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from models.campaigns.review import (
    EMAIL_SIZE_LIMIT,
    WARNINGS,
    AlertCode,
    Severity,
    can_activate,
    estimated_duration,
    plan,
    review,
    severity_of,
)
from models.campaigns.review_snapshot import (
    AudienceEstimate,
    AudienceFacts,
    CampaignSnapshot,
    Content,
    EmailContent,
    InAppButton,
    InAppContent,
    LinkFacts,
    PresetFacts,
    PushContent,
    RuleEstimate,
    SmsContent,
)
from models.campaigns.rules import CampaignStatus, CampaignType, Category, Channel, Frequency
from models.campaigns.schedule import DeliverAt, Schedule
from models.campaigns.waves import Waves

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TOMORROW = NOW + timedelta(days=1)
C = AlertCode

CLEAN_HTML = (
    "<p>Hello {{ profile.person.name.firstName | default: 'there' }}</p>"
    '<a href="https://shop.example.com/?c={{ campaign.name | url_encode }}">Shop</a>'
    '<a href="{{ context.unsubscribeUrl }}">Unsubscribe</a>'
)
CLEAN = CampaignSnapshot(
    name="Spring sale",
    version=3,
    category=Category.MARKETING,
    channel=Channel.EMAIL,
    preset=PresetFacts(exists=True, status="ACTIVE", channel=Channel.EMAIL, category=Category.MARKETING),
    content=Content(email=EmailContent(subject="Hi {{ profile.person.name.firstName }}", html=CLEAN_HTML, text="Hi")),
    audience=AudienceFacts(
        segment_id="seg-1",
        segment_exists=True,
        namespace_code="Email",
        namespace_exists=True,
        estimate=AudienceEstimate(
            qualified=1000, with_identity=900, contactable=800, excluded_by_reason=(("NO_CONSENT", 100),)
        ),
        profile_paths_seen=frozenset({"person.name.firstName", "loyalty.points", "orders.sku"}),
    ),
    schedule=Schedule(start_at=TOMORROW),
    throttle=100,
)


def on(channel: Channel, content: Content) -> CampaignSnapshot:
    preset = PresetFacts(exists=True, status="ACTIVE", channel=channel, category=Category.MARKETING)
    return replace(CLEAN, channel=channel, preset=preset, content=content)


SMS = on(Channel.SMS, Content(sms=SmsContent("Hi {{ profile.person.name.firstName }}, -20% today")))
PUSH = on(Channel.PUSH, Content(push=PushContent("Sale", "Hi {{ profile.person.name.firstName }}", "app://sale")))
IN_APP = on(Channel.IN_APP, Content(in_app=InAppContent("Sale", "Today only", (InAppButton("Go", "app://sale"),))))


def email(**changes: str) -> CampaignSnapshot:
    assert CLEAN.content.email is not None
    return replace(CLEAN, content=Content(email=replace(CLEAN.content.email, **changes)))


def push(**changes: object) -> CampaignSnapshot:
    assert PUSH.content.push is not None
    return replace(PUSH, content=Content(push=replace(PUSH.content.push, **changes)))


def push_preset(
    platforms: tuple[str, ...], verified: frozenset[str] | None, namespace: str = "FCM"
) -> CampaignSnapshot:
    assert PUSH.preset is not None
    facts = replace(PUSH.preset, platforms=platforms, verified_platforms=verified)
    return replace(PUSH, preset=facts, audience=replace(PUSH.audience, namespace_code=namespace))


def audience(**changes: object) -> CampaignSnapshot:
    return replace(CLEAN, audience=replace(CLEAN.audience, **changes))


def schedule(**changes: object) -> CampaignSnapshot:
    return replace(CLEAN, schedule=replace(CLEAN.schedule, **changes))


def preset(**changes: object) -> CampaignSnapshot:
    assert CLEAN.preset is not None
    return replace(CLEAN, preset=replace(CLEAN.preset, **changes))


LOOPBACK_PROD = LinkFacts("http://127.0.0.1:8000", production=True)
TRANSACTIONAL = replace(preset(category=Category.TRANSACTIONAL), category=Category.TRANSACTIONAL)

SAMPLE = {"trigger": {"order": {"id": "A1"}, "items": [{"sku": "x"}]}, "recipient": {"name": "Ada"}}


def triggered(**changes: str) -> CampaignSnapshot:
    return replace(email(**changes), type=CampaignType.API_TRIGGERED, schedule=Schedule())


DAILY_9 = {"frequency": Frequency.DAILY, "time_of_day": time(9, 0)}

# (code, case, snapshot, raised?) — every code needs at least one True and one False row.
CASES: list[tuple[AlertCode, str, CampaignSnapshot, bool]] = [
    (C.NAME_MISSING, "blank name", replace(CLEAN, name="  "), True),
    (C.NAME_MISSING, "named", CLEAN, False),
    (C.ACTION_MISSING, "no channel", replace(CLEAN, channel=None, preset=None), True),
    (C.ACTION_MISSING, "channel chosen", replace(CLEAN, preset=None), False),
    (C.PRESET_MISSING, "no preset", replace(CLEAN, preset=None), True),
    (C.PRESET_MISSING, "preset chosen", CLEAN, False),
    (C.PRESET_NOT_FOUND, "deleted preset", replace(CLEAN, preset=PresetFacts(exists=False)), True),
    (C.PRESET_NOT_FOUND, "existing preset", preset(status="DEACTIVATED"), False),
    (C.PRESET_NOT_ACTIVE, "deactivated", preset(status="DEACTIVATED"), True),
    (C.PRESET_NOT_ACTIVE, "draft preset", preset(status="DRAFT"), True),
    (C.PRESET_NOT_ACTIVE, "active", CLEAN, False),
    (C.PRESET_CHANNEL_MISMATCH, "SMS preset on email", preset(channel=Channel.SMS), True),
    (C.PRESET_CHANNEL_MISMATCH, "same channel", preset(category=Category.TRANSACTIONAL), False),
    (C.PRESET_CATEGORY_MISMATCH, "transactional preset", preset(category=Category.TRANSACTIONAL), True),
    (C.PRESET_CATEGORY_MISMATCH, "same category", preset(channel=Channel.SMS), False),
    (C.EMAIL_SUBJECT_MISSING, "blank subject", email(subject=" "), True),
    (C.EMAIL_SUBJECT_MISSING, "subject set", email(preheader=""), False),
    (C.EMAIL_BODY_MISSING, "no html, no text", email(html="", text=""), True),
    (C.EMAIL_BODY_MISSING, "text only", email(html="", text="Hello"), False),
    (C.SMS_TEXT_MISSING, "empty SMS", on(Channel.SMS, Content(sms=SmsContent(""))), True),
    (C.SMS_TEXT_MISSING, "no SMS content at all", on(Channel.SMS, Content()), True),
    (C.SMS_TEXT_MISSING, "SMS text", SMS, False),
    (C.PUSH_CONTENT_MISSING, "no title", push(title=""), True),
    (C.PUSH_CONTENT_MISSING, "no body", push(body=" "), True),
    (C.PUSH_CONTENT_MISSING, "title and body", PUSH, False),
    (C.PUSH_PAYLOAD_TOO_LARGE, "4 KB of custom data", push(data=(("blob", "x" * 4096),)), True),
    (C.PUSH_PAYLOAD_TOO_LARGE, "3.9 KB of custom data", push(data=(("blob", "x" * 3900),)), False),
    (C.PUSH_PLATFORM_NOT_IN_PRESET, "APNS tokens, ANDROID preset", push_preset(("ANDROID",), None, "APNS"), True),
    (C.PUSH_PLATFORM_NOT_IN_PRESET, "APNS tokens, IOS preset", push_preset(("IOS",), None, "APNS"), False),
    (C.PUSH_PLATFORM_NOT_IN_PRESET, "FCM tokens, ANDROID preset", push_preset(("ANDROID",), None), False),
    (C.PUSH_NAMESPACE_NOT_FCM, "APNS tokens, IOS preset", push_preset(("IOS",), None, "APNS"), True),
    (C.PUSH_NAMESPACE_NOT_FCM, "FCM tokens, IOS preset", push_preset(("IOS",), None), False),
    (
        C.PUSH_PLATFORM_UNVERIFIED,
        "IOS without a dry run",
        push_preset(("ANDROID", "IOS"), frozenset({"ANDROID"})),
        True,
    ),
    (
        C.PUSH_PLATFORM_UNVERIFIED,
        "each platform tried",
        push_preset(("ANDROID", "IOS"), frozenset({"ANDROID", "IOS"})),
        False,
    ),
    (C.PUSH_PLATFORM_UNVERIFIED, "checks unknown", push_preset(("IOS",), None), False),
    (C.IN_APP_CONTENT_MISSING, "empty in-app body", on(Channel.IN_APP, Content(in_app=InAppContent("T", ""))), True),
    (C.IN_APP_CONTENT_MISSING, "in-app with content", IN_APP, False),
    (C.TEMPLATE_SYNTAX, "unclosed output in subject", email(subject="Hi {{ profile.x"), True),
    (C.TEMPLATE_SYNTAX, "missing endif in html", email(html=CLEAN_HTML + "{% if profile.x %}"), True),
    (C.TEMPLATE_SYNTAX, "bad SMS template", on(Channel.SMS, Content(sms=SmsContent("{% bogus %}"))), True),
    (C.TEMPLATE_SYNTAX, "runaway literal range", email(text="{{ (1..100000000) | join }}"), True),
    (C.TEMPLATE_SYNTAX, "push custom data", push(data=(("k", "{{ oops"),)), True),
    (C.TEMPLATE_SYNTAX, "valid templates", CLEAN, False),
    (
        C.TEMPLATE_SYNTAX,
        "syntax error in another channel's content",
        replace(SMS, content=Content(sms=SMS.content.sms, email=EmailContent(subject="{{"))),
        False,
    ),
    (C.TEMPLATE_UNKNOWN_ROOT, "user.email", email(subject="Hi {{ user.email }}"), True),
    (
        C.TEMPLATE_UNKNOWN_ROOT,
        "in an in-app button url",
        on(Channel.IN_APP, Content(in_app=InAppContent("T", "B", (InAppButton("Go", "{{ env.secret }}"),)))),
        True,
    ),
    (
        C.TEMPLATE_UNKNOWN_ROOT,
        "locals and loop variables",
        email(text="{% assign x = 1 %}{{ x }}{% for o in profile.orders %}{{ o.sku }}{{ forloop.index }}{% endfor %}"),
        False,
    ),
    (C.AUDIENCE_MISSING, "no segment", audience(segment_id=None, segment_exists=False), True),
    (
        C.AUDIENCE_MISSING,
        "API-triggered needs none",
        replace(
            CLEAN,
            type=CampaignType.API_TRIGGERED,
            audience=replace(CLEAN.audience, segment_id=None, segment_exists=False),
        ),
        False,
    ),
    (C.SEGMENT_NOT_FOUND, "deleted segment", audience(segment_exists=False), True),
    (C.SEGMENT_NOT_FOUND, "segment exists", CLEAN, False),
    (C.NAMESPACE_MISSING, "no namespace", audience(namespace_code=None, namespace_exists=False), True),
    (
        C.NAMESPACE_MISSING,
        "API-triggered still needs one",
        replace(CLEAN, type=CampaignType.API_TRIGGERED, audience=replace(CLEAN.audience, namespace_code=None)),
        True,
    ),
    (C.NAMESPACE_MISSING, "namespace chosen", CLEAN, False),
    (C.NAMESPACE_NOT_FOUND, "unknown namespace", audience(namespace_exists=False), True),
    (C.NAMESPACE_NOT_FOUND, "known namespace", CLEAN, False),
    (C.START_IN_PAST, "draft starting yesterday", schedule(start_at=NOW - timedelta(days=1)), True),
    (
        C.START_IN_PAST,
        "live campaign whose start passed",
        replace(schedule(start_at=NOW - timedelta(days=1)), status=CampaignStatus.LIVE),
        False,
    ),
    (C.START_IN_PAST, "start now", schedule(start_at=NOW), False),
    (C.END_BEFORE_START, "end before start", schedule(end_at=TOMORROW - timedelta(hours=1)), True),
    (C.END_BEFORE_START, "no start, end already past", schedule(start_at=None, end_at=NOW - timedelta(hours=1)), True),
    (C.END_BEFORE_START, "end after start", schedule(end_at=TOMORROW + timedelta(hours=1)), False),
    (C.FREQUENCY_INVALID, "daily without time of day", schedule(frequency=Frequency.DAILY), True),
    (C.FREQUENCY_INVALID, "weekly without days", schedule(frequency=Frequency.WEEKLY, time_of_day=time(9)), True),
    (C.FREQUENCY_INVALID, "unknown time zone", schedule(timezone="Europe/Atlantis"), True),
    (C.FREQUENCY_INVALID, "recurring in-app", replace(IN_APP, schedule=Schedule(start_at=TOMORROW, **DAILY_9)), True),
    (C.FREQUENCY_INVALID, "daily at 09:00", schedule(**DAILY_9), False),
    (C.THROTTLE_OUT_OF_RANGE, "zero", replace(CLEAN, throttle=0), True),
    (C.THROTTLE_OUT_OF_RANGE, "2001", replace(CLEAN, throttle=2001), True),
    (C.THROTTLE_OUT_OF_RANGE, "2000", replace(CLEAN, throttle=2000), False),
    (C.THROTTLE_OUT_OF_RANGE, "1", replace(CLEAN, throttle=1), False),
    (C.THROTTLE_OUT_OF_RANGE, "none", replace(CLEAN, throttle=None), False),
    (C.AUDIENCE_EMPTY, "nobody contactable", audience(estimate=AudienceEstimate(10, 10, 0)), True),
    (C.AUDIENCE_EMPTY, "empty segment", audience(estimate=AudienceEstimate(0, 0, 0)), True),
    (C.AUDIENCE_EMPTY, "one contactable", audience(estimate=AudienceEstimate(1, 1, 1)), False),
    (C.AUDIENCE_EMPTY, "not estimated", audience(estimate=None), False),
    (
        C.OPT_OUT_LINK_MISSING,
        "marketing without it",
        email(html='<p>Hi</p><a href="https://shop.example.com">Shop</a>'),
        True,
    ),
    (C.OPT_OUT_LINK_MISSING, "placeholder outside a link", email(html="<p>{{ context.unsubscribeUrl }}</p>"), True),
    (C.OPT_OUT_LINK_MISSING, "whitespace variant", email(html='<a href="{{context.unsubscribeUrl}}">stop</a>'), False),
    (
        C.OPT_OUT_LINK_MISSING,
        "transactional",
        replace(
            email(html="<p>Your receipt</p>"),
            category=Category.TRANSACTIONAL,
            preset=PresetFacts(True, "ACTIVE", Channel.EMAIL, Category.TRANSACTIONAL),
        ),
        False,
    ),
    (C.EMAIL_TEXT_MISSING, "html without text", email(text=""), True),
    (C.EMAIL_TEXT_MISSING, "html and text", CLEAN, False),
    (C.EMAIL_EMPTY_LINK, "empty href", email(html=CLEAN_HTML + '<a href="">x</a>'), True),
    (C.EMAIL_EMPTY_LINK, "hash href", email(html=CLEAN_HTML + "<a href='#'>x</a>"), True),
    (C.EMAIL_EMPTY_LINK, "bare href attribute", email(html=CLEAN_HTML + "<a href>x</a>"), True),
    (C.EMAIL_EMPTY_LINK, "named anchor without href", email(html=CLEAN_HTML + '<a name="top">x</a>'), False),
    (C.EMAIL_TOO_LARGE, "over 100 KB", email(html=CLEAN_HTML + "x" * EMAIL_SIZE_LIMIT), True),
    (
        C.EMAIL_TOO_LARGE,
        "multi-byte characters count as bytes",
        email(html=CLEAN_HTML + "é" * (EMAIL_SIZE_LIMIT // 2)),
        True,
    ),
    (C.EMAIL_TOO_LARGE, "just under", email(html=CLEAN_HTML + "x" * (EMAIL_SIZE_LIMIT - len(CLEAN_HTML) - 10)), False),
    (C.TEMPLATE_PATH_UNSEEN, "typo in a path", email(subject="Hi {{ profile.person.name.fristName }}"), True),
    (
        C.TEMPLATE_PATH_UNSEEN,
        "attribute nobody has",
        on(Channel.SMS, Content(sms=SmsContent("{{ profile.vip.level | default: 1 }}"))),
        True,
    ),
    (
        C.TEMPLATE_PATH_UNSEEN,
        "object, array item and size",
        email(text="{{ profile.person.name }}{{ profile.orders[0].sku }}{{ profile.orders.size }}"),
        False,
    ),
    (C.TEMPLATE_PATH_UNSEEN, "paths unknown", audience(profile_paths_seen=None, estimate=None), False),
    (C.RECURRING_WITHOUT_END, "daily, no end", schedule(**DAILY_9), True),
    (C.RECURRING_WITHOUT_END, "daily with an end", schedule(**DAILY_9, end_at=TOMORROW + timedelta(days=30)), False),
    (C.RECURRING_WITHOUT_END, "once, no end", CLEAN, False),
    (
        C.THROTTLE_TOO_SLOW,
        "1/s for 50,000",
        replace(audience(estimate=AudienceEstimate(50_000, 50_000, 50_000)), throttle=1),
        True,
    ),
    (
        C.THROTTLE_TOO_SLOW,
        "exactly 12 h",
        replace(audience(estimate=AudienceEstimate(43_200, 43_200, 43_200)), throttle=1),
        False,
    ),
    (
        C.THROTTLE_TOO_SLOW,
        "no throttle",
        replace(audience(estimate=AudienceEstimate(10**7, 10**7, 10**7)), throttle=None),
        False,
    ),
    (
        C.BUSINESS_RULES_EXCLUDE_MOST,
        "6 of 10 capped or skipped",
        replace(
            audience(estimate=AudienceEstimate(10, 10, 10)),
            business_rules=RuleEstimate("standard", capped=4, quiet_skipped=2),
        ),
        True,
    ),
    (
        C.BUSINESS_RULES_EXCLUDE_MOST,
        "half, and delays",
        replace(
            audience(estimate=AudienceEstimate(10, 10, 10)),
            business_rules=RuleEstimate("standard", capped=5, delayed=5),
        ),
        False,
    ),
    (C.BUSINESS_RULES_EXCLUDE_MOST, "no rule set", audience(estimate=AudienceEstimate(10, 10, 10)), False),
    (C.LINKS_TO_LOOPBACK, "tracked, loopback, prod", replace(CLEAN, tracking=True, links=LOOPBACK_PROD), True),
    (C.LINKS_TO_LOOPBACK, "unsubscribe link, prod", replace(CLEAN, links=LOOPBACK_PROD), True),
    (
        C.LINKS_TO_LOOPBACK,
        "localhost, tracked SMS",
        replace(SMS, tracking=True, links=LinkFacts("https://api.localhost", production=True)),
        True,
    ),
    (C.LINKS_TO_LOOPBACK, "IPv6 loopback", replace(CLEAN, links=LinkFacts("http://[::1]:8000", True)), True),
    (
        C.LINKS_TO_LOOPBACK,
        "loopback in dev",
        replace(CLEAN, tracking=True, links=replace(LOOPBACK_PROD, production=False)),
        False,
    ),
    (
        C.LINKS_TO_LOOPBACK,
        "public origin",
        replace(CLEAN, tracking=True, links=LinkFacts("https://herald.example.com", True)),
        False,
    ),
    (C.LINKS_TO_LOOPBACK, "untracked transactional", replace(TRANSACTIONAL, links=LOOPBACK_PROD), False),
    (C.LINKS_TO_LOOPBACK, "untracked push", replace(PUSH, links=LOOPBACK_PROD), False),
    (C.LINKS_TO_LOOPBACK, "server unknown", replace(CLEAN, tracking=True), False),
    (C.WAVES_INVALID, "one wave", replace(CLEAN, waves=Waves(1, interval_minutes=30)), True),
    (C.WAVES_INVALID, "interval too short", replace(CLEAN, waves=Waves(3, interval_minutes=10)), True),
    (
        C.WAVES_INVALID,
        "with local time",
        replace(schedule(deliver_at=DeliverAt.PROFILE_TIME_ZONE), waves=Waves(3, interval_minutes=30)),
        True,
    ),
    (C.WAVES_INVALID, "valid", replace(CLEAN, waves=Waves(3, interval_minutes=30)), False),
    (C.WAVES_INVALID, "no waves", CLEAN, False),
    (
        C.WAVE_START_IN_PAST,
        "first start passed",
        replace(CLEAN, waves=Waves(2, start_times=(NOW - timedelta(hours=1), TOMORROW))),
        True,
    ),
    (
        C.WAVE_START_IN_PAST,
        "starts ahead",
        replace(CLEAN, waves=Waves(2, start_times=(TOMORROW, TOMORROW + timedelta(hours=1)))),
        False,
    ),
    (
        C.TRIGGER_CONTEXT_MISSING,
        "key the sample lacks",
        replace(
            triggered(text="{{ context.trigger.order.id }} {{ context.recipient.nme }}"), trigger_context_sample=SAMPLE
        ),
        True,
    ),
    (C.TRIGGER_CONTEXT_MISSING, "no sample", triggered(text="{{ context.trigger.order.id }}"), True),
    (C.TRIGGER_CONTEXT_MISSING, "scheduled campaign", email(text="{{ context.trigger.order.id }}"), True),
    (
        C.TRIGGER_CONTEXT_MISSING,
        "keys, array items and size in the sample",
        replace(
            triggered(
                text="{{ context.trigger.order.id }}{{ context.trigger.items[0].sku }}{{ context.trigger.items.size }}"
                "{{ context.recipient.name }}{{ context.unsubscribeUrl }}"
            ),
            trigger_context_sample=SAMPLE,
        ),
        False,
    ),
    (C.TRIGGER_CONTEXT_MISSING, "no context read", replace(triggered(), trigger_context_sample=None), False),
]


@pytest.mark.parametrize(("code", "case", "snapshot", "raised"), CASES, ids=[f"{c}-{case}" for c, case, _, _ in CASES])
def test_alert_code(code: AlertCode, case: str, snapshot: CampaignSnapshot, raised: bool) -> None:
    alerts = review(snapshot, NOW)
    matching = [alert for alert in alerts if alert.code is code]
    assert bool(matching) is raised, (case, alerts)
    for alert in matching:
        assert alert.severity is severity_of(code)
        assert alert.field and alert.message


@pytest.mark.parametrize(("code", "case", "snapshot", "raised"), CASES, ids=[f"{c}-{case}" for c, case, _, _ in CASES])
def test_no_error_depends_on_the_audience_estimates(
    code: AlertCode, case: str, snapshot: CampaignSnapshot, raised: bool
) -> None:
    """A run's start reviews without the estimates (build_snapshot(estimates=False)) and refuses on errors only:
    they must be the same with and without them."""
    without = replace(
        snapshot, audience=replace(snapshot.audience, estimate=None, profile_paths_seen=None), business_rules=None
    )

    def errors(s: CampaignSnapshot) -> list[tuple[AlertCode, str]]:
        return [(a.code, a.field) for a in review(s, NOW) if a.severity is Severity.ERROR]

    assert errors(without) == errors(snapshot), case


def test_every_code_has_a_positive_and_a_negative_case() -> None:
    positive = {code for code, _, _, raised in CASES if raised}
    negative = {code for code, _, _, raised in CASES if not raised}
    assert set(AlertCode) - positive == set()
    assert set(AlertCode) - negative == set()


def test_the_clean_campaign_has_no_alert_on_any_channel() -> None:
    for snapshot in (CLEAN, SMS, PUSH, IN_APP, schedule(**DAILY_9, end_at=TOMORROW + timedelta(days=7))):
        assert review(snapshot, NOW) == []


def test_severities_follow_design() -> None:
    assert {code for code in AlertCode if severity_of(code) is Severity.WARNING} == WARNINGS
    assert severity_of(C.TEMPLATE_SYNTAX) is Severity.ERROR


def test_errors_block_activation_and_warnings_do_not() -> None:
    assert can_activate(review(email(text=""), NOW))  # EMAIL_TEXT_MISSING is a warning
    assert not can_activate(review(replace(CLEAN, name=""), NOW))


def test_alerts_name_field_and_position() -> None:
    [alert] = review(email(html=CLEAN_HTML + "\n\n  {{ profile.x"), NOW)
    assert (alert.code, alert.field) == (C.TEMPLATE_SYNTAX, "content.email.html")
    assert alert.message.startswith("Line 3, column 3:")
    [unseen] = review(email(subject="Hi {{ profile.person.name.fristName }}"), NOW)
    assert (unseen.field, unseen.message) == (
        "content.email.subject",
        "Line 1, column 7: no profile of the audience has profile.person.name.fristName.",
    )
    [empty] = review(email(html=CLEAN_HTML + '\n<p>\n <a href=" ">x</a>'), NOW)
    assert empty.message == "Empty link at line 3, column 2."


def test_an_empty_draft_reports_the_missing_basics_in_order() -> None:
    codes = [alert.code for alert in review(CampaignSnapshot(), NOW)]
    assert codes == [C.NAME_MISSING, C.ACTION_MISSING, C.AUDIENCE_MISSING, C.NAMESPACE_MISSING]


def test_review_is_deterministic_and_does_not_read_the_clock() -> None:
    late = NOW + timedelta(days=2)
    assert [a.code for a in review(CLEAN, late)] == [C.START_IN_PAST]
    assert review(CLEAN, NOW) == review(CLEAN, NOW) == []


def test_plan() -> None:
    result = plan(replace(schedule(**DAILY_9, timezone="Europe/Paris"), throttle=100), NOW, runs=3)
    assert (result.qualified, result.with_identity, result.contactable) == (1000, 900, 800)
    assert result.excluded_by_reason == (("NO_CONSENT", 100),)
    assert result.reviewed_version == 3
    assert result.estimated_duration == timedelta(seconds=8)
    assert [t.isoformat() for t in result.next_run_times] == [
        "2026-06-03T07:00:00+00:00",  # 09:00 Paris on the 2nd is before the start (14:00 Paris)
        "2026-06-04T07:00:00+00:00",
        "2026-06-05T07:00:00+00:00",
    ]


def test_plan_of_a_draft_without_start_runs_at_activation() -> None:
    result = plan(schedule(start_at=None), NOW)
    assert result.next_run_times == (NOW,)
    assert plan(audience(estimate=None), NOW).estimated_duration is None


def test_estimated_duration_rounds_up() -> None:
    assert estimated_duration(1001, 100) == timedelta(seconds=11)
    assert estimated_duration(0, 100) == timedelta(0)
    assert estimated_duration(10, None) is None
