"""An SMS whose request went but whose answer never came is not resent blindly (issue 24): it is held
UNCONFIRMED, settled by Twilio's status callback (found by the delivery key in the callback URL, signed with
twilio's own RequestValidator), or when the window ends by the policy: FAILED UNCONFIRMED_TIMEOUT (at most once,
the default) or sent again (SMS_UNCONFIRMED_POLICY=RESEND, at least once). Settled either way, the send has its
`delivery.*` webhook events as any other outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from twilio.request_validator import RequestValidator

from jobs.channels.base import FailureCode, SendStatus
from models.campaigns.campaign import CampaignRun, RunStatus
from models.ledger.counts import ledger_counts
from models.ledger.delivery import Delivery, DeliveryStatus
from models.webhooks.rules import new_secret
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.drain import drain_jobs as run_due_jobs
from tests.graphql.test_campaigns import activate, create
from tests.graphql.test_presets import create as create_preset
from tests.graphql.test_presets import validated
from tests.graphql.test_profiles import upsert
from tests.jobs.provider_server import ACCOUNT_SID, AUTH_TOKEN, provider_server
from tests.jobs.test_channels_sms import adapter_for, sms
from tests.jobs.test_run_pause import run_of
from tests.jobs.test_runs import gold_segment
from tests.jobs.test_webhook_events import _endpoint, _fanned_out

NUMBERS = ["+14155550001", "+14155550002"]


async def test_a_timeout_after_the_request_went_is_unconfirmed_not_a_retry() -> None:
    async with provider_server() as providers:
        state = providers.fresh()
        state.answer_delay = 2.0
        adapter = adapter_for(state.base_url, timeout=0.3, status_callback="https://herald.example/webhooks/sms/twilio")
        try:
            [result] = await adapter.send_batch(sms(1))
        finally:
            await adapter.close()
    assert (result.status, result.reason) == (SendStatus.UNCONFIRMED, FailureCode.TIMEOUT)
    assert len(state.sms) == 1  # the provider has it: a retry would text the recipient twice
    assert state.sms[0]["StatusCallback"].startswith("https://herald.example/webhooks/sms/twilio?delivery=")


async def _sms_campaign(gql: GraphQLClient, sandbox: SandboxKeys, base_url: str) -> str:
    preset = await create_preset(
        gql,
        sandbox.admin,
        {
            "name": "texts",
            "channel": "SMS",
            "category": "TRANSACTIONAL",
            "settings": {
                "sms": {
                    "sender": "+14155550100",
                    "providerBaseUrl": base_url,
                    "accountSid": ACCOUNT_SID,
                    "authToken": AUTH_TOKEN,
                }
            },
        },
    )
    assert (await validated(gql, sandbox.admin, preset["id"]))["status"] == "ACTIVE"
    await upsert(
        gql,
        sandbox.admin,
        [
            {
                "identities": [{"namespace": "Email", "value": f"u{i}@example.com"}],
                "attributes": {"tier": "gold", "mobilePhone": {"number": n}},
            }
            for i, n in enumerate(NUMBERS)
        ],
    )
    campaign = await create(
        gql,
        sandbox,
        {
            "name": "Codes",
            "category": "TRANSACTIONAL",
            "action": {"channel": "SMS", "presetId": preset["id"]},
            "content": {"sms": {"text": "Your code is 1234"}},
            "audience": {"segmentId": await gold_segment(gql, sandbox), "namespaceCode": "Email"},
        },
    )
    assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
    return campaign["id"]


async def window_ended(run: CampaignRun, delivery_ids: list[int]) -> None:
    """The window (SMS_UNCONFIRMED_WINDOW_SECONDS, 30 min) passes: the rows' deadline and the run's lease, which
    the run holds until then (its deferred job wakes it), are moved into the past instead of waiting."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    await Delivery.filter(id__in=delivery_ids).update(next_attempt_at=past)
    await CampaignRun.filter(id=run.id).update(lease_until=past)


def _settings(app: Starlette, **changes: Any):
    return app.state.settings.model_copy(update={"provider_timeout_seconds": 0.3, **changes})


async def _callback(url: str, form: dict[str, str], signature: str | None = None) -> httpx.Response:
    """POSTs `form` to the callback URL Herald gave Twilio, signed by twilio's RequestValidator (or `signature`)."""
    signature = signature or RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            url,
            content=urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        )


