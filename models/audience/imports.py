"""Profile imports: the uploaded file kept on disk, its ProfileImport row, and the steps of its life.

PENDING (file stored, job queued) → RUNNING (batches committed one by one) → SUCCEEDED | FAILED.
Each batch commits its profiles together with the import's counters and the byte offset it reached, so a
job that runs again (arq delivers at least once) resumes after the last committed batch; a compare-and-set
on that offset lets only one runner advance.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models.audience.import_format import FileRefused, ImportFormat, parse_header, read_csv
from models.base import SandboxModel
from models.tenancy.audit import record_audit

MAX_REJECTED_ROWS_KEPT = 100
IMPORTS_DIR = "imports"


class ImportStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


TERMINAL = (ImportStatus.SUCCEEDED, ImportStatus.FAILED)


class ProfileImport(SandboxModel):
    """A bulk import of profiles from an uploaded CSV or NDJSON file, with its progress and rejected rows."""

    status = fields.CharEnumField(ImportStatus, max_length=16, default=ImportStatus.PENDING)
    format = fields.CharEnumField(ImportFormat, max_length=8)
    file_name = fields.CharField(max_length=255)
    stored_name = fields.CharField(max_length=100)
    size_bytes = fields.BigIntField()
    sha256 = fields.CharField(max_length=64)
    actor = fields.CharField(max_length=100)
    rows_read = fields.BigIntField(default=0)
    profiles_created = fields.BigIntField(default=0)
    profiles_updated = fields.BigIntField(default=0)
    profiles_unchanged = fields.BigIntField(default=0)
    rows_rejected = fields.BigIntField(default=0)
    # The first rejected rows: [{line, field, code, message}].
    rejected_rows = fields.JSONField(default=list)
    # Where the next batch starts: byte offset in the file and the last line read before it.
    resume_offset = fields.BigIntField(default=0)
    resume_line = fields.BigIntField(default=0)
    error = fields.TextField(null=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "profile_import"
        indexes = (("sandbox_id", "status"),)


class ImportRefused(Exception):
    """The upload cannot become an import: `code` says why (TOO_LARGE, EMPTY, BAD_HEADER)."""

    def __init__(self, code: str, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problems = problems or []


class ImportSuperseded(Exception):
    """Another run of the same import committed first; this run stops without writing."""


def progress_topic(import_id: int) -> str:
    """The event topic an import's progress is published on (jobs/events.py)."""
    return f"profile_import.{import_id}"


def import_path(data_dir: Path, stored_name: str) -> Path:
    return Path(data_dir) / IMPORTS_DIR / stored_name


