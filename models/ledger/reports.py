"""Campaign reports (DESIGN §7): figures from SQL aggregates over the ledger and the tracking events.

A report is a handful of statements whatever the size of the campaign: one GROUP BY over the deliveries of
the window, one over its events, and on demand one each for the hourly series, the top links and the
recipient domains. Nothing here reads ledger rows one by one.

Window (`ReportWindow`): a run (its deliveries and events, whenever they happened), or a time range
[start, end) that selects deliveries by `created_at` (when the run's audience snapshot targeted the
profile) and events by their own `created_at`. All campaign runs when neither is given.

Delivery figures (`DeliveryFigures`): the definitions of models.ledger.figures, shared with runs, progress and
the campaign summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise import connections

from models.ledger.delivery import DeliveryStatus
from models.ledger.figures import HARD_BOUNCE_REASON, DeliveryFigures, delivery_figures
from models.reporting.tracking import TrackingEventKind
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of

_EX, _SENT, _DEL = DeliveryStatus.EXCLUDED.value, DeliveryStatus.SENT.value, DeliveryStatus.DELIVERED.value
_BOUNCED, _FAILED = DeliveryStatus.BOUNCED.value, DeliveryStatus.FAILED.value
_OPEN, _CLICK = TrackingEventKind.OPEN.value, TrackingEventKind.CLICK.value
# SQL conditions over a `delivery` row, matching the definitions above.
IS_DELIVERED = f"status IN ('{_SENT}', '{_DEL}')"
IS_BOUNCE = f"(status = '{_BOUNCED}' OR (status = '{_FAILED}' AND reason = '{HARD_BOUNCE_REASON}'))"
IS_SENT = f"({IS_DELIVERED} OR {IS_BOUNCE})"


@dataclass(frozen=True, slots=True)
class ReportWindow:
    """Which part of a campaign's history a report covers; see the module docstring."""

    run_id: int | None = None
    # One API trigger's rows (its campaign's triggers share one run), and the events of those rows.
    trigger_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventFigures:
    opens: int = 0
    unique_opens: int = 0
    clicks: int = 0
    unique_clicks: int = 0
    unsubscribes: int = 0
    complaints: int = 0


@dataclass(frozen=True, slots=True)
class Rates:
    """Fractions between 0 and 1 (not percentages); None when the denominator is 0."""

    delivery: float | None
    bounce: float | None
    error: float | None
    open: float | None
    click_through: float | None
    click_to_open: float | None


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def rates(deliveries: DeliveryFigures, events: EventFigures) -> Rates:
    """AJO's definitions (ajo-reference §5): delivered / sent, bounces / sent, errors / sent, unique opens /
    delivered, unique clicks / delivered (click-through), unique clicks / unique opens (click-to-open)."""
    return Rates(
        delivery=ratio(deliveries.delivered, deliveries.sent),
        bounce=ratio(deliveries.bounces, deliveries.sent),
        error=ratio(deliveries.errors, deliveries.sent),
        open=ratio(events.unique_opens, deliveries.delivered),
        click_through=ratio(events.unique_clicks, deliveries.delivered),
        click_to_open=ratio(events.unique_clicks, events.unique_opens),
    )


def event_figures(groups: list[Mapping[str, Any]]) -> EventFigures:
    """Folds `(kind, n, u)` groups (u = distinct deliveries) into the figures."""
    by_kind = {row["kind"]: (int(row["n"]), int(row["u"])) for row in groups}
    opens, clicks = by_kind.get(_OPEN, (0, 0)), by_kind.get(_CLICK, (0, 0))
    return EventFigures(
        opens=opens[0],
        unique_opens=opens[1],
        clicks=clicks[0],
        unique_clicks=clicks[1],
        unsubscribes=by_kind.get(TrackingEventKind.UNSUBSCRIBE.value, (0, 0))[0],
        complaints=by_kind.get(TrackingEventKind.COMPLAINT.value, (0, 0))[0],
    )


@dataclass(frozen=True, slots=True)
class HourFigures:
    hour: datetime
    sent: int
    delivered: int
    bounces: int
    opens: int
    clicks: int


@dataclass(frozen=True, slots=True)
class LinkFigures:
    url: str
    clicks: int
    unique_clicks: int


@dataclass(frozen=True, slots=True)
class DomainFigures:
    domain: str
    sent: int
    delivered: int
    bounces: int
    opens: int
    clicks: int


# ---- SQL, one dialect function per difference, side by side ----------------------------------------------------


def hour_of(column: str, dialect: Dialect) -> str:
    """The UTC hour a timestamp falls in: a `timestamp` on PostgreSQL, 'YYYY-MM-DD HH:00:00' text on SQLite."""
    if dialect is Dialect.POSTGRES:
        return f"date_trunc('hour', {column} AT TIME ZONE 'UTC')"
    return f"strftime('%Y-%m-%d %H:00:00', {column})"


