"""The reference for the GraphQL read path: a plain Starlette route serving the same page with Tortoise `.values()`.

Same rows and fields as the GraphQL query of bench/graphql_read.py (the first 20 listed campaigns of the
sandbox, newest first, with preset and segment names and summed run figures), read as such a route would with
Tortoise: four statements (campaigns, presets, segments, summaries; Herald's page is one, see
resolvers/campaigns/types.py `campaign_page`), same pool size, orjson, one uvicorn process, no access log, the
same garbage-collector tuning (api/gc_tuning.py).
No authentication, no validation, no GraphQL: what the data costs when nothing else does.

    BENCH_SANDBOX_ID=1 DATABASE_URL=postgres://… uvicorn bench.reference_app:app --no-access-log
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tortoise.contrib.starlette import RegisterTortoise
from tortoise.functions import Sum

from api.gc_tuning import tune_for_serving
from api.settings import tortoise_config
from models.audience.entities import Segment
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.rules import CampaignStatus
from models.presets.preset import MessagePreset

SANDBOX_ID = int(os.environ.get("BENCH_SANDBOX_ID", "1"))
LISTED = [CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.LIVE]


async def campaigns(request: Request) -> Response:
    rows = await (
        Campaign.filter(sandbox_id=SANDBOX_ID, status__in=LISTED)
        .order_by("-id")
        .limit(21)
        .values("id", "name", "status", "channel", "tags", "updated_at", "preset_id", "segment_id")
    )
    page, has_next = rows[:20], len(rows) > 20
    ids = [r["id"] for r in page]
    presets = {
        r["id"]: r["name"]
        for r in await MessagePreset.filter(sandbox_id=SANDBOX_ID, id__in={r["preset_id"] for r in page}).values(
            "id", "name"
        )
    }
    segments = {
        r["id"]: r["name"]
        for r in await Segment.filter(sandbox_id=SANDBOX_ID, id__in={r["segment_id"] for r in page}).values(
            "id", "name"
        )
    }
    sums = {
        r["campaign_id"]: r
        for r in await CampaignRun.filter(campaign_id__in=ids)
        .annotate(targeted=Sum("targeted"), excluded=Sum("excluded"), sent=Sum("sent"), failed=Sum("failed"))
        .group_by("campaign_id")
        .values("campaign_id", "targeted", "excluded", "sent", "failed")
    }
    items = []
    for r in page:
        s = sums.get(r["id"], {})
        items.append(
            {
                "id": r["id"],
                "name": r["name"],
                "status": r["status"],
                "channel": r["channel"],
                "tags": r["tags"],
                "updatedAt": r["updated_at"].isoformat(),
                "preset": {"name": presets.get(r["preset_id"])},
                "segment": {"name": segments.get(r["segment_id"])},
                "summary": {
                    "profilesTargeted": int(s.get("targeted") or 0) + int(s.get("excluded") or 0),
                    "actionsDelivered": int(s.get("sent") or 0),
                    "actionsFailed": int(s.get("failed") or 0),
                    "excluded": int(s.get("excluded") or 0),
                },
            }
        )
    body = {"campaigns": items, "hasNextPage": has_next, "endCursor": str(ids[-1]) if ids else None}
    return Response(orjson.dumps(body), media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b"ok")


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    pool = int(os.environ.get("DB_POOL_MAX", "20"))  # the same default as Herald's
    async with RegisterTortoise(app, config=tortoise_config(os.environ["DATABASE_URL"], pool)):
        tune_for_serving()  # as `herald serve` does
        yield


app = Starlette(routes=[Route("/campaigns", campaigns), Route("/healthz", healthz)], lifespan=_lifespan)
