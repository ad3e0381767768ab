"""The profile import job: read the stored file in batches, check each row with the rules `profilesUpsert`
uses, write each batch set-based in one transaction with the import's progress, publish progress events.

Safe to run twice: a batch commits with the offset it reached, a second run resumes from there, and a
compare-and-set on that offset lets only one run advance (models.audience.imports).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from arq.worker import func
from tortoise.transactions import in_transaction

from jobs.context import worker_context
from jobs.events import publish
from jobs.queue import IMPORT_PROFILES
from models.audience.import_format import (
    FileRefused,
    ImportFormat,
    Record,
    RowChanges,
    RowProblem,
    csv_row_changes,
    ndjson_changes,
    parse_header,
    read_csv,
    read_ndjson,
)
from models.audience.imports import (
    MAX_REJECTED_ROWS_KEPT,
    BatchCounts,
    ImportStatus,
    ImportSuperseded,
    ProfileImport,
    claim_import,
    commit_batch_progress,
    finish_import,
    import_path,
    progress_topic,
)
from models.audience.profile_writes import ItemResult, PreparedItem
from models.audience.profiles import namespaces_by_code, prepare_item, write_items

logger = logging.getLogger(__name__)

IMPORT_JOB_TIMEOUT_SECONDS = 6 * 3600
PROGRESS_INTERVAL_SECONDS = 0.25
# A batch also ends once its rows hold this many bytes, so a file of large rows stays within memory.
BATCH_MAX_BYTES = 16 * 1024 * 1024


def progress_payload(row: ProfileImport) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status.value,
        "rowsRead": row.rows_read,
        "created": row.profiles_created,
        "updated": row.profiles_updated,
        "unchanged": row.profiles_unchanged,
        "rejected": row.rows_rejected,
    }


Progress = Callable[[ProfileImport], Awaitable[None]]


async def import_profiles(ctx: dict[str, Any], import_id: int) -> dict[str, Any]:
    """arq entry point."""
    settings = worker_context(ctx).settings
    redis = ctx["redis"]
    last = 0.0

    async def report(row: ProfileImport) -> None:
        nonlocal last
        now = time.monotonic()
        if row.status in (ImportStatus.SUCCEEDED, ImportStatus.FAILED) or now - last >= PROGRESS_INTERVAL_SECONDS:
            last = now
            try:
                await publish(redis, row.sandbox_id, progress_topic(row.id), progress_payload(row))
            except Exception as exc:  # progress is a courtesy: a Redis blip must not fail the import
                logger.warning("import %s: could not publish progress: %s", row.id, exc)

    return await run_import(
        import_id, data_dir=settings.data_dir, batch_rows=settings.import_batch_rows, progress=report
    )


import_profiles_job = func(import_profiles, name=IMPORT_PROFILES, timeout=IMPORT_JOB_TIMEOUT_SECONDS, max_tries=3)


async def run_import(
    import_id: int, *, data_dir: Path, batch_rows: int = 2000, progress: Progress | None = None
) -> dict[str, Any]:
    """Run (or resume) one import to its end; returns its final counters."""
    row = await claim_import(import_id)
    if row is None:
        current = await ProfileImport.get_or_none(id=import_id)
        return progress_payload(current) if current else {"id": import_id, "status": "MISSING"}
    path = import_path(data_dir, row.stored_name)
    try:
        await _run(row, path, batch_rows, progress)
    except ImportSuperseded:
        logger.info("import %s: another run advanced it; this one stops", import_id)
        return progress_payload(await ProfileImport.get(id=import_id))
    except FileRefused as refused:
        await _finish(row, path, ImportStatus.FAILED, str(refused), progress)
    except FileNotFoundError:
        await _finish(row, path, ImportStatus.FAILED, "the uploaded file is no longer on this machine", progress)
    except Exception:
        logger.exception("import %s failed", import_id, extra={"import_id": import_id})
        await _finish(row, path, ImportStatus.FAILED, "internal error; see the worker log", progress)
    else:
        await _finish(row, path, ImportStatus.SUCCEEDED, None, progress)
    return progress_payload(row)


async def _finish(row: ProfileImport, path: Path, status: ImportStatus, error: str | None, progress) -> None:
    if await finish_import(row, status, error):
        path.unlink(missing_ok=True)
        if progress is not None:
            await progress(row)


async def _run(row: ProfileImport, path: Path, batch_rows: int, progress: Progress | None) -> None:
    namespaces = await namespaces_by_code(row.sandbox_id)
    rejected_kept: list[dict[str, Any]] = list(row.rejected_rows or [])
    with open(path, "rb") as stream:
        if row.format is ImportFormat.CSV:
            header = next(read_csv(stream), None)
            if header is None or header.values is None:
                raise FileRefused(["the header row cannot be read"])
            columns = parse_header(header.values, set(namespaces))
            start = max(row.resume_offset, header.end_offset)
            line = max(row.resume_line, header.end_line)
            stream.seek(start)
            records = read_csv(stream, start, line)

            def to_changes(record: Record) -> RowChanges | list[RowProblem]:
                return csv_row_changes(columns, record.values)

            identity_group, attributes_field = "identity.*", "attr.*"
        else:
            stream.seek(row.resume_offset)
            records = read_ndjson(stream, row.resume_offset, row.resume_line)

            def to_changes(record: Record) -> RowChanges | list[RowProblem]:
                return ndjson_changes(record.values)

            identity_group, attributes_field = "identities", "attributes"

        batch: list[tuple[Record, RowChanges | list[RowProblem]]] = []
        batch_start = stream.tell()
        for record in records:
            if record.problem is not None:
                batch.append((record, [record.problem]))
            else:
                batch.append((record, to_changes(record)))
            if len(batch) >= batch_rows or record.end_offset - batch_start >= BATCH_MAX_BYTES:
                await _write(row, batch, namespaces, rejected_kept, identity_group, attributes_field)
                batch, batch_start = [], record.end_offset
                if progress is not None:
                    await progress(row)
        if batch:
            await _write(row, batch, namespaces, rejected_kept, identity_group, attributes_field)


_CONFLICT_MESSAGE = "these identities belong to different profiles"
_IDENTITY_FIELD = re.compile(r"^identities\[(\d+)\](.*)$")


def _row_problem(problem_field: str, row_changes: RowChanges, identity_group: str, attributes_field: str) -> str:
    """The column (CSV) or JSON path (NDJSON) of a problem reported by prepare_item."""
    rest = problem_field.split(".", 1)[1] if "." in problem_field else ""
    match = _IDENTITY_FIELD.match(rest)
    if match:
        index = int(match[1])
        fields = row_changes.identity_fields
        return fields[index] if index < len(fields) else identity_group
    if rest.startswith("identities"):
        return identity_group
    if rest.startswith("attributes"):
        return attributes_field
    return rest


async def _write(
    row: ProfileImport,
    batch: list[tuple[Record, RowChanges | list[RowProblem]]],
    namespaces: dict[str, Any],
    rejected_kept: list[dict[str, Any]],
    identity_group: str,
    attributes_field: str,
) -> None:
    rejected: list[tuple[int, RowProblem]] = []
    items: list[PreparedItem] = []
    lines: list[int] = []
    changes_of: list[RowChanges] = []
    for record, parsed in batch:
        if isinstance(parsed, list):
            rejected.extend((record.line, problem) for problem in parsed[:1])
            continue
        prepared, problems = prepare_item(len(items), parsed.changes, namespaces, "row")
        if problems:
            first = problems[0]
            field = _row_problem(first.field, parsed, identity_group, attributes_field)
            rejected.append((record.line, RowProblem(field, first.code, first.message)))
            continue
        items.append(prepared)
        lines.append(record.line)
        changes_of.append(parsed)

    first_line, last = batch[0][0].line, batch[-1][0]

    async def commit(conn, results: list[ItemResult]) -> None:
        # Counted here, from the results of the attempt that commits (a retried batch starts again).
        counts = BatchCounts(rows_read=len(batch))
        batch_rejected = list(rejected)
        for result in results:
            if result.status == "CONFLICT":
                problem = RowProblem(identity_group, "IDENTITY_CONFLICT", _CONFLICT_MESSAGE)
                batch_rejected.append((lines[result.item.index], problem))
            elif result.status == "CREATED":
                counts.created += 1
            elif result.status == "UPDATED":
                counts.updated += 1
            else:
                counts.unchanged += 1
        counts.rejected = len(batch_rejected)
        kept = list(rejected_kept)
        for line, problem in sorted(batch_rejected, key=lambda pair: pair[0]):
            if len(kept) >= MAX_REJECTED_ROWS_KEPT:
                break
            kept.append({"line": line, "field": problem.field, "code": problem.code, "message": problem.message[:500]})
        await commit_batch_progress(
            conn,
            row,
            counts,
            end_offset=last.end_offset,
            end_line=last.end_line,
            rejected_rows=kept,
            first_line=first_line,
        )
        rejected_kept[:] = kept

    if items:
        await write_items(row.sandbox_id, items, audit_actor=None, before_commit=commit)
    else:
        async with in_transaction() as conn:
            await commit(conn, [])
