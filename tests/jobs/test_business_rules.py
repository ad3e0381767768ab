"""Business rules at send time (issue 18), on the real ledger with the clock given by the test: quiet hours skip
or delay in each profile's zone, caps count what the ledger says went in the profile's calendar period, a delayed
send uses no budget, the higher priority wins the last slot whichever run is judged first, and two workers judging
the same profiles at once never exceed a cap."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

from models.audience.entities import Profile
from models.business_rules.enforcement import SendRules, candidates_of, judge_batch, send_rules_for
from models.business_rules.model import BusinessRuleSet
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.rules import CampaignStatus
from models.campaigns.run_rules import RunStatus
from models.ledger.claims import claim_batch
from models.ledger.counts import ledger_counts
from models.ledger.delivery import Delivery, DeliveryStatus
from models.tenancy.actions import set_sandbox_time_zone
from models.tenancy.sandbox import Sandbox
from tests.conftest import SandboxKeys

WEEKLY_TWO = {"channel": "EMAIL", "category": "MARKETING", "limit": 2, "period": "WEEK", "hours": None}
_keys = itertools.count(1)


def night(action: str) -> dict:
    days = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
    return {"channel": "EMAIL", "weekdays": days, "from": "22:00", "until": "07:00", "action": action}


@dataclass
class Ledger:
    sandbox: Sandbox
    rule_set: BusinessRuleSet

    async def profile(self, zone: str | None) -> Profile:
        return await Profile.create(sandbox=self.sandbox, time_zone=zone)

    async def run(self, profiles: list[Profile], *, priority: int = 50, category: str = "MARKETING") -> CampaignRun:
        """A RUNNING email run with one QUEUED row per profile (as the snapshot writes them)."""
        campaign = await Campaign.create(
            sandbox=self.sandbox, name=f"c{next(_keys)}", channel="EMAIL", category=category,
            status=CampaignStatus.LIVE, priority=priority, business_rule_set=self.rule_set,
        )  # fmt: skip
        run = await CampaignRun.create(
            sandbox=self.sandbox, campaign=campaign, scheduled_for=datetime.now(UTC), status=RunStatus.RUNNING
        )
        now = datetime.now(UTC)
        for profile in profiles:
            await Delivery.create(
                sandbox=self.sandbox, run=run, campaign_id=campaign.id, profile=profile,
                status=DeliveryStatus.QUEUED, address=f"p{profile.id}@example.com",
                idempotency_key=f"{run.id}-{profile.id}", created_at=now, updated_at=now,
            )  # fmt: skip
        return run

    async def sent(self, profile: Profile, at: datetime, *, category: str = "MARKETING") -> None:
        """A message that went to the profile at `at`, in an earlier run."""
        run = await self.run([profile], category=category)
        await Delivery.filter(run_id=run.id).update(status=DeliveryStatus.SENT, sent_at=at)


async def ledger_with(sandbox: SandboxKeys, caps: list[dict], quiet: list[dict], zone: str = "UTC") -> Ledger:
    row = await Sandbox.get(name=sandbox.name)
    rule_set = await BusinessRuleSet.create(
        sandbox=row, name=f"rules {next(_keys)}", rules={"caps": caps, "quietHours": quiet}, default_time_zone=zone
    )
    return Ledger(row, rule_set)


async def judge(run: CampaignRun, now: datetime) -> dict[int, tuple[str, str | None]]:
    """Claims the run's due rows at `now` and judges them as the run executor does; the ledger after, by profile."""
    campaign = await Campaign.get(id=run.campaign_id)
    rules = await send_rules_for(campaign, run.id)
    assert rules is not None
    batch = await claim_batch(run.id, now, 60.0)
    await judge_batch(rules, await candidates_of([(c.id, c.profile_id) for c in batch]), now)
    return {d.profile_id: (d.status.value, d.reason) for d in await Delivery.filter(run_id=run.id)}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def test_quiet_hours_skip_or_delay_in_each_profiles_zone(sandbox: SandboxKeys) -> None:
    # 17:00 UTC on a Wednesday: 22:45 in Kathmandu (quiet), 06:00 next day in Tonga (quiet), 13:30 in St John's,
    # 18:00 in Paris (the rule set's zone, for the profile without one).
    now = utc(2026, 1, 14, 17, 0)
    for action in ("SKIP", "DELAY"):
        book = await ledger_with(sandbox, [], [night(action)], zone="Europe/Paris")
        nepal, tonga = await book.profile("Asia/Kathmandu"), await book.profile("Pacific/Tongatapu")
        newfoundland, unknown = await book.profile("America/St_Johns"), await book.profile(None)
        run = await book.run([nepal, tonga, newfoundland, unknown])
        verdicts = await judge(run, now)
        quiet = ("EXCLUDED", "QUIET_HOURS") if action == "SKIP" else ("QUEUED", "QUIET_HOURS")
        assert verdicts == {
            nepal.id: quiet,
            tonga.id: quiet,
            newfoundland.id: ("SENDING", None),
            unknown.id: ("SENDING", None),
        }
        if action == "DELAY":
            due = {d.profile_id: d.next_attempt_at for d in await Delivery.filter(run_id=run.id, status="QUEUED")}
            # 07:00 local: 01:15 UTC in Kathmandu, 18:00 UTC today in Tonga.
            assert due == {nepal.id: utc(2026, 1, 15, 1, 15), tonga.id: utc(2026, 1, 14, 18, 0)}
            counts = await ledger_counts(run.id)
            assert (counts.figures.delayed, counts.figures.retrying, counts.figures.pending) == (2, 0, 4)
            # Not claimed before the window ends; claimed and cleared when it has.
            early = await claim_batch(run.id, utc(2026, 1, 14, 17, 59), 60.0)
            assert {c.profile_id for c in early} == {newfoundland.id, unknown.id}  # their leases ran out
            later = await judge(run, utc(2026, 1, 14, 18, 0))
            assert later[tonga.id] == ("SENDING", "QUIET_HOURS") and later[nepal.id][0] == "QUEUED"