def domain_of(column: str, dialect: Dialect) -> str:
    """The lower-cased part of an address after its first '@'."""
    position = f"strpos({column}, '@')" if dialect is Dialect.POSTGRES else f"instr({column}, '@')"
    return f"lower(substr({column}, {position} + 1))"


def _where(
    params: SqlParams, sandbox_id: int, campaign_id: int, window: ReportWindow, alias: str = "", events: bool = False
) -> str:
    """Scope and window of one table (`delivery`, or `tracking_event` with `events`: both carry these columns;
    a trigger's rows are found by `trigger_id` in the ledger, its events by their delivery)."""
    p = f"{alias}." if alias else ""
    parts = [f"{p}sandbox_id = {params.add(sandbox_id)}", f"{p}campaign_id = {params.add(campaign_id)}"]
    if window.run_id is not None:
        parts.append(f"{p}run_id = {params.add(window.run_id)}")
    if window.trigger_id is not None:
        trigger = params.add(window.trigger_id)
        if events:
            parts.append(f"{p}delivery_id IN (SELECT t.id FROM delivery t WHERE t.trigger_id = {trigger})")
        else:
            parts.append(f"{p}trigger_id = {trigger}")
    if window.start is not None:
        parts.append(f"{p}created_at >= {params.add(window.start.astimezone(UTC))}")
    if window.end is not None:
        parts.append(f"{p}created_at < {params.add(window.end.astimezone(UTC))}")
    return " AND ".join(parts)


window_condition = _where  # for the per-wave figures (models.ledger.waves)


async def _rows(sql: str, params: SqlParams) -> list[dict[str, Any]]:
    return await connections.get("default").execute_query_dict(sql, params.values)


async def report_totals(
    sandbox_id: int, campaign_id: int, window: ReportWindow
) -> tuple[DeliveryFigures, EventFigures]:
    """Two statements: the deliveries grouped by status and reason, the events grouped by kind."""
    params = SqlParams(dialect_of())
    deliveries = await _rows(
        f"SELECT status, reason, bounce_type, COUNT(*) AS n FROM delivery "
        f"WHERE {_where(params, sandbox_id, campaign_id, window)} GROUP BY status, reason, bounce_type",
        params,
    )
    params = SqlParams(params.dialect)
    events = await _rows(
        f"SELECT kind, COUNT(*) AS n, COUNT(DISTINCT delivery_id) AS u FROM tracking_event "
        f"WHERE {_where(params, sandbox_id, campaign_id, window, events=True)} GROUP BY kind",
        params,
    )
    return delivery_figures(deliveries), event_figures(events)


