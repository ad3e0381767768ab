"""Profile imports in GraphQL: `profileImport(id)`, `profileImports`, `profileImportProgress(id)`.

Uploading is HTTP (`POST /imports/profiles`, see api/imports.py): a file body does not belong in GraphQL.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated, Self

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from jobs.events import EventBus
from models.audience.import_format import ImportFormat as ImportFormatEnum
from models.audience.imports import TERMINAL, progress_topic
from models.audience.imports import ImportStatus as ImportStatusEnum
from models.audience.imports import ProfileImport as ProfileImportModel
from models.field_errors import FieldErrorCode as FieldErrorCodeEnum
from resolvers.audience.inputs import decode_id
from resolvers.context import Info
from resolvers.errors import FieldErrorCode
from resolvers.nodes import SandboxNode
from resolvers.pagination import Connection, paginate
from resolvers.permissions import VIEWER
from resolvers.vocabulary import described_enum

ImportStatus = described_enum(
    ImportStatusEnum,
    description="PENDING (queued), RUNNING, SUCCEEDED (every row read; some may be rejected) or FAILED.",
)
ImportFormat = described_enum(ImportFormatEnum, description="CSV with a header row, or NDJSON.")


@strawberry.type(description="A row of an import that was refused, and why; nothing of it was written.")
class ImportRejectedRow:
    line: int = strawberry.field(description="Line of the file where the row starts (the CSV header is line 1).")
    field: str = strawberry.field(
        description="CSV column or NDJSON field at fault; empty when the whole row is (e.g. malformed)."
    )
    code: FieldErrorCode = strawberry.field(description="Why, as a stable code.")  # type: ignore[valid-type]
    message: str = strawberry.field(description="Explanation for a person.")

    def __post_init__(self) -> None:
        # Stored with the import as plain text: rows of older versions may hold codes no longer known.
        self.code = FieldErrorCodeEnum.of(str(self.code))


@strawberry.type(description="A bulk import of profiles from an uploaded file, and how far it got.")
class ProfileImport(SandboxNode):
    model = ProfileImportModel

    pk: relay.NodeID[int]
    status: ImportStatus = strawberry.field(description="Where the import is in its life.")
    format: ImportFormat = strawberry.field(description="Format of the file.")
    file_name: str = strawberry.field(description="Name the file was uploaded with.")
    size_bytes: int = strawberry.field(description="Size of the uploaded file in bytes.")
    sha256: str = strawberry.field(description="SHA-256 of the uploaded file (hex).")
    rows_read: int = strawberry.field(description="Data rows read so far (rejected ones included).")
    created: int = strawberry.field(description="Profiles created.")
    updated: int = strawberry.field(description="Profiles changed.")
    unchanged: int = strawberry.field(description="Rows whose profile was already as given.")
    rejected: int = strawberry.field(description="Rows refused; nothing of them was written.")
    rejected_rows: list[ImportRejectedRow] = strawberry.field(description="The first 100 refused rows, in file order.")
    error: str | None = strawberry.field(description="Why a FAILED import stopped (e.g. a bad CSV header).")
    created_at: datetime = strawberry.field(description="When the file was received.")
    started_at: datetime | None = strawberry.field(description="When a worker started it.")
    finished_at: datetime | None = strawberry.field(description="When it SUCCEEDED or FAILED.")
    summary: JSON = strawberry.field(description="The counters as one object (for logs and scripts).")

    @classmethod
    def from_model(cls, row: ProfileImportModel) -> Self:
        return cls(
            pk=row.id,
            status=row.status,
            format=row.format,
            file_name=row.file_name,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            rows_read=row.rows_read,
            created=row.profiles_created,
            updated=row.profiles_updated,
            unchanged=row.profiles_unchanged,
            rejected=row.rows_rejected,
            rejected_rows=[
                ImportRejectedRow(line=r["line"], field=r["field"], code=r["code"], message=r["message"])
                for r in row.rejected_rows or []
            ],
            error=row.error,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            summary={
                "rowsRead": row.rows_read,
                "created": row.profiles_created,
                "updated": row.profiles_updated,
                "unchanged": row.profiles_unchanged,
                "rejected": row.rows_rejected,
            },
        )


ImportId = Annotated[strawberry.ID, strawberry.argument(description="A ProfileImport id.")]


async def _load(info: Info, global_id: str) -> ProfileImportModel | None:
    pk = decode_id(global_id, "ProfileImport")
    return await ProfileImport.scoped(info).get_or_none(id=pk) if pk else None


@strawberry.type
class ImportsQuery:
    @strawberry.field(description="A profile import by id; null when unknown here.", permission_classes=VIEWER)
    async def profile_import(self, info: Info, id: ImportId) -> ProfileImport | None:
        row = await _load(info, id)
        return ProfileImport.from_model(row) if row else None

    @strawberry.field(description="Profile imports of this sandbox, newest first.", permission_classes=VIEWER)
    async def profile_imports(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size, 0 to 100 (default 20).")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor to continue from.")] = None,
    ) -> Connection[ProfileImport]:
        return await paginate(
            ProfileImport.scoped(info),
            first=first,
            after=after,
            max_page_size=info.context.limits.max_page_size,
            to_node=ProfileImport.from_model,
        )


@strawberry.type
class ImportsSubscription:
    @strawberry.subscription(
        description="The import now, then again as it advances (at most a few times a second), ending once "
        "it has SUCCEEDED or FAILED. Ends at once for an unknown id.",
        permission_classes=VIEWER,
    )
    async def profile_import_progress(self, info: Info, id: ImportId) -> AsyncGenerator[ProfileImport, None]:
        events: EventBus | None = info.context.events
        if events is None:
            raise RuntimeError("no event bus configured")
        pk = decode_id(id, "ProfileImport")
        if pk is None:
            return
        sandbox_id = info.context.require_caller().sandbox_id
        # Subscribed before the first read, so no step between the two is missed.
        async with events.subscribe(sandbox_id, progress_topic(pk)) as updates:
            row = await ProfileImportModel.get_or_none(id=pk, sandbox_id=sandbox_id)
            if row is None:
                return
            yield ProfileImport.from_model(row)
            while row.status not in TERMINAL:
                await anext(updates)
                row = await ProfileImportModel.get(id=pk)
                yield ProfileImport.from_model(row)


NODE_TYPES = [ProfileImport]
