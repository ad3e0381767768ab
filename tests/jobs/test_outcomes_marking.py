"""A window's outcomes and the next window's resend marks written together (issue 22): on PostgreSQL one statement,
one commit; each part does what write_outcomes and mark_handed do on their own, and a listener still gets its
delivery events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.campaigns.campaign import CampaignRun
from models.ledger.claims import Claimed
from models.ledger.delivery import Delivery, DeliveryStatus
from models.ledger.outcomes import Outcome, write_outcomes_marking
from models.outbox.model import OutboxEvent
from models.outbox.payloads import DELIVERY_OUTCOMES_TOPIC
from models.webhooks.rules import new_secret
from tests.conftest import TEST_DB, GraphQLClient, RunningServer, SandboxKeys
from tests.jobs.test_tracking import send_marketing_email
from tests.jobs.test_webhook_events import _endpoint
from tests.sql_counter import count_sql


def _claimed(row: Delivery, token: datetime, hand_offs: int) -> Claimed:
    return Claimed(row.id, row.profile_id, row.address, row.idempotency_key, row.attempts, None, hand_offs, token)


async def test_outcomes_and_marks_in_one_write(gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer) -> None:
    sent = await send_marketing_email(gql, sandbox, ["Ann", "Bob", "Cid", "Dan"])
    run = sent.run
    done, marked, resend, lapsed = sorted(sent.deliveries.values(), key=lambda d: d.id)
    token = datetime.now(UTC) + timedelta(seconds=30)
    other = token + timedelta(microseconds=7)  # another worker's claim of `lapsed`
    for row, until in ((done, token), (marked, token), (resend, token), (lapsed, other)):
        await Delivery.filter(id=row.id).update(status=DeliveryStatus.SENDING, lease_until=until, hand_offs=0)
    await Delivery.filter(id=resend.id).update(hand_offs=1)  # a killed holder had handed it off
    resent_before = (await CampaignRun.get(id=run.id)).resent
    batch = [_claimed(marked, token, 0), _claimed(resend, token, 1), _claimed(lapsed, token, 0)]

    async def write() -> list[str]:
        with count_sql() as statements:
            held, again = await write_outcomes_marking(
                [Outcome(done.id, DeliveryStatus.SENT, provider_id="<done@x>", sent=True)],
                datetime.now(UTC),
                run.sandbox_id,
                run.id,
                batch,
                token,
            )
        assert ([c.id for c in held], again) == ([marked.id, resend.id], 1)
        return statements

    statements = await write()
    # One statement on PostgreSQL, and one more to count the resend; SQLite writes each part on its own.
    assert len(statements) == (2 if TEST_DB == "postgres" else 3)
    rows = {d.id: d for d in await Delivery.filter(id__in=[done.id, marked.id, resend.id, lapsed.id])}
    assert (rows[done.id].status, rows[done.id].provider_message_id, rows[done.id].lease_until) == (
        DeliveryStatus.SENT,
        "<done@x>",
        None,
    )
    assert [rows[i].hand_offs for i in (marked.id, resend.id, lapsed.id)] == [1, 2, 0]
    assert all(rows[i].status is DeliveryStatus.SENDING for i in (marked.id, resend.id, lapsed.id))
    assert (await CampaignRun.get(id=run.id)).resent == resent_before + 1

    # An endpoint taking delivery events: the outcome is written again with its event, the marks stand.
    await _endpoint(sandbox, "http://127.0.0.1:9/sent", new_secret(), ("delivery.sent",))
    await Delivery.filter(id=done.id).update(status=DeliveryStatus.SENDING, lease_until=token)
    await write()
    assert (await Delivery.get(id=done.id)).status is DeliveryStatus.SENT
    assert [(await Delivery.get(id=i)).hand_offs for i in (marked.id, resend.id)] == [2, 3]
    events = await OutboxEvent.filter(sandbox_id=run.sandbox_id, topic=DELIVERY_OUTCOMES_TOPIC).count()
    assert events == 1
