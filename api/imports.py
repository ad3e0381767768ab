"""`POST /imports/profiles`: upload a CSV or NDJSON file of profiles; an arq job imports it.

    curl -X POST 'http://host/imports/profiles?filename=crm.csv' \
         -H 'Authorization: Bearer <ADMIN key>' -H 'Content-Type: text/csv' --data-binary @crm.csv

The body is streamed to `data_dir/imports/` (never held whole in memory) and capped by
`IMPORT_MAX_BYTES` (413 beyond). A CSV header is checked before anything is queued (422 with every
problem). On success: 202 with the import's global id; follow it with the `profileImport(id)` query or the
`profileImportProgress(id)` subscription. Column mapping: see models/audience/import_format.py.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from strawberry import relay

from api.auth import authenticate_request, json_error
from jobs.queue import JobQueue
from models.audience.import_format import ImportFormat
from models.audience.imports import ImportRefused, receive_import
from models.audience.profiles import namespaces_by_code
from models.tenancy.sandbox import Role
from resolvers.context import Caller

logger = logging.getLogger(__name__)

CONTENT_TYPES = {
    "text/csv": ImportFormat.CSV,
    "application/csv": ImportFormat.CSV,
    "application/x-ndjson": ImportFormat.NDJSON,
    "application/ndjson": ImportFormat.NDJSON,
    "application/jsonl": ImportFormat.NDJSON,
}
_STATUS = {"TOO_LARGE": 413, "EMPTY": 400, "BAD_HEADER": 422}


async def upload_profiles(request: Request) -> Response:
    caller = await authenticate_request(request, Role.ADMIN, "Importing profiles needs an ADMIN key.")
    if not isinstance(caller, Caller):
        return caller
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    format = CONTENT_TYPES.get(media_type)
    if format is None:
        return json_error(
            415, "UNSUPPORTED_MEDIA_TYPE", "Send Content-Type text/csv (with a header row) or application/x-ndjson."
        )
    settings = request.app.state.settings
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.import_max_bytes:
        return json_error(413, "TOO_LARGE", f"The file is larger than {settings.import_max_bytes} bytes.")
    file_name = request.query_params.get("filename") or f"upload.{format.value.lower()}"
    try:
        row = await receive_import(
            caller.sandbox_id,
            request.stream(),
            format=format,
            file_name=file_name,
            actor=caller.actor,
            data_dir=settings.data_dir,
            max_bytes=settings.import_max_bytes,
            namespace_codes=set(await namespaces_by_code(caller.sandbox_id)),
        )
    except ImportRefused as refused:
        extra = {"problems": refused.problems} if refused.problems else {}
        return json_error(_STATUS.get(refused.code, 400), refused.code, refused.message, **extra)
    except ClientDisconnect:
        return Response(status_code=400)
    queue: JobQueue = request.app.state.queue
    await queue.import_profiles(row.id)
    return JSONResponse(
        {
            "id": str(relay.GlobalID("ProfileImport", str(row.id))),
            "status": row.status.value,
            "format": row.format.value,
            "fileName": row.file_name,
            "sizeBytes": row.size_bytes,
            "sha256": row.sha256,
        },
        status_code=202,
    )
