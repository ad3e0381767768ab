"""A content experiment's results and its winner: the counts per treatment from the ledger and the tracking
events, the statistics (experiment_stats.py), the status, and the choice of the winner (by a person, or by the
dispatcher once a test-then-winner experiment's test duration is over), audited.

Unit of counting: one delivery (one message to one profile in one run), over every run of the campaign.
- recipients: deliveries of the treatment that were sent (SENT, DELIVERED, or bounced after being sent)
- UNIQUE_OPENS / UNIQUE_CLICKS / UNSUBSCRIBES: those with at least one OPEN / CLICK / UNSUBSCRIBE event
- CLICK_TO_OPEN: recipients are the deliveries opened, the count those opened and clicked
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.experiment_rules import LOWER_IS_BETTER, ExperimentMetric, ExperimentMode
from models.campaigns.experiment_stats import ArmCounts, Comparison, compare
from models.campaigns.run_rules import RunStatus
from models.campaigns.values import CampaignNotFoundError
from models.ledger.vocabulary import DeliveryReason, DeliveryStatus
from models.reporting.tracking import TrackingEventKind
from models.sql.params import SqlParams
from models.sql.reads import dialect_of

_S, _D, _B, _F = (
    s.value for s in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.BOUNCED, DeliveryStatus.FAILED)
)
# Sent to: delivered, or bounced after the provider took it (as models/ledger/figures.py counts `sent`).
IS_SENT = (
    f"(d.status IN ('{_S}', '{_D}', '{_B}') OR (d.status = '{_F}' AND d.reason = '{DeliveryReason.HARD_BOUNCE.value}'))"
)


class ExperimentStatus(StrEnum):
    RUNNING = "RUNNING"
    WINNER = "WINNER"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True, slots=True)
class TreatmentCounts:
    key: str
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    opened_and_clicked: int = 0
    unsubscribed: int = 0

    def arm(self, metric: ExperimentMetric) -> ArmCounts:
        if metric is ExperimentMetric.CLICK_TO_OPEN:
            return ArmCounts(self.key, self.opened, self.opened_and_clicked)
        count = {
            ExperimentMetric.UNIQUE_OPENS: self.opened,
            ExperimentMetric.UNIQUE_CLICKS: self.clicked,
            ExperimentMetric.UNSUBSCRIBES: self.unsubscribed,
        }[metric]
        return ArmCounts(self.key, self.sent, count)


@dataclass(frozen=True, slots=True)
class ExperimentResults:
    campaign: Campaign
    metric: ExperimentMetric
    status: ExperimentStatus
    winner: str | None  # chosen, or (status WINNER) significant
    chosen_by: str | None  # who chose the winner; None while it is only the statistics' verdict
    held_out: int
    comparison: Comparison
    test_ends_at: datetime | None  # TEST_THEN_WINNER: when the test duration is over
    chosen: str | None = None  # the treatment recorded as chosen (the winner, or the fallback applied)
    chosen_reason: str | None = None  # MANUAL, SIGNIFICANT, FALLBACK_CONTROL, FALLBACK_BEST_SO_FAR


def _has(kind: TrackingEventKind) -> str:
    return f"EXISTS (SELECT 1 FROM tracking_event e WHERE e.delivery_id = d.id AND e.kind = '{kind.value}')"


async def treatment_counts(
    column: str, value: int, conn: BaseDBAsyncClient | None = None
) -> dict[str, TreatmentCounts]:
    """The counts of every treatment over the deliveries whose `column` ("campaign_id" or "run_id") is `value`."""
    assert column in ("campaign_id", "run_id")
    conn = conn or connections.get("default")
    params = SqlParams(dialect_of())
    opened, clicked = _has(TrackingEventKind.OPEN), _has(TrackingEventKind.CLICK)
    unsubscribed = _has(TrackingEventKind.UNSUBSCRIBE)
    rows = await conn.execute_query_dict(
        f"SELECT d.treatment AS treatment, COUNT(*) AS sent, "
        f"SUM(CASE WHEN {opened} THEN 1 ELSE 0 END) AS opened, "
        f"SUM(CASE WHEN {clicked} THEN 1 ELSE 0 END) AS clicked, "
        f"SUM(CASE WHEN {opened} AND {clicked} THEN 1 ELSE 0 END) AS both_, "
        f"SUM(CASE WHEN {unsubscribed} THEN 1 ELSE 0 END) AS unsubscribed "
        f"FROM delivery d WHERE d.{column} = {params.add(value)} AND d.treatment IS NOT NULL AND {IS_SENT} "
        f"GROUP BY d.treatment",
        params.values,
    )
    return {
        r["treatment"]: TreatmentCounts(
            r["treatment"],
            int(r["sent"]),
            int(r["opened"] or 0),
            int(r["clicked"] or 0),
            int(r["both_"] or 0),
            int(r["unsubscribed"] or 0),
        )
        for r in rows
    }


async def held_out(campaign_id: int, conn: BaseDBAsyncClient | None = None) -> int:
    conn = conn or connections.get("default")
    params = SqlParams(dialect_of())
    rows = await conn.execute_query_dict(
        f"SELECT COUNT(*) AS n FROM delivery WHERE campaign_id = {params.add(campaign_id)} "
        f"AND status = '{DeliveryStatus.EXCLUDED.value}' AND reason = '{DeliveryReason.HOLDOUT.value}'",
        params.values,
    )
    return int(rows[0]["n"])


async def _test_window(campaign: Campaign, conn: BaseDBAsyncClient | None) -> tuple[bool, datetime | None]:
    """(whether the experiment's runs are still going, when a test-then-winner test ends)."""
    experiment = campaign.experiment or {}
    runs = await CampaignRun.filter(campaign_id=campaign.id).using_db(conn).order_by("id")
    going = not runs or any(r.status in (RunStatus.PENDING, RunStatus.RUNNING) for r in runs)
    ends = None
    if experiment.get("mode") == ExperimentMode.TEST_THEN_WINNER.value and runs:
        started = runs[0].started_at or runs[0].scheduled_for
        ends = started + timedelta(seconds=int(experiment.get("testDurationSeconds") or 0))
        # The test is the first run: the second (the rest) does not keep the results RUNNING.
        going = runs[0].status in (RunStatus.PENDING, RunStatus.RUNNING)
    return going, ends


async def experiment_results(
    sandbox_id: int, campaign_id: int, *, now: datetime | None = None, conn: BaseDBAsyncClient | None = None
) -> ExperimentResults:
    now = now or datetime.now(UTC)
    campaign = await Campaign.get_or_none(id=campaign_id, sandbox_id=sandbox_id).using_db(conn)
    if campaign is None or not campaign.experiment:
        raise CampaignNotFoundError("id", campaign_id)
    return await results_of(campaign, now, conn)


async def results_of(campaign: Campaign, now: datetime, conn: BaseDBAsyncClient | None) -> ExperimentResults:
    experiment = campaign.experiment or {}
    metric = ExperimentMetric(experiment["metric"])
    keys = [t["key"] for t in experiment["treatments"]]
    first = await CampaignRun.filter(campaign_id=campaign.id).using_db(conn).order_by("id").first()
    if experiment.get("mode") == ExperimentMode.TEST_THEN_WINNER.value and first is not None:
        # The test's results only: the rest (the campaign's next run) all got the winner.
        counts = await treatment_counts("run_id", first.id, conn)
    else:
        counts = await treatment_counts("campaign_id", campaign.id, conn)
    arms = [counts.get(k, TreatmentCounts(k)).arm(metric) for k in keys]
    comparison = compare(arms, lower_is_better=metric in LOWER_IS_BETTER)
    going, ends = await _test_window(campaign, conn)
    chosen = experiment.get("winner") or {}
    if chosen.get("treatment") and str(chosen.get("reason", "")).startswith("FALLBACK"):
        # No treatment won: the fallback went to the rest, the experiment itself stays inconclusive.
        status, winner = ExperimentStatus.INCONCLUSIVE, None
    elif chosen.get("treatment"):
        status, winner = ExperimentStatus.WINNER, chosen["treatment"]
    elif going or (ends is not None and now < ends):
        status, winner = ExperimentStatus.RUNNING, None
    elif comparison.winner is not None:
        status, winner = ExperimentStatus.WINNER, comparison.winner
    else:
        status, winner = ExperimentStatus.INCONCLUSIVE, None
    return ExperimentResults(
        campaign,
        metric,
        status,
        winner,
        chosen.get("by"),
        await held_out(campaign.id, conn),
        comparison,
        ends,
        chosen.get("treatment"),
        chosen.get("reason"),
    )
