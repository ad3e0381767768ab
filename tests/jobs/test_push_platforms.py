"""A push preset's platforms are used (issue 24): validation sends FCM a dry run per platform it lists (an iOS one
fails on a Firebase project without an APNs key), and the campaign review refuses an audience of Apple tokens on a
preset without IOS (and on any preset: FCM takes no APNs token) and warns of a listed platform its last validation
never tried."""

from __future__ import annotations

import json
from typing import Any

from models.campaigns.campaign import Campaign, RunStatus
from models.presets.preset import MessagePreset
from models.tenancy.identity import IdentityNamespace
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import activate, create, review
from tests.graphql.test_presets import create as create_preset
from tests.graphql.test_presets import pk_of, validated
from tests.graphql.test_profiles import upsert
from tests.jobs.provider_server import PROJECT, provider_server
from tests.jobs.test_runs import finished_run, gold_segment


def push_preset(name: str, base_url: str, account: dict[str, Any], platforms: list[str]) -> dict[str, Any]:
    settings = {
        "platforms": platforms,
        "appId": "com.example.app",
        "fcmProjectId": PROJECT,
        "providerBaseUrl": base_url,
        "serviceAccountJson": json.dumps(account),
    }
    return {"name": name, "channel": "PUSH", "category": "MARKETING", "settings": {"push": settings}}


async def push_campaign(
    gql: GraphQLClient, sandbox: SandboxKeys, preset_id: str, namespace: str, segment_id: str
) -> dict[str, Any]:
    return await create(
        gql,
        sandbox,
        {
            "name": f"Push to {namespace}",
            "action": {"channel": "PUSH", "presetId": preset_id},
            "content": {"push": {"title": "Sale", "body": "Today"}},
            "audience": {"segmentId": segment_id, "namespaceCode": namespace},
        },
    )


def push_alerts(reviewed: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(a["severity"], a["code"], a["field"]) for a in reviewed["alerts"] if a["code"].startswith("PUSH_")]


async def test_each_platform_is_validated_and_reviewed(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    async with provider_server() as providers:
        state = providers.fresh()
        both = await create_preset(
            gql, sandbox.admin, push_preset("both", providers.base_url, providers.account, ["ANDROID", "IOS"])
        )
        # The Firebase project has no APNs key: the IOS dry run fails, the preset with it.
        state.no_apns_key = True
        failed = await validated(gql, sandbox.admin, both["id"])
        assert failed["status"] == "FAILED"
        assert [(c["check"], c["ok"], c["code"]) for c in failed["checks"]][-2:] == [
            ("push.dry_run.android", True, "OK"),
            ("push.dry_run.ios", False, "AUTH_FAILED"),
        ]
        assert "APNs credentials" in failed["checks"][-1]["message"]
        state.no_apns_key = False
        assert (await validated(gql, sandbox.admin, both["id"]))["status"] == "ACTIVE"

        android = await create_preset(
            gql, sandbox.admin, push_preset("android", providers.base_url, providers.account, ["ANDROID"])
        )
        assert (await validated(gql, sandbox.admin, android["id"]))["status"] == "ACTIVE"

    # Apple tokens on a preset without IOS: an error on the audience's namespace (and FCM takes no APNs token: see
    # the next test); FCM tokens are fine.
    segment = await gold_segment(gql, sandbox)
    apple = await review(gql, sandbox, (await push_campaign(gql, sandbox, android["id"], "APNS", segment))["id"])
    assert push_alerts(apple) == [
        ("ERROR", "PUSH_NAMESPACE_NOT_FCM", "audience.namespace"),
        ("ERROR", "PUSH_PLATFORM_NOT_IN_PRESET", "audience.namespace"),
    ]
    assert apple["canActivate"] is False
    assert (
        push_alerts(
            await review(gql, sandbox, (await push_campaign(gql, sandbox, android["id"], "FCM", segment))["id"])
        )
        == []
    )

    # Each platform of `both` passed its dry run: no warning; validated before dry runs per platform: a warning each.
    on_both = (await push_campaign(gql, sandbox, both["id"], "FCM", segment))["id"]
    assert push_alerts(await review(gql, sandbox, on_both)) == []
    legacy = [{"check": "push.dry_run", "ok": True, "code": "OK", "message": "", "durationMs": 1}]
    await MessagePreset.filter(id=pk_of(both["id"])).update(checks=legacy)
    warned = await review(gql, sandbox, on_both)
    assert push_alerts(warned) == [("WARNING", "PUSH_PLATFORM_UNVERIFIED", "action.preset")] * 2
    assert warned["canActivate"] is True


async def test_apple_tokens_are_refused_before_any_send(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    """Herald sends push through FCM only, and FCM takes no raw APNs device token: an APNS audience is a review
    error even on an IOS preset (activation refused), and a campaign activated on one before this check fails its
    run on the review, before FCM is sent anything."""
    async with provider_server() as providers:
        state = providers.fresh()
        ios = await create_preset(
            gql, sandbox.admin, push_preset("ios", providers.base_url, providers.account, ["IOS"])
        )
        assert (await validated(gql, sandbox.admin, ios["id"]))["status"] == "ACTIVE"
        apns_token = "a1" * 32  # the 64 hex digits an iOS app gets from APNs
        profiles = [
            {"identities": [{"namespace": "APNS", "value": apns_token}, {"namespace": "FCM", "value": "fcm-token-1"}]}
        ]
        await upsert(gql, sandbox.admin, [{**p, "attributes": {"tier": "gold"}} for p in profiles])
        segment = await gold_segment(gql, sandbox)

        apple = (await push_campaign(gql, sandbox, ios["id"], "APNS", segment))["id"]
        reviewed = await review(gql, sandbox, apple)
        assert push_alerts(reviewed) == [("ERROR", "PUSH_NAMESPACE_NOT_FCM", "audience.namespace")]
        assert "APNS" in next(a["message"] for a in reviewed["alerts"] if a["code"] == "PUSH_NAMESPACE_NOT_FCM")
        refused = await activate(gql, sandbox, apple)
        assert refused["__typename"] == "ReviewFailedError"
        assert ("ERROR", "PUSH_NAMESPACE_NOT_FCM", "audience.namespace") in [
            (a["severity"], a["code"], a["field"]) for a in refused["alerts"]
        ]

        # Activated on FCM tokens, then (as a campaign activated before the check) on APNS ones.
        fcm = (await push_campaign(gql, sandbox, ios["id"], "FCM", segment))["id"]
        assert (await activate(gql, sandbox, fcm))["__typename"] == "CampaignActivateSuccess"
        campaign = await Campaign.get(id=pk_of(fcm))
        apns_namespace = await IdentityNamespace.get(sandbox_id=campaign.sandbox_id, code="APNS")
        await Campaign.filter(id=campaign.id).update(namespace_id=apns_namespace.id)
        run = await finished_run(gql, fcm)
        assert run.status is RunStatus.FAILED
        assert "PUSH_NAMESPACE_NOT_FCM" in (run.failure_reason or "")
        assert state.push == []