async def receive_import(
    sandbox_id: int,
    chunks: AsyncIterator[bytes],
    *,
    format: ImportFormat,
    file_name: str,
    actor: str,
    data_dir: Path,
    max_bytes: int,
    namespace_codes: set[str],
) -> ProfileImport:
    """Stream an upload to disk (never whole in memory), check a CSV header, and create a PENDING import.

    The caller enqueues the job after this returns (the row is committed by then).
    """
    directory = Path(data_dir) / IMPORTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    stored_name = f"{uuid.uuid4().hex}.{format.value.lower()}"
    final = directory / stored_name
    partial = directory / f"{stored_name}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(partial, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise ImportRefused("TOO_LARGE", f"the file is larger than {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise ImportRefused("EMPTY", "the file is empty")
        if format is ImportFormat.CSV:
            check_csv_header(partial, namespace_codes)
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    try:
        async with in_transaction() as conn:
            row = await ProfileImport.create(
                sandbox_id=sandbox_id,
                format=format,
                file_name=file_name[:255],
                stored_name=stored_name,
                size_bytes=size,
                sha256=digest.hexdigest(),
                actor=actor,
                using_db=conn,
            )
            await record_audit(
                sandbox_id=sandbox_id,
                actor=actor,
                action="CREATE",
                object_type="ProfileImport",
                object_id=row.id,
                after={"format": format.value, "fileName": row.file_name, "sizeBytes": size},
                using_db=conn,
            )
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    return row


def check_csv_header(path: Path, namespace_codes: set[str]) -> list[Any]:
    """The header's columns; ImportRefused(BAD_HEADER) with every problem when it cannot be imported."""
    with open(path, "rb") as stream:
        first = next(read_csv(stream), None)
    if first is None:
        raise ImportRefused("EMPTY", "the file has no header row")
    if first.problem is not None:
        raise ImportRefused("BAD_HEADER", f"the header row cannot be read: {first.problem.message}")
    try:
        return parse_header(first.values, namespace_codes)
    except FileRefused as refused:
        raise ImportRefused(
            "BAD_HEADER", "the header row names columns that cannot be imported", refused.problems
        ) from None


async def claim_import(import_id: int) -> ProfileImport | None:
    """The import to run: PENDING becomes RUNNING; a RUNNING one (a job run again) resumes; None when done."""
    now = datetime.now(UTC)
    await ProfileImport.filter(id=import_id, status=ImportStatus.PENDING).update(
        status=ImportStatus.RUNNING, started_at=now, updated_at=now
    )
    row = await ProfileImport.get_or_none(id=import_id)
    if row is None or row.status is not ImportStatus.RUNNING:
        return None
    return row


@dataclass(slots=True)
class BatchCounts:
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0


async def commit_batch_progress(
    conn: BaseDBAsyncClient,
    row: ProfileImport,
    counts: BatchCounts,
    *,
    end_offset: int,
    end_line: int,
    rejected_rows: list[dict[str, Any]],
    first_line: int,
) -> None:
    """Inside the batch's transaction: advance the import by compare-and-set on its offset, and audit."""
    now = datetime.now(UTC)
    changed = (
        await ProfileImport.filter(id=row.id, status=ImportStatus.RUNNING, resume_offset=row.resume_offset)
        .using_db(conn)
        .update(
            resume_offset=end_offset,
            resume_line=end_line,
            rows_read=F("rows_read") + counts.rows_read,
            profiles_created=F("profiles_created") + counts.created,
            profiles_updated=F("profiles_updated") + counts.updated,
            profiles_unchanged=F("profiles_unchanged") + counts.unchanged,
            rows_rejected=F("rows_rejected") + counts.rejected,
            rejected_rows=rejected_rows,
            updated_at=now,
        )
    )
    if changed != 1:
        raise ImportSuperseded(f"import {row.id} advanced elsewhere")
    if counts.created or counts.updated:
        await record_audit(
            sandbox_id=row.sandbox_id,
            actor=row.actor,
            action="IMPORT_BATCH",
            object_type="ProfileImport",
            object_id=row.id,
            after={
                "lines": [first_line, end_line],
                "created": counts.created,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "rejected": counts.rejected,
            },
            using_db=conn,
        )
    row.resume_offset = end_offset
    row.resume_line = end_line
    row.rows_read += counts.rows_read
    row.profiles_created += counts.created
    row.profiles_updated += counts.updated
    row.profiles_unchanged += counts.unchanged
    row.rows_rejected += counts.rejected
    row.rejected_rows = rejected_rows


async def finish_import(row: ProfileImport, status: ImportStatus, error: str | None = None) -> bool:
    """RUNNING → SUCCEEDED or FAILED (audited); False when it was no longer RUNNING."""
    now = datetime.now(UTC)
    async with in_transaction() as conn:
        changed = (
            await ProfileImport.filter(id=row.id, status=ImportStatus.RUNNING)
            .using_db(conn)
            .update(status=status, error=error, finished_at=now, updated_at=now)
        )
        if changed:
            await record_audit(
                sandbox_id=row.sandbox_id,
                actor=row.actor,
                action="FINISH",
                object_type="ProfileImport",
                object_id=row.id,
                before={"status": ImportStatus.RUNNING.value},
                after={
                    "status": status.value,
                    "rowsRead": row.rows_read,
                    "created": row.profiles_created,
                    "updated": row.profiles_updated,
                    "unchanged": row.profiles_unchanged,
                    "rejected": row.rows_rejected,
                    "error": error,
                },
                using_db=conn,
            )
    if changed:
        row.status, row.error, row.finished_at = status, error, now
    return bool(changed)
