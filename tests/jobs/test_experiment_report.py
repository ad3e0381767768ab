"""`campaignReport` per treatment of a content experiment: a real SPLIT run, opens through the real
tracking endpoint, and each treatment's figures recomputed here from the ledger rows and the requests made."""

from __future__ import annotations

from collections import Counter

import httpx
from strawberry import relay

from models.ledger.delivery import Delivery
from models.reporting.tracking_tokens import TokenPurpose, TokenSigner
from models.tenancy.sandbox import Role
from tests.conftest import TEST_SECRET, GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import activate, active_in_app_preset, audience, create, ready_input
from tests.jobs.test_experiment_runs import treatments
from tests.jobs.test_runs import finished_run

# Treatment A has weight 1 of 6 (treatments()): with 40 profiles, ~2% of experiment keys gave it fewer than the two
# recipients the test opens for; with 120, about one in two million.
AUDIENCE = 120

REPORT = """query($id: ID!, $w: ReportWindowInput) { campaignReport(id: $id, window: $w) {
  ... on CampaignReport { audience excluded holdout uniqueOpens
    treatments { key name targeted excluded sent delivered failed pending opens uniqueOpens clicks uniqueClicks
      unsubscribes openRate clickThroughRate } } } }"""


async def test_the_report_breaks_figures_down_by_treatment(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=AUDIENCE)
    arms = [{**t, "name": f"Variant {t['key']}"} for t in treatments("A", "B", "C")]
    experiment = {"treatments": arms, "holdoutShare": 0.2}
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id, experiment=experiment))
    assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
    run = await finished_run(gql, campaign["id"])
    rows = await Delivery.filter(run_id=run.id).order_by("profile_id")
    by_key = {k: [r for r in rows if r.treatment == k] for k in ("A", "B", "C")}
    assert all(by_key.values()), {k: len(v) for k, v in by_key.items()}

    # Opens: the first two recipients of A (the first one twice), the first of B; C none.
    signer = TokenSigner(TEST_SECRET)
    opened = [by_key["A"][0], by_key["A"][0], by_key["A"][1], by_key["B"][0]]
    async with httpx.AsyncClient(base_url=server.settings.public_url, timeout=30) as http:
        for row in opened:
            answer = await http.get(f"/t/o/{signer.sign(TokenPurpose.OPEN, row.id)}")
            assert answer.status_code == 200 and answer.content.startswith(b"GIF")
    opens = Counter(r.treatment for r in opened)
    unique_opens = Counter(r.treatment for r in {r.id: r for r in opened}.values())

    held = sum(1 for r in rows if r.reason == "HOLDOUT")
    for window in (None, {"runId": str(relay.GlobalID("CampaignRun", str(run.id)))}):
        got = (await gql(REPORT, {"id": campaign["id"], "w": window}, key=sandbox.keys[Role.VIEWER]))["campaignReport"]
        assert (got["audience"], got["excluded"], got["holdout"]) == (AUDIENCE, held, held) and 0 < held < AUDIENCE
        assert got["uniqueOpens"] == 3
        assert [t["key"] for t in got["treatments"]] == ["A", "B", "C"]
        for entry in got["treatments"]:
            key, mine = entry["key"], by_key[entry["key"]]
            sent = sum(1 for r in mine if r.status.value == "SENT")
            assert sent == len(mine)
            assert entry == {
                "key": key,
                "name": f"Variant {key}",
                "targeted": len(mine),
                "excluded": 0,
                "sent": sent,
                "delivered": sent,
                "failed": 0,
                "pending": 0,
                "opens": opens[key],
                "uniqueOpens": unique_opens[key],
                "clicks": 0,
                "uniqueClicks": 0,
                "unsubscribes": 0,
                "openRate": unique_opens[key] / sent,
                "clickThroughRate": 0.0,
            }
        # Every treated row is in exactly one entry; the rest is the holdout.
        assert sum(t["targeted"] for t in got["treatments"]) + held == AUDIENCE

    # A campaign without an experiment: no entries, no holdout.
    plain = await create(gql, sandbox, ready_input(preset_id, segment_id))
    got = (await gql(REPORT, {"id": plain["id"], "w": None}, key=sandbox.keys[Role.VIEWER]))["campaignReport"]
    assert (got["treatments"], got["holdout"]) == ([], 0)
