"""`GET /exports/runs/{runId}/deliveries.csv`: one run's delivery ledger as CSV, streamed.

    curl -H 'Authorization: Bearer <VIEWER key or above>' \
         'http://host/exports/runs/Q2FtcGFpZ25SdW46MTI=/deliveries.csv' -o deliveries.csv

The ledger is read in keyset chunks of EXPORT_CHUNK_ROWS rows (by delivery id) and each chunk is written to
the response as it is read, so memory stays flat whatever the size of the run. A run of another sandbox, or
no run, answers 404. Text cells starting with `=`, `+`, `-`, `@`, tab or carriage return get a leading `'`
so that spreadsheets do not evaluate them as formulas (CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from strawberry import relay

from api.auth import authenticate_request, json_error
from models.campaigns.campaign import CampaignRun
from models.ledger.delivery import Delivery
from models.tenancy.sandbox import Role
from resolvers.context import Caller
from resolvers.nodes import pk_of

EXPORT_CHUNK_ROWS = 1000
COLUMNS = (
    "delivery_id",
    "profile_id",
    "address",
    "status",
    "reason",
    "bounce_type",
    "attempts",
    "sent_at",
    "delivered_at",
    "last_error",
    "treatment",
)
# The ledger columns behind COLUMNS, in the same order.
_FIELDS = ("id", *COLUMNS[1:])
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A CSV cell that no spreadsheet evaluates."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_text(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode()


async def delivery_csv(run_id: int, chunk_rows: int = EXPORT_CHUNK_ROWS) -> AsyncIterator[bytes]:
    """The header, then one block of CSV per keyset chunk of the run's ledger."""
    yield _csv_text([list(COLUMNS)])
    after = 0
    while True:
        rows = await Delivery.filter(run_id=run_id, id__gt=after).order_by("id").limit(chunk_rows).values_list(*_FIELDS)
        if not rows:
            return
        after = rows[-1][0]
        lines = []
        for row in rows:
            cells = dict(zip(_FIELDS, row, strict=True))
            cells["profile_id"] = relay.GlobalID("Profile", str(cells["profile_id"]))
            lines.append([safe_cell(cells[name]) for name in _FIELDS])
        yield _csv_text(lines)
        if len(rows) < chunk_rows:
            return


async def export_run_deliveries(request: Request) -> Response:
    caller = await authenticate_request(request, Role.VIEWER, "Exporting deliveries needs a VIEWER key or above.")
    if not isinstance(caller, Caller):
        return caller
    run_pk = pk_of(request.path_params["run_id"], "CampaignRun")
    if run_pk is None or not await CampaignRun.filter(id=run_pk, sandbox_id=caller.sandbox_id).exists():
        return json_error(404, "NOT_FOUND", "No campaign run with that id in this sandbox.")
    return StreamingResponse(
        delivery_csv(run_pk),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="run-{run_pk}-deliveries.csv"',
            "Cache-Control": "no-store",
        },
    )
