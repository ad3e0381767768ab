"""A trigger's counts after an aborting stop, and in a legacy run of one trigger (issue 17's leftovers): both
recounted in the transaction that changed the trigger's rows, with their trigger.progress event.

Real parts: the SMTP sink (aiosmtpd), the suite's database and Redis, queued jobs run by `drain_jobs()`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobs.queue import JobQueue
from models.audience.entities import ProfileIdentity
from models.campaigns.campaign import Campaign, CampaignRun, RunStatus
from models.ledger.delivery import Delivery
from models.ledger.delivery_rules import DeliveryStatus
from models.outbox.model import OutboxEvent
from models.outbox.payloads import TRIGGER_PROGRESS_TOPIC
from models.tenancy.sandbox import Role
from models.triggers.trigger import CampaignTrigger, TriggerStatus
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_campaigns import STOP
from tests.graphql.test_trigger_run import transactional_campaign
from tests.graphql.test_triggers import pk, recipient, trigger


async def _progress_of(trigger_id: int) -> list[dict]:
    """The trigger.progress figures of this trigger, oldest first."""
    events = await OutboxEvent.filter(topic=TRIGGER_PROGRESS_TOPIC).order_by("id")
    return [t for e in events for t in e.payload["triggers"] if t["triggerId"] == trigger_id]


async def test_an_aborting_stop_recounts_the_triggers_of_the_rows_it_cancels(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    async with transactional_campaign(gql, sandbox) as (handler, campaign_id):
        body = {"campaignId": campaign_id, "idempotencyKey": "abort-1", "context": {"order": {"id": "X"}}}
        accepted = await trigger(gql, sandbox, {**body, "recipients": [recipient("yes@example.com", name="Y")]})
        assert accepted["__typename"] == "CampaignTriggerSuccess", accepted
        trigger_id = pk(accepted["trigger"]["id"])
        assert (await CampaignTrigger.get(id=trigger_id)).pending == 1
        stop = {"input": {"id": campaign_id, "abortRunning": True}}
        stopped = await gql(STOP, stop, key=sandbox.keys[Role.PUBLISHER])
        assert stopped["campaignStop"]["__typename"] == "CampaignSuccess", stopped
        # The run is CANCELLED; its queued row is cancelled by whoever finds it (its job, or the dispatcher).
        await gql.drain_jobs(dispatch_at=datetime.now(UTC))
    assert handler.received == []
    assert [d.status for d in await Delivery.filter(trigger_id=trigger_id)] == [DeliveryStatus.CANCELLED]
    row = await CampaignTrigger.get(id=trigger_id)
    assert (row.sent, row.failed, row.excluded, row.pending) == (0, 0, 0, 0)
    # The subscriber's last figures: nothing pending any more (its final event).
    progress = await _progress_of(trigger_id)
    assert progress and progress[-1]["pending"] == 0, progress


async def test_a_legacy_run_of_one_trigger_recounts_it_with_its_outcomes(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    """Runs of one trigger (before the shared trigger runs) are no longer made by the code; one is built here
    through the models, as such a run left in a database would be, and sent by the run executor."""
    async with transactional_campaign(gql, sandbox) as (handler, campaign_id):
        campaign = await Campaign.get(id=pk(campaign_id))
        identity = await ProfileIdentity.get(sandbox_id=campaign.sandbox_id, value="yes@example.com")
        now = datetime.now(UTC)
        run = await CampaignRun.create(
            sandbox_id=campaign.sandbox_id,
            campaign_id=campaign.id,
            scheduled_for=now - timedelta(seconds=1),
            snapshot_done_at=now,
            open_for_triggers=False,
        )
        row = await CampaignTrigger.create(
            sandbox_id=campaign.sandbox_id,
            campaign_id=campaign.id,
            run_id=run.id,
            idempotency_key="legacy-1",
            request_hash="0" * 64,
            status=TriggerStatus.ACCEPTED,
            accepted=1,
            pending=1,
            context={"order": {"id": "L"}},
            answer={},
            created_at=now,
            expires_at=now + timedelta(hours=24),
        )
        await Delivery.create(
            sandbox_id=campaign.sandbox_id,
            run_id=run.id,
            campaign_id=campaign.id,
            trigger_id=row.id,
            context={"name": "Y"},
            profile_id=identity.profile_id,
            status=DeliveryStatus.QUEUED,
            address="yes@example.com",
            idempotency_key=f"t{row.id}-{identity.profile_id}",
            created_at=now,
            updated_at=now,
        )
        await JobQueue(gql.app.state.redis).execute_run(run.id)
        await gql.drain_jobs()
    assert [m.parsed["Subject"] for m in handler.received] == ["Order L"]
    assert (await CampaignRun.get(id=run.id)).status is RunStatus.SUCCEEDED
    counted = await CampaignTrigger.get(id=row.id)
    assert (counted.sent, counted.failed, counted.excluded, counted.pending) == (1, 0, 0, 0)
    assert (await _progress_of(row.id))[-1]["sent"] == 1