def _as_hour(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def hourly_series(sandbox_id: int, campaign_id: int, window: ReportWindow) -> list[HourFigures]:
    """One statement. Buckets (UTC hours; hours without activity are left out): sent by the send time (the
    last update for a bounce refused during the send), delivered by the receipt time or else the send time,
    bounces by the feedback time or else the last update, opens and clicks by event time."""
    params = SqlParams(dialect_of())
    d = params.dialect
    parts = [
        f"SELECT {hour_of(time, d)} AS hour, {cols} FROM delivery "
        f"WHERE {_where(params, sandbox_id, campaign_id, window)} AND {condition} GROUP BY {hour_of(time, d)}"
        for time, cols, condition in (
            ("COALESCE(sent_at, updated_at)", "COUNT(*) AS sent, 0 AS delivered, 0 AS bounces, 0 AS opens, 0 AS clicks",
             IS_SENT),
            ("COALESCE(delivered_at, sent_at)", "0, COUNT(*), 0, 0, 0", IS_DELIVERED),
            ("COALESCE(delivered_at, updated_at)", "0, 0, COUNT(*), 0, 0", IS_BOUNCE),
        )
    ]  # fmt: skip
    parts.append(
        f"SELECT {hour_of('created_at', d)}, 0, 0, 0, "
        f"SUM(CASE WHEN kind = '{_OPEN}' THEN 1 ELSE 0 END), SUM(CASE WHEN kind = '{_CLICK}' THEN 1 ELSE 0 END) "
        f"FROM tracking_event WHERE {_where(params, sandbox_id, campaign_id, window, events=True)} "
        f"AND kind IN ('{_OPEN}', '{_CLICK}') GROUP BY {hour_of('created_at', d)}"
    )
    sql = (
        "SELECT hour, SUM(sent) AS sent, SUM(delivered) AS delivered, SUM(bounces) AS bounces, "
        f"SUM(opens) AS opens, SUM(clicks) AS clicks FROM ({' UNION ALL '.join(parts)}) s "
        "GROUP BY hour ORDER BY hour"
    )
    return [
        HourFigures(
            hour=_as_hour(r["hour"]),
            sent=int(r["sent"]),
            delivered=int(r["delivered"]),
            bounces=int(r["bounces"]),
            opens=int(r["opens"]),
            clicks=int(r["clicks"]),
        )
        for r in await _rows(sql, params)
        if r["hour"] is not None
    ]


async def top_links(sandbox_id: int, campaign_id: int, window: ReportWindow, limit: int = 10) -> list[LinkFigures]:
    """One statement: clicks and unique clicks (distinct deliveries) per URL, most clicked first."""
    params = SqlParams(dialect_of())
    sql = (
        "SELECT l.url AS url, COUNT(*) AS clicks, COUNT(DISTINCT e.delivery_id) AS uniq "
        "FROM tracking_event e JOIN tracked_link l ON l.id = e.link_id "
        f"WHERE {_where(params, sandbox_id, campaign_id, window, 'e', events=True)} AND e.kind = '{_CLICK}' "
        f"GROUP BY l.url ORDER BY clicks DESC, l.url LIMIT {params.add(limit)}"
    )
    return [LinkFigures(r["url"], int(r["clicks"]), int(r["uniq"])) for r in await _rows(sql, params)]


async def domain_breakdown(
    sandbox_id: int, campaign_id: int, window: ReportWindow, limit: int = 10
) -> list[DomainFigures]:
    """One statement: per recipient domain (email addresses), the window's deliveries that were not excluded
    and the opens and clicks of those deliveries within the window; most sent first."""
    params = SqlParams(dialect_of())
    d = params.dialect
    events = (
        f"SELECT delivery_id, SUM(CASE WHEN kind = '{_OPEN}' THEN 1 ELSE 0 END) AS opens, "
        f"SUM(CASE WHEN kind = '{_CLICK}' THEN 1 ELSE 0 END) AS clicks FROM tracking_event "
        f"WHERE {_where(params, sandbox_id, campaign_id, window, events=True)} AND kind IN ('{_OPEN}', '{_CLICK}') "
        "GROUP BY delivery_id"
    )
    flag = "CASE WHEN {} THEN 1 ELSE 0 END"
    deliveries = (
        f"SELECT id, {domain_of('address', d)} AS domain, {flag.format(IS_SENT)} AS sent, "
        f"{flag.format(IS_DELIVERED)} AS delivered, {flag.format(IS_BOUNCE)} AS bounced FROM delivery "
        f"WHERE {_where(params, sandbox_id, campaign_id, window)} AND status <> '{_EX}' AND address LIKE '%@%'"
    )
    sql = (
        f"WITH ev AS ({events}), dl AS ({deliveries}) "
        "SELECT dl.domain AS domain, SUM(dl.sent) AS sent, SUM(dl.delivered) AS delivered, "
        "SUM(dl.bounced) AS bounces, SUM(COALESCE(ev.opens, 0)) AS opens, SUM(COALESCE(ev.clicks, 0)) AS clicks "
        "FROM dl LEFT JOIN ev ON ev.delivery_id = dl.id "
        f"GROUP BY dl.domain ORDER BY sent DESC, dl.domain LIMIT {params.add(limit)}"
    )
    return [
        DomainFigures(r["domain"], int(r["sent"]), int(r["delivered"]), int(r["bounces"]), int(r["opens"]),
                      int(r["clicks"]))
        for r in await _rows(sql, params)
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class TreatmentFigures:
    """The report's figures restricted to the deliveries of one experiment treatment."""

    key: str
    deliveries: DeliveryFigures
    events: EventFigures


async def treatment_breakdown(sandbox_id: int, campaign_id: int, window: ReportWindow) -> list[TreatmentFigures]:
    """Two statements, the report's own groups with the ledger's treatment added (rows without one — no
    experiment, the holdout, the rest awaiting a winner — are left out); the same folds as `report_totals`."""
    params = SqlParams(dialect_of())
    deliveries = await _rows(
        f"SELECT treatment, status, reason, bounce_type, COUNT(*) AS n FROM delivery "
        f"WHERE {_where(params, sandbox_id, campaign_id, window)} AND treatment IS NOT NULL "
        "GROUP BY treatment, status, reason, bounce_type",
        params,
    )
    params = SqlParams(params.dialect)
    events = await _rows(
        "SELECT d.treatment AS treatment, e.kind AS kind, COUNT(*) AS n, COUNT(DISTINCT e.delivery_id) AS u "
        f"FROM tracking_event e JOIN delivery d ON d.id = e.delivery_id "
        f"WHERE {_where(params, sandbox_id, campaign_id, window, 'e', events=True)} AND d.treatment IS NOT NULL "
        "GROUP BY d.treatment, e.kind",
        params,
    )
    by_key: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for row in deliveries:
        by_key.setdefault(row["treatment"], ([], []))[0].append(row)
    for row in events:
        by_key.setdefault(row["treatment"], ([], []))[1].append(row)
    return [
        TreatmentFigures(key, delivery_figures(groups), event_figures(kinds))
        for key, (groups, kinds) in sorted(by_key.items())
    ]
