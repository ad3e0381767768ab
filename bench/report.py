"""`campaignReport(ALL_TIME)` over a large ledger vs a hand-written SQL aggregate of the same figures
(issue 7: >= 0.8 of its reports/s).

Generates, with `generate_series` and `INSERT … SELECT`, one campaign with BENCH_REPORT_RUNS runs of
BENCH_REPORT_PROFILES profiles (default 100 x 10,000 = 1,000,000 deliveries in every ledger status) and
BENCH_REPORT_EVENTS tracking events (default 300,000: two thirds opens, one third clicks over 5 links per run).
Then it times, alternately, the GraphQL query (over HTTP, against `herald serve`) and the reference: the same
figures by hand-written PostgreSQL statements over one asyncpg connection kept open. Both answers are compared
before any timing counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from strawberry import relay

from bench.common import Result, dsn_for, free_port, herald_serve

RUNS = int(os.environ.get("BENCH_REPORT_RUNS", "100"))
PROFILES = int(os.environ.get("BENCH_REPORT_PROFILES", "10000"))
EVENTS = int(os.environ.get("BENCH_REPORT_EVENTS", "300000"))
ROUNDS = int(os.environ.get("BENCH_REPORT_ROUNDS", "5"))
BASE = datetime(2026, 1, 1, 8, tzinfo=UTC)

QUERY = """
query($id: ID!) {
  campaignReport(id: $id, window: {period: ALL_TIME}) {
    ... on CampaignReport {
      targeted excluded excludedByReason { reason count }
      sent delivered bounces hardBounces softBounces bouncesByReason { reason count }
      errors errorsByReason { reason count } pending cancelled
      opens uniqueOpens clicks uniqueClicks unsubscribes complaints
      deliveryRate bounceRate errorRate openRate clickThroughRate clickToOpenRate
      hourly { hour sent delivered bounces opens clicks }
      topLinks { url clicks uniqueClicks }
      domains { domain sent delivered bounces opens clicks }
    }
  }
}
"""

# Status of delivery k = (7 * profile + run) % 100.
STATUS_CASE = """
  CASE WHEN k < 2 THEN 'EXCLUDED' WHEN k = 2 THEN 'EXCLUDED' WHEN k IN (3, 4) THEN 'FAILED'
       WHEN k IN (5, 6) THEN 'BOUNCED' WHEN k < 40 THEN 'DELIVERED' ELSE 'SENT' END
"""
REASON_CASE = """
  CASE WHEN k < 2 THEN 'NO_CONSENT' WHEN k = 2 THEN 'SUPPRESSED' WHEN k = 3 THEN 'RETRY_EXPIRED'
       WHEN k = 4 THEN 'HARD_BOUNCE' WHEN k = 5 THEN 'MAILBOX_FULL' WHEN k = 6 THEN 'HARD_BOUNCE' END
