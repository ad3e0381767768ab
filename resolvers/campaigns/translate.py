"""GraphQL inputs → campaign column values (as stored). The domain validates them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.campaigns.experiment_rules import ExperimentFallback, ExperimentMetric, ExperimentMode
from models.campaigns.values import CampaignNotFoundError
from resolvers.campaigns.inputs import (
    CampaignActionInput,
    CampaignAudienceInput,
    CampaignContentInput,
    CampaignCreateInput,
    CampaignScheduleInput,
    CampaignTrackingInput,
    CampaignUpdateInput,
    CampaignWavesInput,
    ExperimentInput,
)
from resolvers.nodes import pk_of


def reference_pk(value: Any, type_name: str, field: str) -> int:
    """A global id of `type_name` (or a plain database id) → database id; anything else is not found."""
    pk = pk_of(value, type_name)
    if pk is None:
        raise CampaignNotFoundError(field, str(value)[:100])
    return pk


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def action_values(action: CampaignActionInput | None) -> dict[str, Any]:
    if action is None:
        return {"channel": None, "preset_id": None}
    preset_id = reference_pk(action.preset_id, "MessagePreset", "input.action.presetId") if action.preset_id else None
    return {"channel": action.channel.value, "preset_id": preset_id}


def content_value(content: CampaignContentInput | None) -> dict[str, Any]:
    if content is None:
        return {}
    stored: dict[str, Any] = {}
    if content.email is not None:
        e = content.email
        stored["email"] = {"subject": e.subject, "preheader": e.preheader, "html": e.html, "text": e.text}
    if content.sms is not None:
        stored["sms"] = {"text": content.sms.text}
    if content.push is not None:
        p = content.push
        stored["push"] = {
            "title": p.title,
            "body": p.body,
            "deepLink": p.deep_link,
            # Stored as given: values that are not strings are refused by validate_values, never str()-ed.
            "customData": p.custom_data if p.custom_data is not None else {},
        }
    if content.in_app is not None:
        a = content.in_app
        stored["inApp"] = {
            "title": a.title,
            "body": a.body,
            "buttons": [{"label": b.label, "url": b.url} for b in a.buttons or []],
        }
    return stored


def experiment_value(experiment: ExperimentInput | None) -> dict[str, Any] | None:
    """The stored experiment (without its key: the domain adds or keeps it)."""
    if experiment is None:
        return None
    return {
        "metric": ExperimentMetric(experiment.metric).value,
        "mode": ExperimentMode(experiment.mode).value,
        "holdoutShare": experiment.holdout_share,
        "testShare": experiment.test_share,
        "testDurationSeconds": experiment.test_duration_seconds,
        "fallback": ExperimentFallback(experiment.fallback).value,
        "treatments": [
            {"key": t.key, "name": t.name, "weight": t.weight, "content": content_value(t.content)}
            for t in experiment.treatments
        ],
    }


def tracking_value(tracking: CampaignTrackingInput | None) -> dict[str, bool]:
    tracking = tracking or CampaignTrackingInput()
    return {"opens": tracking.opens, "clicks": tracking.clicks}


def audience_values(audience: CampaignAudienceInput | None) -> dict[str, Any]:
    if audience is None:
        return {"segment_id": None, "namespace_code": None}
    segment_id = (
        reference_pk(audience.segment_id, "Segment", "input.audience.segmentId") if audience.segment_id else None
    )
    return {"segment_id": segment_id, "namespace_code": audience.namespace_code}


def schedule_value(schedule: CampaignScheduleInput | None) -> dict[str, Any]:
    if schedule is None:
        return {}
    return {
        "startAt": _iso(schedule.start_at),
        "endAt": _iso(schedule.end_at),
        "frequency": schedule.frequency.value,
        "timeOfDay": schedule.time_of_day,
        "daysOfWeek": [int(d.value) for d in schedule.days_of_week or []],
        "daysOfMonth": list(schedule.days_of_month or []),
        "timeZone": schedule.time_zone,
        "deliverAt": schedule.deliver_at.value,
        "onPassedTime": schedule.on_passed_time.value,
    }


def waves_value(waves: CampaignWavesInput | None) -> dict[str, Any] | None:
    if waves is None:
        return None
    return {
        "count": waves.count,
        "sizing": waves.sizing.value,
        "sizes": list(waves.sizes or []),
        "intervalMinutes": waves.interval_minutes,
        "startTimes": [_iso(t) for t in waves.start_times or []],
    }


def create_values(data: CampaignCreateInput) -> dict[str, Any]:
    return {
        "name": data.name,
        "description": data.description,
        "tags": list(data.tags),
        "type": data.type.value,
        "category": data.category.value,
        **action_values(data.action),
        "content": content_value(data.content),
        "tracking": tracking_value(data.tracking),
        **audience_values(data.audience),
        "schedule": schedule_value(data.schedule),
        "throttle_per_second": data.throttle,
        "experiment": experiment_value(data.experiment),
        "waves": waves_value(data.waves),
        "business_rule_set_id": _rule_set_pk(data.business_rule_set_id),
        "priority": data.priority,
        "trigger_context_sample": data.trigger_context_sample,
    }


def _rule_set_pk(value: str | None) -> int | None:
    return reference_pk(value, "BusinessRuleSet", "input.businessRuleSetId") if value is not None else None


def update_values(data: CampaignUpdateInput) -> dict[str, Any]:
    """Only the fields present in the input (strawberry.Maybe: absent = unchanged, null = cleared)."""
    values: dict[str, Any] = {}
    simple = {
        "name": "name",
        "description": "description",
        "throttle": "throttle_per_second",
        "trigger_context_sample": "trigger_context_sample",
    }
    for attr, column in simple.items():
        given = getattr(data, attr)
        if given is not None:
            values[column] = given.value
    if data.tags is not None:
        values["tags"] = list(data.tags.value or [])
    if data.type is not None:
        values["type"] = data.type.value.value
    if data.category is not None:
        values["category"] = data.category.value.value
    if data.action is not None:
        values.update(action_values(data.action.value))
    if data.content is not None:
        values["content"] = content_value(data.content.value) if data.content.value is not None else None
    if data.tracking is not None:
        values["tracking"] = tracking_value(data.tracking.value)
    if data.audience is not None:
        values.update(audience_values(data.audience.value))
    if data.schedule is not None:
        values["schedule"] = schedule_value(data.schedule.value)
    if data.experiment is not None:
        values["experiment"] = experiment_value(data.experiment.value)
    if data.waves is not None:
        values["waves"] = waves_value(data.waves.value)
    if data.business_rule_set_id is not None:
        values["business_rule_set_id"] = _rule_set_pk(data.business_rule_set_id.value)
    if data.priority is not None:
        values["priority"] = data.priority.value
    return values
