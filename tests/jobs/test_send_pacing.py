"""A run's sender gives way to the API (jobs/send_pacing.py): web requests mark the API busy in Redis, and while
the mark is up the in-app sender sends small batches and rests between them; once the mark is gone it goes on
at full speed."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

import jobs.inapp_direct
from jobs.context import job_ctx
from jobs.runs import execute_run
from jobs.send_pacing import BUSY_KEY
from models.campaigns.campaign import CampaignRun, RunStatus
from models.ledger.delivery import InboxMessage
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.e2e.polling import wait_until
from tests.jobs.test_inapp_direct import live_in_app_run

PROFILES = 5
BUSY_BATCH = 2


async def test_the_sender_rests_while_the_api_is_busy_and_resumes_once_it_is_quiet(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs.inapp_direct, "BUSY_BATCH_SIZE", BUSY_BATCH)
    row, run = await live_in_app_run(gql, sandbox, PROFILES, "p", "Hi")
    campaign_id, run_id = row.id, run.id
    # A share so small that a rest lasts its whole maximum (a fifth of the lease: 12 minutes) unless the API
    # goes quiet: what the run has sent while the mark is up is exactly its first small batch.
    settings = server.settings.model_copy(update={"send_share_when_api_busy": 1e-6, "run_lease_seconds": 3600})
    await redis.set(BUSY_KEY, b"1")  # the API busy until the test says otherwise
    sending = asyncio.create_task(execute_run(job_ctx(settings), run_id))
    try:

        async def sent() -> int:
            return await InboxMessage.filter(campaign_id=campaign_id).count()

        await wait_until(sent)
        assert await sent() == BUSY_BATCH
        assert not sending.done()
        await redis.delete(BUSY_KEY)
        result = await asyncio.wait_for(sending, timeout=60)
    finally:
        await redis.delete(BUSY_KEY)
        sending.cancel()
    assert result["status"] == RunStatus.SUCCEEDED.value
    assert await InboxMessage.filter(campaign_id=campaign_id).count() == PROFILES
    done = await CampaignRun.get(id=run_id)
    assert (done.status, done.sent) == (RunStatus.SUCCEEDED, PROFILES)


async def test_requests_mark_the_api_busy_and_probes_do_not(app: Starlette, gql: GraphQLClient, redis: Redis) -> None:
    mark = app.state.busy_mark
    await redis.delete(BUSY_KEY)
    mark.next_mark, mark.per_interval = 0.0, 1  # whatever earlier tests' requests marked; busy from one request
    assert (await gql.http.get("/healthz")).status_code == 200
    assert mark.next_mark == 0.0  # no mark taken
    assert not await redis.exists(BUSY_KEY)
    response = await gql.http.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code in (200, 401)

    async def marked() -> bool:
        return bool(await redis.exists(BUSY_KEY))

    await wait_until(marked)
    assert 0 < await redis.pttl(BUSY_KEY) <= 1000  # it lapses by itself once the requests stop


async def test_a_few_requests_a_second_do_not_mark_the_api_busy(redis: Redis) -> None:
    """API_BUSY_REQUESTS_PER_SECOND (20: 5 per MARK_INTERVAL of 0.25 s): 4 requests in an interval, then 4 in the
    next, mark nothing; the 5th of one interval marks."""
    from jobs.send_pacing import MARK_INTERVAL, BusyMark
    from tests.conftest import _redis

    now = [1000.0]
    mark = BusyMark(_redis(), 20.0, clock=lambda: now[0])
    await redis.delete(BUSY_KEY)
    try:
        assert mark.per_interval == 5
        for _ in range(2):
            for _ in range(4):
                mark.seen("/graphql")
            now[0] += MARK_INTERVAL
        assert mark._pending is None and not await redis.exists(BUSY_KEY)
        for _ in range(5):
            mark.seen("/graphql")
        assert mark._pending is not None
        await mark._pending
        assert await redis.exists(BUSY_KEY)
    finally:
        await mark.aclose()
        await redis.delete(BUSY_KEY)
