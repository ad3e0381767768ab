"""The review's estimate of what a campaign's business rules would do if it sent now: the quiet hours and caps
applied to a sample of its contactable audience (the judgement of send time, without writing anything), scaled
to the whole."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from models.business_rules.enforcement import Candidate, SendRules, sends_in_period
from models.business_rules.rules import QuietAction, quiet_window, zone_of
from models.campaigns.review_snapshot import RuleEstimate

SAMPLE = 2000
_CHUNK = 500


async def estimate_rules(
    rules: SendRules,
    rule_set_name: str,
    sample: Sequence[tuple[int, str | None]],
    contactable: int,
    now: datetime,
    conn: BaseDBAsyncClient,
) -> RuleEstimate:
    capped = skipped = delayed = 0
    quiet_rules = rules.rule_set.quiet_for(rules.channel)
    open_rows: list[Candidate] = []
    for profile_id, zone_name in sample:
        quiet = quiet_window(now, zone_of(zone_name, rules.default_zone), quiet_rules) if quiet_rules else None
        if quiet is None:
            open_rows.append(Candidate(0, profile_id, zone_name))
        elif quiet[0] is QuietAction.SKIP:
            skipped += 1
        else:
            delayed += 1
    for start in range(0, len(open_rows), _CHUNK):
        chunk = open_rows[start : start + _CHUNK]
        over: set[int] = set()
        for cap in rules.caps:
            counts = await sends_in_period(conn, rules, cap, chunk, now)
            over |= {r.profile_id for r in chunk if counts.get(r.profile_id, 0) >= cap.limit}
        capped += len(over)
    scale = contactable / len(sample) if sample else 0.0
    return RuleEstimate(rule_set_name, round(capped * scale), round(skipped * scale), round(delayed * scale))
