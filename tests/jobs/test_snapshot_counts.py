"""The counts a run takes right after its snapshot (issue 22: at 1,000,000 rows two scans of the fresh ledger ran as
the sending began): on PostgreSQL the snapshot statement counts the rows it inserts, on SQLite the ledger is
counted; either way they are what ledger_counts reads, they are the run's stored counters before anything is sent,
and the sending loop does not count again at its first batch."""

from __future__ import annotations

from typing import Any

import pytest

import jobs.runs
from jobs.context import job_ctx
from jobs.progress import Progress
from jobs.runs import execute_run
from models.campaigns.campaign import CampaignRun
from models.ledger.counts import Counts, ledger_counts
from models.sql.params import Dialect
from models.sql.reads import dialect_of
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_campaigns import activate, active_in_app_preset, audience, create, ready_input
from tests.graphql.test_profiles import upsert
from tests.jobs.test_dispatcher import pk
from tests.jobs.test_experiment_runs import treatments
from tests.jobs.test_inapp_direct import live_in_app_run
from tests.sql_counter import count_sql

LEDGER_SCAN = "GROUP BY wave, status, reason, bounce_type"  # ledger_counts' statement


async def test_the_counts_after_the_snapshot_are_the_ledger_s_and_stored_before_sending(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _row, run = await live_in_app_run(gql, sandbox, 3, "c", "Hi")
    # In the segment but without an Email identity: excluded, NO_IDENTITY.
    no_email = {"identities": [{"namespace": "CRMID", "value": "crm-1"}], "attributes": {"tier": "gold"}}
    await upsert(gql, sandbox.admin, [no_email])
    seen: dict[str, Any] = {}
    statements: list[str] = []

    async def before_sending(
        ctx: dict[str, Any], run: CampaignRun, campaign: Any, lease: float, counted: Counts | None = None
    ) -> dict[str, Any]:
        seen["scans"] = [s for s in statements if LEDGER_SCAN in s]  # the run's, before this test's own below
        seen.update(counted=counted, stored=await CampaignRun.get(id=run.id), ledger=await ledger_counts(run.id))
        seen["serial"] = await ledger_counts(run.id, serial=True)  # the sending loop's, without parallel workers
        return {"runId": run.id, "status": "stopped before sending"}

    monkeypatch.setattr(jobs.runs, "_send_until_done", before_sending)
    with count_sql() as counted_statements:
        statements = counted_statements
        await execute_run(job_ctx(server.settings), run.id)

    counted, ledger = seen["counted"], seen["ledger"]
    assert counted.by_status == ledger.by_status == seen["serial"].by_status == {"QUEUED": 3, "EXCLUDED": 1}
    assert counted.figures == ledger.figures
    assert (counted.last_error_reason, counted.resent, counted.waves) == (None, 0, [])
    stored = seen["stored"]
    assert (stored.targeted, stored.excluded, stored.pending, stored.sent) == (3, 1, 3, 0)
    assert len(seen["scans"]) == (0 if dialect_of() is Dialect.POSTGRES else 1), seen["scans"]


def test_the_first_count_after_the_snapshot_s_counts_waits_as_after_a_count_of_that_many_rows() -> None:
    progress = Progress(None, CampaignRun(id=1, campaign_id=1))
    assert progress.counting_due()  # a sender that was given no counts counts at its first batch
    progress.counted_rows(1_000_000)
    assert not progress.counting_due()


async def test_an_experiment_s_holdout_is_in_the_counts_after_the_snapshot(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holdout is moved to EXCLUDED after the snapshot statement inserted it QUEUED: the stored counters are the
    ledger's, not that statement's."""
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=40)
    experiment = {"treatments": treatments("A", "B"), "holdoutShare": 0.3}
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id, experiment=experiment))
    assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
    run = await CampaignRun.get(campaign_id=pk(campaign["id"]))
    seen: dict[str, Any] = {}

    async def before_sending(
        ctx: dict[str, Any], run: CampaignRun, campaign: Any, lease: float, counted: Counts | None = None
    ) -> dict[str, Any]:
        seen.update(stored=await CampaignRun.get(id=run.id), ledger=await ledger_counts(run.id))
        return {"runId": run.id, "status": "stopped before sending"}

    monkeypatch.setattr(jobs.runs, "_send_until_done", before_sending)
    await execute_run(job_ctx(server.settings), run.id)
    ledger, stored = seen["ledger"], seen["stored"]
    held = ledger.figures.excluded_by_reason.get("HOLDOUT", 0)
    assert 0 < held < 40 and ledger.by_status == {"QUEUED": 40 - held, "EXCLUDED": held}
    assert (stored.targeted, stored.excluded, stored.pending) == (40 - held, held, 40 - held)