async def test_caps_count_the_profiles_calendar_week_from_the_ledger(sandbox: SandboxKeys) -> None:
    book = await ledger_with(sandbox, [WEEKLY_TWO], [])
    # Monday 2026-01-12 00:00 in Kathmandu is Sunday 18:15 UTC; in St John's it is Monday 03:30 UTC.
    now = utc(2026, 1, 14, 12, 0)
    nepal, newfoundland, fresh = (
        await book.profile("Asia/Kathmandu"),
        await book.profile("America/St_Johns"),
        await book.profile("Pacific/Tongatapu"),
    )
    for at in (utc(2026, 1, 11, 18, 30), utc(2026, 1, 13, 9, 0)):  # both in Kathmandu's week
        await book.sent(nepal, at)
    for at in (utc(2026, 1, 12, 3, 0), utc(2026, 1, 13, 9, 0)):  # the first is the previous week in St John's
        await book.sent(newfoundland, at)
    await book.sent(fresh, utc(2026, 1, 13, 9, 0), category="TRANSACTIONAL")  # another category: not counted
    run = await book.run([nepal, newfoundland, fresh])
    assert await judge(run, now) == {
        nepal.id: ("EXCLUDED", "FREQUENCY_CAPPED"),
        newfoundland.id: ("SENDING", None),
        fresh.id: ("SENDING", None),
    }
    figures = (await ledger_counts(run.id)).figures
    assert figures.excluded_by_reason == {"FREQUENCY_CAPPED": 1}


async def test_transactional_campaigns_are_exempt(sandbox: SandboxKeys) -> None:
    book = await ledger_with(sandbox, [{**WEEKLY_TWO, "limit": 0}], [night("SKIP")])
    profile = await book.profile(None)
    run = await book.run([profile], category="TRANSACTIONAL")
    assert await send_rules_for(await Campaign.get(id=run.campaign_id), run.id) is None
    # The sandbox default applies to MARKETING campaigns naming no rule set.
    book.rule_set.is_default = True
    await book.rule_set.save()
    marketing = await book.run([profile])
    await Campaign.filter(id=marketing.campaign_id).update(business_rule_set_id=None)
    assert isinstance(await send_rules_for(await Campaign.get(id=marketing.campaign_id), marketing.id), SendRules)