"""


async def generate(conn: asyncpg.Connection, sandbox_id: int) -> int:
    """The campaign, its runs, profiles, ledger, links and events; returns the campaign id."""
    campaign_id = await conn.fetchval("SELECT min(id) FROM campaign WHERE sandbox_id = $1", sandbox_id)
    await conn.execute(
        "INSERT INTO campaign_run (sandbox_id, campaign_id, scheduled_for, status, targeted, excluded, sent, "
        "delivered, failed, created_at) SELECT $1, $2, $3::timestamptz + r * interval '1 day', 'SUCCEEDED', "
        "0, 0, 0, 0, 0, now() FROM generate_series(0, $4 - 1) r",
        sandbox_id, campaign_id, BASE, RUNS,
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO profile (sandbox_id, attributes, consent_email, consent_sms, consent_push, test_profile, "
        "created_at, updated_at) SELECT $1, jsonb_build_object('benchReport', p), 'UNKNOWN', 'UNKNOWN', "
        "'UNKNOWN', false, now(), now() FROM generate_series(0, $2 - 1) p",
        sandbox_id, PROFILES,
    )  # fmt: skip
    await conn.execute(
        f"""
        WITH runs AS (SELECT id, scheduled_for, row_number() OVER (ORDER BY id) - 1 AS r FROM campaign_run
                      WHERE campaign_id = $2 AND scheduled_for >= $3 AND scheduled_for < $4),
             profs AS (SELECT id, (attributes->>'benchReport')::int AS p FROM profile
                       WHERE sandbox_id = $1 AND attributes ? 'benchReport'),
             x AS (SELECT runs.id AS run_id, runs.scheduled_for AS at, profs.id AS profile_id, profs.p,
                          (7 * profs.p + runs.r) % 100 AS k FROM runs CROSS JOIN profs)
        INSERT INTO delivery (sandbox_id, run_id, campaign_id, profile_id, status, reason, address, idempotency_key,
                              attempts, sent_at, delivered_at, bounce_type, created_at, updated_at)
        SELECT $1, run_id, $2, profile_id, {STATUS_CASE}, {REASON_CASE},
               'user' || p || '@d' || (p % 50) || '.example.com', run_id || '-' || profile_id,
               CASE WHEN k < 3 THEN 0 ELSE 1 END,
               CASE WHEN k >= 5 THEN at + (p % 7200) * interval '1 second' END,
               CASE WHEN k = 6 OR (k >= 7 AND k < 40) THEN at + (p % 7200 + 600) * interval '1 second' END,
               CASE WHEN k = 6 THEN 'HARD' WHEN k = 5 THEN 'SOFT' END,
               at, at + (p % 7200 + 60) * interval '1 second'
        FROM x
        """,
        sandbox_id, campaign_id, BASE, BASE + timedelta(days=RUNS),
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO tracked_link (sandbox_id, run_id, campaign_id, url_hash, url, created_at) "
        "SELECT $1, r.id, $2, md5('https://shop.example.com/' || n), 'https://shop.example.com/' || n, now() "
        "FROM campaign_run r CROSS JOIN generate_series(0, 4) n WHERE r.campaign_id = $2 AND r.scheduled_for >= $3 "
        "AND r.scheduled_for < $4",
        sandbox_id, campaign_id, BASE, BASE + timedelta(days=RUNS),
    )  # fmt: skip
    opens, clicks = EVENTS * 2 // 3, EVENTS - EVENTS * 2 // 3
    await conn.execute(
        "INSERT INTO tracking_event (sandbox_id, campaign_id, run_id, delivery_id, profile_id, kind, created_at) "
        "SELECT sandbox_id, campaign_id, run_id, id, profile_id, 'OPEN', sent_at + interval '20 minutes' "
        "FROM delivery WHERE campaign_id = $1 AND status IN ('SENT', 'DELIVERED') ORDER BY id LIMIT $2",
        campaign_id, opens,
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO tracking_event (sandbox_id, campaign_id, run_id, delivery_id, profile_id, kind, link_id, "
        "created_at) SELECT d.sandbox_id, d.campaign_id, d.run_id, d.id, d.profile_id, 'CLICK', "
        "(SELECT l.id FROM tracked_link l WHERE l.run_id = d.run_id ORDER BY l.id LIMIT 1 OFFSET d.id % 5), "
        "d.sent_at + interval '25 minutes' FROM delivery d WHERE d.campaign_id = $1 "
        "AND d.status IN ('SENT', 'DELIVERED') AND d.id % 3 = 0 ORDER BY d.id DESC LIMIT $2",
        campaign_id, clicks,
    )  # fmt: skip
    await conn.execute("ANALYZE delivery; ANALYZE tracking_event; ANALYZE tracked_link")
    return campaign_id


async def reference(conn: asyncpg.Connection, sandbox_id: int, campaign_id: int) -> dict[str, Any]:
    """The same figures, written by hand for PostgreSQL."""
    where = "sandbox_id = $1 AND campaign_id = $2"
    groups = await conn.fetch(
        f"SELECT status, reason, bounce_type, count(*) AS n FROM delivery WHERE {where} GROUP BY 1, 2, 3",
        sandbox_id, campaign_id,
    )  # fmt: skip
    totals: dict[str, int] = {}
    excluded: dict[str, int] = {}
    errors: dict[str, int] = {}
    bounces: dict[str, int] = {}
    hard_n = soft_n = 0
    for g in groups:
        totals[g["status"]] = totals.get(g["status"], 0) + g["n"]
        reason = g["reason"] or "UNKNOWN"
        if g["status"] == "EXCLUDED":
            excluded[reason] = excluded.get(reason, 0) + g["n"]
        elif (g["status"] == "FAILED" and reason == "HARD_BOUNCE") or (
            g["status"] == "BOUNCED" and g["bounce_type"] == "HARD"
        ):
            hard_n += g["n"]
            bounces[reason] = bounces.get(reason, 0) + g["n"]
        elif g["status"] == "BOUNCED":
            soft_n += g["n"]
            bounces[reason] = bounces.get(reason, 0) + g["n"]
        elif g["status"] == "FAILED":
            errors[reason] = errors.get(reason, 0) + g["n"]
    events = {
        r["kind"]: r
        for r in await conn.fetch(
            f"SELECT kind, count(*) AS n, count(DISTINCT delivery_id) AS u FROM tracking_event WHERE {where} "
            "GROUP BY kind",
            sandbox_id, campaign_id,
        )
    }  # fmt: skip
    hourly = await conn.fetch(
        f"""
        SELECT h, sum(s) AS s, sum(d) AS d, sum(b) AS b, sum(o) AS o, sum(c) AS c FROM (
          SELECT date_trunc('hour', coalesce(sent_at, updated_at) AT TIME ZONE 'UTC') AS h, count(*) AS s,
                 0 AS d, 0 AS b, 0 AS o, 0 AS c FROM delivery
           WHERE {where} AND (status IN ('SENT', 'DELIVERED', 'BOUNCED') OR (status = 'FAILED'
                 AND reason = 'HARD_BOUNCE')) GROUP BY 1
          UNION ALL
          SELECT date_trunc('hour', coalesce(delivered_at, sent_at) AT TIME ZONE 'UTC'), 0, count(*), 0, 0, 0
            FROM delivery WHERE {where} AND status IN ('SENT', 'DELIVERED') GROUP BY 1
          UNION ALL
          SELECT date_trunc('hour', coalesce(delivered_at, updated_at) AT TIME ZONE 'UTC'), 0, 0, count(*), 0, 0
            FROM delivery WHERE {where} AND (status = 'BOUNCED' OR (status = 'FAILED' AND reason = 'HARD_BOUNCE'))
           GROUP BY 1
          UNION ALL
          SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC'), 0, 0, 0, count(*) FILTER (WHERE kind = 'OPEN'),
                 count(*) FILTER (WHERE kind = 'CLICK') FROM tracking_event WHERE {where} GROUP BY 1
        ) s GROUP BY h ORDER BY h
        """,
        sandbox_id, campaign_id,
    )  # fmt: skip
    links = await conn.fetch(
        "SELECT l.url, count(*) AS n, count(DISTINCT e.delivery_id) AS u FROM tracking_event e "
        "JOIN tracked_link l ON l.id = e.link_id WHERE e.sandbox_id = $1 AND e.campaign_id = $2 "
        "AND e.kind = 'CLICK' GROUP BY l.url ORDER BY n DESC, l.url LIMIT 10",
        sandbox_id, campaign_id,
    )  # fmt: skip
    domains = await conn.fetch(
        f"""
        WITH ev AS (SELECT delivery_id, count(*) FILTER (WHERE kind = 'OPEN') AS o,
                           count(*) FILTER (WHERE kind = 'CLICK') AS c
                      FROM tracking_event WHERE {where} GROUP BY delivery_id)
        SELECT lower(split_part(d.address, '@', 2)) AS domain,
               count(*) FILTER (WHERE d.status IN ('SENT', 'DELIVERED', 'BOUNCED')
                                OR (d.status = 'FAILED' AND d.reason = 'HARD_BOUNCE')) AS s,
               count(*) FILTER (WHERE d.status IN ('SENT', 'DELIVERED')) AS dl,
               count(*) FILTER (WHERE d.status = 'BOUNCED' OR (d.status = 'FAILED' AND d.reason = 'HARD_BOUNCE')) AS b,
               coalesce(sum(ev.o), 0) AS o, coalesce(sum(ev.c), 0) AS c
          FROM delivery d LEFT JOIN ev ON ev.delivery_id = d.id
         WHERE d.sandbox_id = $1 AND d.campaign_id = $2 AND d.status <> 'EXCLUDED' AND d.address LIKE '%@%'
         GROUP BY 1 ORDER BY s DESC, 1 LIMIT 10
        """,
        sandbox_id, campaign_id,
    )  # fmt: skip
    delivered = totals.get("SENT", 0) + totals.get("DELIVERED", 0)
    opens, clicks = events.get("OPEN"), events.get("CLICK")
    return {
        # One meaning per counter (models/ledger/figures.py): targeted is the audience after exclusions.
        "targeted": sum(totals.values()) - totals.get("EXCLUDED", 0),
        "excluded": totals.get("EXCLUDED", 0),
        "sent": delivered + hard_n + soft_n,
        "delivered": delivered,
        "hardBounces": hard_n,
        "softBounces": soft_n,
        "errors": sum(errors.values()),
        "uniqueOpens": opens["u"] if opens else 0,
        "clicks": clicks["n"] if clicks else 0,
        "hours": len(hourly),
        "hourlySent": sum(int(h["s"]) for h in hourly),
        "topLink": (links[0]["url"], links[0]["n"], links[0]["u"]) if links else None,
        "topDomain": (domains[0]["domain"], domains[0]["s"], domains[0]["o"]) if domains else None,
    }


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    top, dom = report["topLinks"], report["domains"]
    return {
        **{k: report[k] for k in ("targeted", "excluded", "sent", "delivered", "hardBounces", "softBounces", "errors",
                                  "uniqueOpens", "clicks")},
        "hours": len(report["hourly"]),
        "hourlySent": sum(h["sent"] for h in report["hourly"]),
        "topLink": (top[0]["url"], top[0]["clicks"], top[0]["uniqueClicks"]) if top else None,
        "topDomain": (dom[0]["domain"], dom[0]["sent"], dom[0]["opens"]) if dom else None,
    }  # fmt: skip


def post(url: str, key: str, campaign_gid: str) -> dict[str, Any]:
    body = json.dumps({"query": QUERY, "variables": {"id": campaign_gid}}).encode()
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.loads(response.read())
    if answer.get("errors"):
        raise RuntimeError(answer["errors"])
    return answer["data"]["campaignReport"]


def run(database: str, seeded: dict) -> Result:
    sandbox_id, key = int(seeded["sandbox_id"]), str(seeded["key"])

    async def prepare() -> int:
        conn = await asyncpg.connect(dsn_for(database))
        try:
            started = time.perf_counter()
            campaign_id = await generate(conn, sandbox_id)
            rows = await conn.fetchval("SELECT count(*) FROM delivery WHERE campaign_id = $1", campaign_id)
            events = await conn.fetchval("SELECT count(*) FROM tracking_event WHERE campaign_id = $1", campaign_id)
            print(f"  report: generated {rows} deliveries, {events} events in {time.perf_counter() - started:.1f} s",
                  flush=True)  # fmt: skip
            return campaign_id
        finally:
            await conn.close()

    campaign_id = asyncio.run(prepare())
    campaign_gid = str(relay.GlobalID("Campaign", str(campaign_id)))
    port = free_port()

    async def measure(url: str) -> tuple[list[float], list[float]]:
        conn = await asyncpg.connect(dsn_for(database))
        try:
            # The first answers of each side are compared, and warm both (caches, prepared statements).
            warm = comparable(await asyncio.to_thread(post, url, key, campaign_gid))
            expected = await reference(conn, sandbox_id, campaign_id)
            if warm != expected:
                raise RuntimeError(f"the report differs from the reference:\n{warm}\n{expected}")
            gql_times, ref_times = [], []
            for round_no in range(ROUNDS):
                for which in ("ref", "gql") if round_no % 2 == 0 else ("gql", "ref"):
                    started = time.perf_counter()
                    if which == "ref":
                        await reference(conn, sandbox_id, campaign_id)
                        ref_times.append(time.perf_counter() - started)
                    else:
                        await asyncio.to_thread(post, url, key, campaign_gid)
                        gql_times.append(time.perf_counter() - started)
            return gql_times, ref_times
        finally:
            await conn.close()

    with herald_serve(database, port):
        gql_times, ref_times = asyncio.run(measure(f"http://127.0.0.1:{port}/graphql"))
    gql_rate, ref_rate = 1 / statistics.median(gql_times), 1 / statistics.median(ref_times)
    return Result(
        "report", "rep/s", gql_rate, ref_rate, ">= 0.8", gql_rate / ref_rate >= 0.8,
        f"{RUNS * PROFILES} deliveries, {EVENTS} events; median {statistics.median(gql_times) * 1000:.0f} ms vs "
        f"{statistics.median(ref_times) * 1000:.0f} ms (reference); rounds gql "
        f"{[round(t * 1000) for t in gql_times]} ref {[round(t * 1000) for t in ref_times]} ms",
    )  # fmt: skip
