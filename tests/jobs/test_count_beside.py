"""The sending loop's count of the ledger runs beside the next batches (jobs/progress.Progress.count_beside): a
count held back does not hold back the messages, and the run's final figures come after it (issue 22: a
1,000,000-row email run's counts left every connection idle for 7% of its time)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import jobs.progress
import jobs.runs
from models.campaigns.campaign import CampaignRun
from models.ledger.delivery import Delivery, DeliveryStatus
from tests.conftest import GraphQLClient, RunningServer, SandboxKeys
from tests.jobs.test_tracking import send_marketing_email

PEOPLE = [f"Ann{i}" for i in range(8)]


async def test_messages_go_out_while_a_count_is_held_back(
    gql: GraphQLClient, sandbox: SandboxKeys, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs.runs, "BATCH_SIZE", 2)  # four batches: counts fall between them
    monkeypatch.setattr(jobs.progress, "PROGRESS_INTERVAL", 0.0)  # a count due after every batch
    counting = jobs.runs._count_ledger
    release = asyncio.Event()
    held: list[int] = []

    async def held_back(run: CampaignRun, progress: Any, share: float) -> None:
        held.append(run.id)
        await release.wait()
        await counting(run, progress, share)

    async def release_once_all_sent() -> None:
        while True:
            if held and not await Delivery.filter(run_id=held[0]).exclude(status=DeliveryStatus.SENT).exists():
                release.set()
                return
            await asyncio.sleep(0.02)

    monkeypatch.setattr(jobs.runs, "_count_ledger", held_back)
    watcher = asyncio.create_task(release_once_all_sent())
    try:
        # Counted between the batches, the first held count would stop the sending and the run never end.
        async with asyncio.timeout(60):
            sent = await send_marketing_email(gql, sandbox, PEOPLE)
    finally:
        watcher.cancel()
    assert held and release.is_set()
    assert len(sent.messages) == len(PEOPLE)
    # The count that was held back ended before the run's final figures were written, not after.
    run = await CampaignRun.get(id=sent.run.id)
    assert (run.targeted, run.sent) == (len(PEOPLE), len(PEOPLE))


async def test_a_failed_count_is_logged_and_the_run_goes_on(
    gql: GraphQLClient,
    sandbox: SandboxKeys,
    server: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(jobs.runs, "BATCH_SIZE", 2)
    monkeypatch.setattr(jobs.progress, "PROGRESS_INTERVAL", 0.0)
    monkeypatch.setattr(jobs.progress, "COUNT_SPACING", 0)  # due again as soon as one has ended

    calls: list[int] = []

    async def broken(run: CampaignRun, progress: Any, share: float) -> None:
        calls.append(run.id)
        raise RuntimeError("count refused")

    monkeypatch.setattr(jobs.runs, "_count_ledger", broken)
    with caplog.at_level(logging.WARNING, logger="jobs.progress"):
        sent = await send_marketing_email(gql, sandbox, PEOPLE)
    assert len(sent.messages) == len(PEOPLE)
    assert (sent.run.targeted, sent.run.sent) == (len(PEOPLE), len(PEOPLE))
    assert "could not count run" in caplog.text
    assert len(calls) >= 2  # one count ended (here, failed), the next is due again
