"""A worker whose lease lapsed (stalled longer than RUN_LEASE_SECONDS, not dead) while another worker claimed its
rows again hands off none of those rows: the claim's lease end is a fencing token its marks must still match.
Before, both sent them, and the copies were counted nowhere (the 10,000-key trigger crash test: 240 same-Message-ID
copies at the sink, 126 counted on the run)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiosmtpd.smtp import SMTP, Envelope, Session
from strawberry import relay

from jobs.sending import OUTCOMES_EVERY as WINDOW
from models.campaigns.campaign import CampaignRun
from models.ledger.claims import claim_batch
from models.ledger.delivery import Delivery, DeliveryStatus
from tests.conftest import GraphQLClient, SandboxKeys
from tests.e2e.polling import wait_until
from tests.graphql.test_campaigns import activate, create
from tests.graphql.test_profiles import upsert
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_runs import email_preset, gold, gold_segment
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

PROFILES = 3 * WINDOW


@dataclass
class GatedSink(SinkHandler):
    """Holds every DATA until `gate` opens: the sending worker stalls there with its first window marked."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope):
        self.waiting += 1
        await self.gate.wait()
        return await super().handle_DATA(server, session, envelope)


async def test_rows_claimed_again_after_a_lapsed_lease_are_not_sent_by_the_stalled_worker(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    handler = GatedSink(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        preset_id = await email_preset(gql, sandbox, sink.port)
        people = [gold(f"p{i}@example.com", f"P{i}", consent={"email": "Y"}) for i in range(PROFILES)]
        await upsert(gql, sandbox.admin, people)
        fields = {
            "name": "Fenced",
            "action": {"channel": "EMAIL", "presetId": preset_id},
            "content": {"email": {"subject": "Hi", "html": "<p>Hi {{ profile.person.name.firstName }}</p>"}},
            "audience": {"segmentId": await gold_segment(gql, sandbox), "namespaceCode": "Email"},
        }
        campaign = await create(gql, sandbox, fields)
        assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"

        sending = asyncio.create_task(gql.drain_jobs())
        await wait_until(lambda: handler.waiting > 0 or sending.done(), timeout=30)
        assert not sending.done()
        campaign_pk = int(relay.GlobalID.from_id(campaign["id"]).node_id)
        run = await CampaignRun.filter(campaign_id=campaign_pk).order_by("-id").first()
        assert run is not None
        # While it waits, its renewals move the lease on (they match the claim's token).
        claimed = set(await Delivery.filter(run_id=run.id).values_list("lease_until", flat=True))
        assert len(claimed) == 1

        async def renewed() -> bool:
            now = set(await Delivery.filter(run_id=run.id).values_list("lease_until", flat=True))
            return len(now) == 1 and now != claimed

        await wait_until(renewed, timeout=30)
        # The stalled worker's lease lapses and another worker claims every row it had not recorded.
        await Delivery.filter(run_id=run.id, status=DeliveryStatus.SENDING).update(
            lease_until=datetime.now(UTC) - timedelta(seconds=1)
        )
        taken = await claim_batch(run.id, datetime.now(UTC), lease=600)
        assert len(taken) == PROFILES
        assert sum(1 for c in taken if c.hand_offs) == WINDOW  # the first window was marked: counted if sent again
        handler.gate.set()
        await sending

    # The stalled worker finished what it had handed off (its first window) and nothing after it.
    assert len(handler.received) == WINDOW
    sent = await Delivery.filter(run_id=run.id, status=DeliveryStatus.SENT).count()
    assert sent == WINDOW
    assert await Delivery.filter(run_id=run.id, status=DeliveryStatus.SENDING).count() == PROFILES - WINDOW
