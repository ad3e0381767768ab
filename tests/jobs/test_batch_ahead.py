"""The next batch of a run is claimed and rendered while the current one is being sent (issue 22), and put back in
the queue when the run pauses before sending it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from models.ledger.claims import BATCH_SIZE
from models.ledger.delivery import Delivery, DeliveryStatus
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.graphql.test_profiles import upsert
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.jobs.test_run_pause import RELAY_DENIED, email_campaign, run_of
from tests.jobs.test_runs import gold
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER

EXTRA = 10  # the second batch's rows


@dataclass
class LastOfBatchHandler(SinkHandler):
    """At the DATA of the first batch's last message, notes the state of the rows the sink has not received."""

    addresses: list[str] = field(default_factory=list)
    states_of_the_rest: Counter[DeliveryStatus] | None = None

    async def handle_DATA(self, server, session, envelope):
        if len(self.received) == BATCH_SIZE - 1 and self.states_of_the_rest is None:
            seen = {r for m in self.received for r in m.recipients} | set(envelope.rcpt_tos)
            rest = [a for a in self.addresses if a not in seen]
            rows = await Delivery.filter(address__in=rest).values_list("status", flat=True)
            self.states_of_the_rest = Counter(DeliveryStatus(s) for s in rows)
        return await super().handle_DATA(server, session, envelope)


async def many_profiles(gql: GraphQLClient, sandbox: SandboxKeys, addresses: list[str]) -> None:
    for start in range(0, len(addresses), 100):
        await upsert(gql, sandbox.admin, [gold(a, "A", consent={"email": "Y"}) for a in addresses[start : start + 100]])


async def test_the_next_batch_is_claimed_while_the_current_one_is_sent(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    addresses = [f"ahead{i}@example.com" for i in range(BATCH_SIZE + EXTRA)]
    handler = LastOfBatchHandler(credentials=(SMTP_USER, SMTP_PASSWORD), addresses=addresses)
    async with smtp_sink(handler) as sink:
        await many_profiles(gql, sandbox, addresses)
        campaign = await email_campaign(gql, sandbox, sink.port, addresses[:1])
        await gql.drain_jobs()
        run = await run_of(campaign["id"])

    # While the first batch's last message was sent, the second batch was already leased to this sender.
    assert handler.states_of_the_rest == {DeliveryStatus.SENDING: EXTRA}
    assert run.sent == len(addresses)
    assert len(set(handler.message_ids)) == len(addresses)


async def test_a_batch_claimed_ahead_goes_back_to_the_queue_when_the_run_pauses(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer
) -> None:
    addresses = [f"held{i}@example.com" for i in range(BATCH_SIZE + EXTRA)]
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD), rcpt_replies=dict.fromkeys(addresses, RELAY_DENIED))
    async with smtp_sink(handler) as sink:
        await many_profiles(gql, sandbox, addresses)
        campaign = await email_campaign(gql, sandbox, sink.port, addresses[:1])
        await gql.drain_jobs()
        run = await run_of(campaign["id"])

    assert run.status.value == "PAUSED"
    rows = await Delivery.filter(run_id=run.id).values_list("status", "attempts", "lease_until")
    # Nothing left leased: every row QUEUED as if never tried, the batch claimed ahead included.
    assert Counter((DeliveryStatus(s), a) for s, a, _ in rows) == {(DeliveryStatus.QUEUED, 0): len(addresses)}