async def test_a_delayed_send_uses_no_budget_and_the_higher_priority_wins_the_last_slot(sandbox: SandboxKeys) -> None:
    book = await ledger_with(sandbox, [{**WEEKLY_TWO, "limit": 1}], [])
    now = utc(2026, 1, 14, 12, 0)
    profile = await book.profile("Europe/Paris")
    low, high = await book.run([profile], priority=10), await book.run([profile], priority=90)
    # The lower priority is judged first, yet the slot is the higher one's: its row is QUEUED in the same week.
    assert await judge(low, now) == {profile.id: ("EXCLUDED", "FREQUENCY_CAPPED")}
    assert await judge(high, now) == {profile.id: ("SENDING", None)}
    # A third, even higher, judged after the cleared one: the budget is spent by the send in flight.
    top = await book.run([profile], priority=100)
    assert await judge(top, now) == {profile.id: ("EXCLUDED", "FREQUENCY_CAPPED")}


async def test_two_workers_judging_the_same_profiles_at_once_never_exceed_the_cap(sandbox: SandboxKeys) -> None:
    book = await ledger_with(sandbox, [{**WEEKLY_TWO, "limit": 1}], [])
    now = utc(2026, 1, 14, 12, 0)
    profiles = [await book.profile("Asia/Kathmandu") for _ in range(40)]
    runs = [await book.run(profiles) for _ in range(3)]  # equal priorities: first judged, first served
    campaigns = [await Campaign.get(id=r.campaign_id) for r in runs]
    rules = [await send_rules_for(c, r.id) for c, r in zip(campaigns, runs, strict=True)]
    batches = [await claim_batch(r.id, now, 60.0) for r in runs]
    candidates = [await candidates_of([(c.id, c.profile_id) for c in b]) for b in batches]
    await asyncio.gather(*(judge_batch(r, c, now) for r, c in zip(rules, candidates, strict=True)))  # type: ignore[arg-type]
    cleared = await Delivery.filter(run_id__in=[r.id for r in runs], cleared_at__not_isnull=True).values_list(
        "profile_id", flat=True
    )
    assert sorted(cleared) == sorted(p.id for p in profiles)  # each profile exactly once
    capped = await Delivery.filter(run_id__in=[r.id for r in runs], reason="FREQUENCY_CAPPED").count()
    assert capped == 2 * len(profiles)


async def test_profiles_without_a_zone_follow_the_sandboxs_zone_unless_the_rule_set_names_one(
    sandbox: SandboxKeys,
) -> None:
    # Two sends: Sunday 18:30 UTC (Monday 00:15 in Kathmandu: this week there, last week in UTC) and Tuesday.
    # At 17:00 UTC on Wednesday it is 22:45 in Kathmandu: quiet there, not in UTC.
    now = utc(2026, 1, 14, 17, 0)
    row = await Sandbox.get(name=sandbox.name)
    await set_sandbox_time_zone(row.id, "Asia/Kathmandu", actor="test")
    verdicts = {}
    for zone in ("", "UTC"):  # "": the sandbox's zone; the rule set's own wins
        capped, quiet = (
            await ledger_with(sandbox, [WEEKLY_TWO], [], zone),
            await ledger_with(sandbox, [], [night("SKIP")], zone),
        )
        unknown = await capped.profile(None)
        for at in (utc(2026, 1, 11, 18, 30), utc(2026, 1, 13, 9, 0)):
            await capped.sent(unknown, at)
        cap_run, quiet_run = await capped.run([unknown]), await quiet.run([await quiet.profile(None)])
        verdicts[zone] = [*(await judge(cap_run, now)).values(), *(await judge(quiet_run, now)).values()]
    assert verdicts == {
        "": [("EXCLUDED", "FREQUENCY_CAPPED"), ("EXCLUDED", "QUIET_HOURS")],
        "UTC": [("SENDING", None), ("SENDING", None)],
    }
    await set_sandbox_time_zone(row.id, None, actor="test")  # back to UTC: the first case now sends
    capped = await ledger_with(sandbox, [WEEKLY_TWO], [], "")
    unknown = await capped.profile(None)
    for at in (utc(2026, 1, 11, 18, 30), utc(2026, 1, 13, 9, 0)):
        await capped.sent(unknown, at)
    assert list((await judge(await capped.run([unknown]), now)).values()) == [("SENDING", None)]
