"""PostgreSQL's one-statement acceptance (models/triggers/accept_pg.py) answers and writes what the first path does.

Each case sends the same call twice to a LIVE campaign that has already accepted one: once with the campaign's
kept shape forgotten (the first path: several statements in a transaction) and once with it (one statement), and
compares the answers and the ledger rows. Counted statements tell which path answered. SQLite has only the first
path: the module is skipped there."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from strawberry import relay

from models.audience.entities import Profile, ProfileIdentity
from models.campaigns.campaign import Campaign
from models.ledger.delivery import Delivery
from models.outbox.model import OutboxEvent
from models.triggers import accept_pg
from models.triggers.accept import accept_trigger
from models.triggers.trigger import CampaignTrigger
from models.triggers.values import (
    IdempotencyConflictError,
    MissingProfile,
    TriggerAnswer,
    TriggerInvalidInputError,
    TriggerRecipient,
    TriggerRequest,
    TriggerStateError,
)
from tests.conftest import TEST_DB, GraphQLClient, SandboxKeys
from tests.graphql.test_campaigns import STOP
from tests.graphql.test_profiles import email, upsert
from tests.graphql.test_triggers import ALL, api_campaign, people, pk
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER
from tests.sql_counter import count_sql

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="the one-statement path is PostgreSQL's")


def by_identity(value: str, address: str | None = None, **context: Any) -> TriggerRecipient:
    return TriggerRecipient(namespace="Email", value=value, context=context, address=address)


def call(campaign: int, key: str, *recipients: TriggerRecipient, **extra: Any) -> TriggerRequest:
    return TriggerRequest(campaign, key, tuple(recipients), {"order": {"id": key}}, **extra)


async def live_campaign(gql: GraphQLClient, sandbox: SandboxKeys, category: str) -> Campaign:
    async with smtp_sink(SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, category)
    await people(gql, sandbox)
    campaign = await Campaign.get(id=pk(campaign_id))
    # The first accepted call makes the run; the campaign's shape is kept from the next one on.
    for key in ("warm-0", "warm-1"):
        await accept_trigger(campaign.sandbox_id, call(campaign.id, key, by_identity("yes@example.com")))
    return campaign


async def accept_counted(sandbox_id: int, request: TriggerRequest, **kwargs: Any) -> tuple[TriggerAnswer, int]:
    with count_sql() as statements:
        answer = await accept_trigger(sandbox_id, request, **kwargs)
    return answer, len(statements)


async def ledger(trigger_id: int) -> list[tuple[Any, ...]]:
    rows = await Delivery.filter(trigger_id=trigger_id).order_by("profile_id")
    return [(d.profile_id, d.status.value, d.reason, d.address, d.context, d.idempotency_key) for d in rows]


async def both_paths(campaign: Campaign, request: TriggerRequest) -> tuple[TriggerAnswer, TriggerAnswer]:
    """The call through the first path, then the same call (another key) through the one statement; both checked
    to have taken the path they name, and to have written the same rows and events."""
    sandbox_id, key = campaign.sandbox_id, request.idempotency_key
    accept_pg.forget(sandbox_id, campaign.id)
    first, first_count = await accept_counted(sandbox_id, replace(request, idempotency_key=f"{key}-first"))
    # Kept again (a call with all its recipients rejected reads no run: it keeps nothing).
    await accept_trigger(sandbox_id, call(campaign.id, f"{key}-warm", by_identity("yes@example.com")))
    one, one_count = await accept_counted(sandbox_id, replace(request, idempotency_key=f"{key}-one"))
    assert first_count > 1 and one_count == 1, (first_count, one_count)
    assert not first.replayed and not one.replayed
    shape = (first.status, first.accepted, first.rejected, first.run_id, first.context)
    assert (one.status, one.accepted, one.rejected, one.run_id, one.context) == shape
    first_rows = [(*row[:-1], row[-1].replace(f"t{first.trigger_id}-", "t-")) for row in await ledger(first.trigger_id)]
    one_rows = [(*row[:-1], row[-1].replace(f"t{one.trigger_id}-", "t-")) for row in await ledger(one.trigger_id)]
    assert one_rows == first_rows
    stored = {t.id: t for t in await CampaignTrigger.filter(id__in=[first.trigger_id, one.trigger_id])}
    columns = ("status", "run_id", "accepted", "rejected", "pending", "excluded", "sent", "failed", "context")
    assert [getattr(stored[one.trigger_id], c) for c in columns] == [
        getattr(stored[first.trigger_id], c) for c in columns
    ]
    assert stored[one.trigger_id].answer == {**stored[first.trigger_id].answer, "id": one.trigger_id}
    events = {
        e.payload["triggerId"]: e.payload
        for e in await OutboxEvent.filter(topic="trigger.accepted")
        if e.payload["triggerId"] in (first.trigger_id, one.trigger_id)
    }
    drop = ("triggerId", "at")
    assert {k: v for k, v in events[one.trigger_id].items() if k not in drop} == {
        k: v for k, v in events[first.trigger_id].items() if k not in drop
    }
    return first, one


@pytest.mark.parametrize("category", ["TRANSACTIONAL", "MARKETING"])
async def test_exclusions_rejections_and_duplicates_match_the_first_path(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys, category: str
) -> None:
    campaign = await live_campaign(gql, sandbox, category)
    await upsert(gql, other_sandbox.admin, [email("foreign@example.com")])
    foreign = await ProfileIdentity.get(value="foreign@example.com", sandbox__name=other_sandbox.name)
    yes = await ProfileIdentity.get(value="yes@example.com", sandbox_id=campaign.sandbox_id)
    request = call(
        campaign.id,
        "k",
        *(by_identity(a, name=a[:3]) for a in ALL),
        by_identity("nobody@example.com"),  # no such profile
        by_identity(" YES@example.com "),  # the same profile again, normalised
        TriggerRecipient(profile_id=yes.profile_id),  # and again, by id
        TriggerRecipient(profile_id=foreign.profile_id),  # another sandbox's profile: not found
    )
    first, _ = await both_paths(campaign, request)
    assert [(r.index, r.reason.value) for r in first.rejected] == [
        (5, "PROFILE_NOT_FOUND"),
        (6, "DUPLICATE_RECIPIENT"),
        (7, "DUPLICATE_RECIPIENT"),
        (8, "PROFILE_NOT_FOUND"),
    ]
    reasons = sorted(row[2] or "" for row in await ledger(first.trigger_id))
    if category == "MARKETING":
        assert reasons == ["", "NO_CONSENT", "SUPPRESSED", "SUPPRESSED", "SUPPRESSED"]
    else:
        assert reasons == ["", "", "", "SUPPRESSED", "SUPPRESSED"]


async def test_addresses_all_rejected_and_created_profiles_match_the_first_path(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    campaign = await live_campaign(gql, sandbox, "TRANSACTIONAL")
    moved = call(
        campaign.id,
        "moved",
        by_identity("yes@example.com", "Yan.Work@Example.com", name="Y"),
        by_identity("no@example.com", "bounced@example.com"),
        by_identity("complained@example.com", "fresh@example.com"),
    )
    first, _ = await both_paths(campaign, moved)
    assert sorted((row[3], row[2]) for row in await ledger(first.trigger_id)) == [
        ("bounced@example.com", "SUPPRESSED"),
        ("fresh@example.com", None),
        ("yan.work@example.com", None),
    ]
    nobody = call(campaign.id, "nobody", by_identity("nobody@example.com"), TriggerRecipient(profile_id=10**12))
    first, one = await both_paths(campaign, nobody)
    assert (one.status, one.accepted, one.run_id) == ("REJECTED", 0, None)
    # CREATE with every profile known: one statement too.
    known = call(campaign.id, "known", by_identity("yes@example.com"), on_missing_profile=MissingProfile.CREATE)
    await both_paths(campaign, known)


async def test_create_of_a_missing_profile_and_refusals_take_the_first_path(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    campaign = await live_campaign(gql, sandbox, "TRANSACTIONAL")
    sandbox_id = campaign.sandbox_id
    create = call(campaign.id, "new", by_identity("New@Example.com"), on_missing_profile=MissingProfile.CREATE)
    created, statements = await accept_counted(sandbox_id, create)
    assert statements > 1 and created.accepted == 1
    assert (
        await Profile.filter(
            sandbox_id=sandbox_id, id__in=[d.profile_id for d in await Delivery.filter(trigger_id=created.trigger_id)]
        ).count()
        == 1
    )
    with pytest.raises(TriggerInvalidInputError) as refused:
        await accept_trigger(sandbox_id, call(campaign.id, "bad", by_identity("not an email")))
    assert [p.field for p in refused.value.problems] == ["input.recipients[0].identity"]
    with pytest.raises(TriggerInvalidInputError) as refused:
        await accept_trigger(sandbox_id, call(campaign.id, "bad", by_identity("yes@example.com", "nope")))
    assert [p.field for p in refused.value.problems] == ["input.recipients[0].address"]
    unknown = TriggerRecipient(namespace="Nope", value="x")
    with pytest.raises(TriggerInvalidInputError):
        await accept_trigger(sandbox_id, call(campaign.id, "bad", unknown))
    assert not await CampaignTrigger.filter(campaign_id=campaign.id, idempotency_key="bad").exists()


async def test_replays_conflicts_and_expired_keys_in_one_statement(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    campaign = await live_campaign(gql, sandbox, "TRANSACTIONAL")
    sandbox_id = campaign.sandbox_id
    now = datetime.now(UTC)
    request = call(campaign.id, "daily", by_identity("yes@example.com", name="Y"), by_identity("nobody@example.com"))
    first, statements = await accept_counted(sandbox_id, request, now=now)
    assert statements == 1 and not first.replayed
    again, statements = await accept_counted(sandbox_id, request, now=now + timedelta(hours=1))
    assert statements == 1 and again.replayed
    assert (again.trigger_id, again.rejected, again.run_id, again.context) == (
        first.trigger_id,
        first.rejected,
        first.run_id,
        first.context,
    )
    with pytest.raises(IdempotencyConflictError) as conflict:
        await accept_trigger(sandbox_id, replace(request, context={"other": 1}), now=now)
    assert conflict.value.trigger_id == first.trigger_id
    later = await accept_trigger(sandbox_id, request, now=now + timedelta(hours=25))
    assert not later.replayed and later.trigger_id != first.trigger_id
    old = await CampaignTrigger.get(id=first.trigger_id)
    assert (old.idempotency_key, old.released_key) == (None, "daily")
    assert await Delivery.filter(trigger_id__in=[first.trigger_id, later.trigger_id]).count() == 2


async def test_concurrent_duplicates_in_one_statement_get_the_first_answer(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    campaign = await live_campaign(gql, sandbox, "TRANSACTIONAL")
    requests = [call(campaign.id, f"burst-{n % 3}", by_identity("yes@example.com")) for n in range(12)]
    answers = await asyncio.gather(*(accept_trigger(campaign.sandbox_id, r) for r in requests))
    by_key: dict[str, set[int]] = {}
    for request, answer in zip(requests, answers, strict=True):
        by_key.setdefault(request.idempotency_key, set()).add(answer.trigger_id)
    assert all(len(ids) == 1 for ids in by_key.values()), by_key
    assert sum(not a.replayed for a in answers) == 3
    ids = [next(iter(ids)) for ids in by_key.values()]
    assert await Delivery.filter(trigger_id__in=ids).count() == 3


async def test_a_stopped_campaign_or_a_new_version_is_seen_by_the_one_statement(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    campaign = await live_campaign(gql, sandbox, "TRANSACTIONAL")
    sandbox_id = campaign.sandbox_id
    # Any change of the campaign's version: the kept shape is not used (first path), then kept again.
    await Campaign.filter(id=campaign.id).update(version=campaign.version + 1)
    answer, statements = await accept_counted(sandbox_id, call(campaign.id, "v2", by_identity("yes@example.com")))
    assert statements > 1 and answer.accepted == 1
    answer, statements = await accept_counted(sandbox_id, call(campaign.id, "v2b", by_identity("yes@example.com")))
    assert statements == 1 and answer.accepted == 1
    stopped = await gql(STOP, {"input": {"id": str(relay.GlobalID("Campaign", str(campaign.id)))}}, key=sandbox.admin)
    assert stopped["campaignStop"]["__typename"] == "CampaignSuccess", stopped
    with pytest.raises(TriggerStateError):
        await accept_trigger(sandbox_id, call(campaign.id, "late", by_identity("yes@example.com")))
    assert not await CampaignTrigger.filter(campaign_id=campaign.id, idempotency_key="late").exists()
