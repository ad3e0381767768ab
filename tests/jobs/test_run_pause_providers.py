"""Twilio answering 401 and Google's token endpoint refusing the FCM service account pause the run (issue 24):
the refused sends stay QUEUED without an attempt, nothing is suppressed, the preset shows the refusal."""

from __future__ import annotations

import json
from typing import Any

from models.audience.entities import SuppressionEntry
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.ledger.delivery import DeliveryStatus
from models.presets.preset import MessagePreset
from models.presets.rules import PresetStatus
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import activate, create
from tests.graphql.test_presets import create as create_preset
from tests.graphql.test_presets import validated
from tests.graphql.test_profiles import upsert
from tests.jobs.provider_server import ACCOUNT_SID, AUTH_TOKEN, PROJECT, Scripted, provider_server
from tests.jobs.test_run_pause import run_of
from tests.jobs.test_runs import gold_segment, ledger


async def _campaign(gql: GraphQLClient, sandbox: SandboxKeys, preset_input: dict[str, Any], **campaign: Any) -> str:
    preset = await create_preset(gql, sandbox.admin, preset_input)
    assert (await validated(gql, sandbox.admin, preset["id"]))["status"] == "ACTIVE"
    created = await create(
        gql,
        sandbox,
        {
            "name": "Paused by the provider",
            "category": "TRANSACTIONAL",
            "action": {"channel": preset_input["channel"], "presetId": preset["id"]},
            "audience": {"segmentId": await gold_segment(gql, sandbox), **campaign.pop("audience")},
            **campaign,
        },
    )
    activated = await activate(gql, sandbox, created["id"])
    assert activated["__typename"] == "CampaignActivateSuccess", activated
    return created["id"]


async def _assert_paused(campaign_id: str, reason: str, count: int) -> CampaignRun:
    run = await run_of(campaign_id)
    assert (run.status, run.pause_reason and run.pause_reason.value) == (RunStatus.PAUSED, reason)
    rows = (await ledger(run.id)).values()
    assert [(d.status, d.attempts, d.reason) for d in rows] == [(DeliveryStatus.QUEUED, 0, None)] * count
    assert not await SuppressionEntry.filter(sandbox_id=run.sandbox_id).exists()
    return run


async def test_twilio_answering_401_pauses_the_run(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    async with provider_server() as providers:
        state = providers.fresh()
        preset_input = {
            "name": "texts",
            "channel": "SMS",
            "category": "TRANSACTIONAL",
            "settings": {
                "sms": {
                    "sender": "+14155550100",
                    "providerBaseUrl": providers.base_url,
                    "accountSid": ACCOUNT_SID,
                    "authToken": AUTH_TOKEN,
                }
            },
        }
        numbers = [f"+1415555{i:04d}" for i in range(5)]
        await upsert(
            gql,
            sandbox.admin,
            [
                {
                    "identities": [{"namespace": "Email", "value": f"s{i}@example.com"}],
                    "attributes": {"tier": "gold", "mobilePhone": {"number": n}},
                }
                for i, n in enumerate(numbers)
            ],
        )
        # The account's token was rotated at Twilio after the preset was validated: every send gets 401 / 20003.
        state.twilio_script.extend(
            Scripted(401, {"code": 20003, "message": "Authenticate", "status": 401}) for _ in range(50)
        )
        campaign_id = await _campaign(
            gql,
            sandbox,
            preset_input,
            content={"sms": {"text": "Your code"}},
            audience={"namespaceCode": "Email"},
        )
        await gql.drain_jobs()
        assert state.sms == []
    run = await _assert_paused(campaign_id, "CREDENTIALS_REFUSED", 5)
    assert "401" in (run.pause_detail or "")
    await _assert_preset_alert(run, "AUTH_FAILED")


async def test_fcm_refusing_the_service_account_token_pauses_the_run(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    async with provider_server() as providers:
        state = providers.fresh()
        preset_input = {
            "name": "pushes",
            "channel": "PUSH",
            "category": "TRANSACTIONAL",
            "settings": {
                "push": {
                    "platforms": ["ANDROID"],
                    "appId": "com.example.app",
                    "fcmProjectId": PROJECT,
                    "providerBaseUrl": providers.base_url,
                    "serviceAccountJson": json.dumps(providers.account),
                }
            },
        }
        await upsert(
            gql,
            sandbox.admin,
            [
                {"identities": [{"namespace": "FCM", "value": f"fcm-token-{i}"}], "attributes": {"tier": "gold"}}
                for i in range(4)
            ],
        )
        campaign_id = await _campaign(
            gql,
            sandbox,
            preset_input,
            content={"push": {"title": "Hi", "body": "There"}},
            audience={"namespaceCode": "FCM"},
        )
        # The service account's key was deleted in Google Cloud after validation: the token endpoint refuses it.
        state.issued_tokens.clear()
        state.token_script.extend(
            Scripted(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}) for _ in range(20)
        )
        await gql.drain_jobs()
        assert state.push == []
    run = await _assert_paused(campaign_id, "CREDENTIALS_REFUSED", 4)
    assert "invalid_grant" in (run.pause_detail or "") or "Invalid JWT" in (run.pause_detail or "")
    await _assert_preset_alert(run, "AUTH_FAILED")


async def _assert_preset_alert(run: CampaignRun, code: str) -> None:
    campaign = await Campaign.get(id=run.campaign_id)
    preset = await MessagePreset.get(id=campaign.preset_id)
    assert preset.status is PresetStatus.FAILED
    assert [(c["check"], c["code"]) for c in preset.checks] == [("sending", code)]
