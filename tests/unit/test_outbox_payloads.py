"""Typed event payloads: what is written is what is read back; malformed input is refused by name."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from models.campaigns.rules import CampaignStatus
from models.outbox.payloads import (
    CAMPAIGN_RUN_PROGRESS_TOPIC,
    CAMPAIGN_STATUS_TOPIC,
    CampaignStatusChanged,
    PayloadError,
    RunProgress,
    WaveProgress,
    envelope,
    open_envelope,
    parse,
)

AT = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
STATUS = CampaignStatusChanged(
    campaign_id=4, status=CampaignStatus.FAILED, previous_status=CampaignStatus.LIVE, version=7, at=AT,
    actor="system:worker",
)  # fmt: skip
PROGRESS = RunProgress(
    campaign_id=4, run_id=9, status="SUCCEEDED", targeted=10, excluded=2, sent=9, failed=1, pending=0,
    rate_per_second=12.5, eta_seconds=None, at=AT, final=True,
)  # fmt: skip
WAVED = replace(
    PROGRESS,
    waves=(
        WaveProgress(wave=1, starts_at=AT, finished=True, targeted=4, excluded=1, sent=4, delivered=4),
        WaveProgress(wave=2, starts_at=None, finished=False, targeted=6, excluded=1, sent=5, failed=1, pending=0),
    ),
)
WAVE = WAVED.to_json()["waves"][0]


@pytest.mark.parametrize("payload", [STATUS, PROGRESS, WAVED])
def test_round_trip(payload: CampaignStatusChanged | RunProgress) -> None:
    assert parse(payload.topic, payload.to_json()) == payload
    assert open_envelope(payload.topic, envelope(12, payload.to_json())) == (12, payload)


def test_progress_written_before_waves_reads_as_without_waves() -> None:
    older = {key: value for key, value in PROGRESS.to_json().items() if key != "waves"}
    assert parse(CAMPAIGN_RUN_PROGRESS_TOPIC, older) == PROGRESS


@pytest.mark.parametrize(
    ("topic", "data", "named"),
    [
        (CAMPAIGN_STATUS_TOPIC, {**STATUS.to_json(), "at": None}, "'at' is missing"),
        (CAMPAIGN_STATUS_TOPIC, {**STATUS.to_json(), "at": "yesterday"}, "'at' is not an ISO 8601 time"),
        (CAMPAIGN_STATUS_TOPIC, {**STATUS.to_json(), "at": "2026-12-06T07:00:00"}, "'at' has no time zone"),
        (CAMPAIGN_STATUS_TOPIC, {**STATUS.to_json(), "status": "SIDEWAYS"}, "'status' is not a campaign status"),
        (CAMPAIGN_STATUS_TOPIC, {**STATUS.to_json(), "version": "7"}, "'version' is str"),
        (CAMPAIGN_STATUS_TOPIC, {**STATUS.to_json(), "campaignId": True}, "'campaignId' is bool"),
        (CAMPAIGN_RUN_PROGRESS_TOPIC, {**PROGRESS.to_json(), "final": 1}, "'final' is int"),
        (CAMPAIGN_RUN_PROGRESS_TOPIC, {**PROGRESS.to_json(), "status": "DONE"}, "'status' is not a run status"),
        (CAMPAIGN_RUN_PROGRESS_TOPIC, [], "not an object"),
        (CAMPAIGN_RUN_PROGRESS_TOPIC, {**PROGRESS.to_json(), "waves": {}}, "'waves' is dict"),
        (CAMPAIGN_RUN_PROGRESS_TOPIC, {**PROGRESS.to_json(), "waves": [3]}, "a wave is int"),
        (CAMPAIGN_RUN_PROGRESS_TOPIC, {**PROGRESS.to_json(), "waves": [{**WAVE, "sent": "4"}]}, "'sent' is str"),
        (CAMPAIGN_RUN_PROGRESS_TOPIC, {**PROGRESS.to_json(), "waves": [{**WAVE, "startsAt": "9am"}]}, "'startsAt'"),
        ("campaign.unknown", {}, "unknown topic"),
    ],
)
def test_malformed_payloads_are_refused_naming_the_field(topic: str, data: object, named: str) -> None:
    with pytest.raises(PayloadError, match=named):
        parse(topic, data)


def test_an_envelope_needs_data_and_an_integer_id() -> None:
    with pytest.raises(PayloadError, match="not an event envelope"):
        open_envelope(CAMPAIGN_STATUS_TOPIC, STATUS.to_json())
    with pytest.raises(PayloadError, match="'id' is not an integer"):
        open_envelope(CAMPAIGN_STATUS_TOPIC, envelope("12", STATUS.to_json()))  # type: ignore[arg-type]
    assert open_envelope(CAMPAIGN_STATUS_TOPIC, envelope(None, STATUS.to_json())) == (None, STATUS)