async def test_unconfirmed_sms_are_settled_by_the_status_callback_or_failed_once_the_window_ends(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, app: Starlette
) -> None:
    endpoint = await _endpoint(sandbox, "http://127.0.0.1:9/hook", new_secret(), ("delivery.sent", "delivery.failed",
                               "delivery.delivered", "delivery.bounced"))  # fmt: skip
    async with provider_server() as providers:
        state = providers.fresh()
        campaign_id = await _sms_campaign(gql, sandbox, providers.base_url)
        state.answer_delay = 2.0
        await run_due_jobs(_settings(app), app.state.redis)
        run = await run_of(campaign_id)
        rows = await Delivery.filter(run_id=run.id).order_by("address")
        assert [(d.status, d.provider_message_id, d.reason) for d in rows] == [
            (DeliveryStatus.UNCONFIRMED, None, "TIMEOUT")
        ] * 2
        assert await _fanned_out(endpoint) == []  # not an outcome yet
        # Held, not resent: the run waits (counted pending) and each SMS reached the provider once.
        assert run.status is RunStatus.RUNNING and len(state.sms) == 2
        counts = await ledger_counts(run.id)
        assert (counts.figures.pending, counts.figures.unconfirmed) == (2, 2)

        # Twilio's callback for the first: no SID known here, the delivery key in its callback URL finds it.
        first = next(m for m in state.sms if m["To"] == NUMBERS[0])
        sid = state.sids[first["idempotency_key"]]
        form = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID, "To": NUMBERS[0]}
        signature = RequestValidator(AUTH_TOKEN).compute_signature(first["StatusCallback"], form)
        tampered = await _callback(first["StatusCallback"], {**form, "MessageStatus": "failed"}, signature)
        assert tampered.status_code == 403
        assert (await Delivery.get(id=rows[0].id)).status is DeliveryStatus.UNCONFIRMED
        answer = await _callback(first["StatusCallback"], form)
        assert (answer.status_code, answer.json()) == (200, {"outcome": "APPLIED"})
        settled = await Delivery.get(id=rows[0].id)
        assert (settled.status, settled.provider_message_id) == (DeliveryStatus.DELIVERED, sid)

        # The window of the second ends with no callback: FAILED UNCONFIRMED_TIMEOUT, never sent twice.
        await window_ended(run, [rows[1].id])
        await run_due_jobs(_settings(app), app.state.redis, until=datetime.now(UTC) + timedelta(hours=1))
        second = await Delivery.get(id=rows[1].id)
        assert (second.status, second.reason) == (DeliveryStatus.FAILED, "UNCONFIRMED_TIMEOUT")
        assert len(state.sms) == 2
    run = await CampaignRun.get(id=run.id)
    assert run.status is RunStatus.SUCCEEDED and (run.delivered, run.failed, run.pending) == (1, 1, 0)
    # The callback made the first SENT then DELIVERED, the window the second FAILED: an event each, as for any send.
    events = [(e["type"], e["data"]["runId"], e["data"]["deliveries"]) for e in await _fanned_out(endpoint)]
    first, second = (rows[0].id, rows[0].profile_id), (rows[1].id, rows[1].profile_id)
    assert events == [
        ("delivery.sent", run.id, [{"deliveryId": first[0], "profileId": first[1], "reason": None}]),
        ("delivery.delivered", run.id, [{"deliveryId": first[0], "profileId": first[1], "reason": None}]),
        (
            "delivery.failed",
            run.id,
            [{"deliveryId": second[0], "profileId": second[1], "reason": "UNCONFIRMED_TIMEOUT"}],
        ),
    ]


async def test_the_resend_policy_sends_an_unconfirmed_sms_again_once_the_window_ends(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, app: Starlette
) -> None:
    async with provider_server() as providers:
        state = providers.fresh()
        campaign_id = await _sms_campaign(gql, sandbox, providers.base_url)
        state.answer_delay = 2.0
        settings = _settings(app, sms_unconfirmed_policy="RESEND")
        await run_due_jobs(settings, app.state.redis)
        run = await run_of(campaign_id)
        assert {d.status for d in await Delivery.filter(run_id=run.id)} == {DeliveryStatus.UNCONFIRMED}
        state.answer_delay = 0.0
        await window_ended(run, [d.id for d in await Delivery.filter(run_id=run.id)])
        await run_due_jobs(settings, app.state.redis, until=datetime.now(UTC) + timedelta(hours=1))
        # At least once: each number got the message again, under the same delivery key.
        assert sorted(m["To"] for m in state.sms) == sorted(NUMBERS * 2)
        assert len({m["idempotency_key"] for m in state.sms}) == 2
    run = await CampaignRun.get(id=run.id)
    assert run.status is RunStatus.SUCCEEDED and run.delivered == 2
    assert {d.status for d in await Delivery.filter(run_id=run.id)} == {DeliveryStatus.SENT}
