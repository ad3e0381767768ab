"""A push preset's platforms are used (issue 24): validation sends FCM a dry run per platform it lists (an iOS one
fails on a Firebase project without an APNs key), and the campaign review refuses an audience of Apple tokens on a
preset without IOS and warns of a listed platform its last validation never tried."""

from __future__ import annotations

import json
from typing import Any

from models.presets.preset import MessagePreset
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import create, review
from tests.graphql.test_presets import create as create_preset
from tests.graphql.test_presets import pk_of, validated
from tests.jobs.provider_server import PROJECT, provider_server
from tests.jobs.test_runs import gold_segment


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

    # Apple tokens on a preset without IOS: an error on the audience's namespace; FCM tokens are fine.
    segment = await gold_segment(gql, sandbox)
    apple = await review(gql, sandbox, (await push_campaign(gql, sandbox, android["id"], "APNS", segment))["id"])
    assert push_alerts(apple) == [("ERROR", "PUSH_PLATFORM_NOT_IN_PRESET", "audience.namespace")]
    assert apple["canActivate"] is False
    assert (
        push_alerts(
            await review(gql, sandbox, (await push_campaign(gql, sandbox, android["id"], "FCM", segment))["id"])
        )
        == []
    )

    # Each platform of `both` passed its dry run: no warning; validated before dry runs per platform: a warning each.
    on_both = (await push_campaign(gql, sandbox, both["id"], "APNS", segment))["id"]
    assert push_alerts(await review(gql, sandbox, on_both)) == []
    legacy = [{"check": "push.dry_run", "ok": True, "code": "OK", "message": "", "durationMs": 1}]
    await MessagePreset.filter(id=pk_of(both["id"])).update(checks=legacy)
    warned = await review(gql, sandbox, on_both)
    assert push_alerts(warned) == [("WARNING", "PUSH_PLATFORM_UNVERIFIED", "action.preset")] * 2
    assert warned["canActivate"] is True
