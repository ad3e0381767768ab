"""Profile import on PostgreSQL against asyncpg COPY of the same rows into the same tables.

Run: python -m bench.import_profiles [N]   (default 100,000; TEST_POSTGRES_URL picks the server)

Each profile has two identities (Email and CRMID by default; HERALD_BENCH_IDENTITIES=email,phone for a
phone number instead of the CRM id) and two attributes. The reference copies the already normalised rows
with `copy_records_to_table` into `profile` and `profile_identity`; the import reads the CSV file, checks
every row with the profilesUpsert rules and writes set-based batches. The import runs in a child process
(`herald import resume ID`, the job function the worker runs) so its peak RSS is the job's alone.
Prints rows/s of both, their ratio (target >= 0.3) and the job's peak RSS (target < 300 MB).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from tortoise import Tortoise

from api.migrate import migrate_database
from api.settings import tortoise_config
from models.audience.import_format import ImportFormat
from models.audience.imports import ImportStatus, ProfileImport, receive_import
from models.audience.profiles import namespaces_by_code
from models.tenancy.actions import create_sandbox
from tests.conftest import fresh_database, make_settings

BATCH_ROWS = int(os.environ.get("HERALD_BENCH_BATCH_ROWS", "5000"))
SECOND = os.environ.get("HERALD_BENCH_IDENTITIES", "email,crmid").split(",")[1]


def _phone(i: int) -> str:
    return f"+1415{2000000 + i % 8000000:07d}"


def second_identity(i: int) -> tuple[str, str, str]:
    """(CSV column, CSV value, stored value)."""
    if SECOND == "phone":
        # Distinct valid US numbers for up to 8,000,000 rows.
        number = _phone(i)
        return "identity.Phone", number, number
    return "identity.CRMID", f"crm-{i}", f"crm-{i}"


def write_csv(path: Path, n: int) -> None:
    column = second_identity(0)[0]
    with open(path, "w") as out:
        out.write(f"identity.Email,{column},attr.person.name.firstName,attr.loyalty.points:number\n")
        for i in range(n):
            out.write(f"User{i}@Example.com,{second_identity(i)[1]},Name{i},{i % 1000}\n")


async def copy_reference(dsn: str, sandbox_id: int, namespaces: dict[str, int], n: int) -> float:
    second_ns = namespaces["Phone" if SECOND == "phone" else "CRMID"]
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        first_id = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('profile', 'id'))")
        await conn.execute("SELECT setval(pg_get_serial_sequence('profile', 'id'), $1)", first_id + n)
        now = datetime.now(UTC)
        profiles = [
            (
                first_id + i,
                sandbox_id,
                now,
                now,
                f'{{"person": {{"name": {{"firstName": "Name{i}"}}}}, "loyalty": {{"points": {i % 1000}}}}}',
                "unknown",
                "unknown",
                "unknown",
                None,
                False,
            )
            for i in range(n)
        ]
        await conn.copy_records_to_table(
            "profile",
            records=profiles,
            columns=[
                "id",
                "sandbox_id",
                "created_at",
                "updated_at",
                "attributes",
                "consent_email",
                "consent_sms",
                "consent_push",
                "time_zone",
                "test_profile",
            ],
        )
        del profiles
        identities = []
        for i in range(n):
            identities.append((sandbox_id, now, now, first_id + i, namespaces["Email"], f"user{i}@example.com"))
            identities.append((sandbox_id, now, now, first_id + i, second_ns, second_identity(i)[2]))
        await conn.copy_records_to_table(
            "profile_identity",
            records=identities,
            columns=["sandbox_id", "created_at", "updated_at", "profile_id", "namespace_id", "value"],
        )
        return time.perf_counter() - started
    finally:
        await conn.close()


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


async def main(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="herald-bench-import-"))
    csv_path = work / "profiles.csv"
    write_csv(csv_path, n)
    async with fresh_database(work, "postgres") as url:
        settings = make_settings(url, data_dir=work / "data")
        await migrate_database(settings)
        await Tortoise.init(config=tortoise_config(url))
        dsn = url.replace("postgres://", "postgresql://", 1)
        try:
            reference = await create_sandbox("copy", actor="bench")
            ns = {code: row.id for code, row in (await namespaces_by_code(reference.id)).items()}
            copy_seconds = await copy_reference(dsn, reference.id, ns, n)
            conn = await asyncpg.connect(dsn)
            await conn.execute("TRUNCATE profile_identity, profile CASCADE")
            await conn.execute("VACUUM ANALYZE profile")
            await conn.execute("VACUUM ANALYZE profile_identity")
            await conn.close()

            sandbox = await create_sandbox("bench", actor="bench")

            async def chunks():
                with open(csv_path, "rb") as stream:
                    while chunk := stream.read(1 << 20):
                        yield chunk

            row = await receive_import(
                sandbox.id,
                chunks(),
                format=ImportFormat.CSV,
                file_name=csv_path.name,
                actor="bench",
                data_dir=settings.data_dir,
                max_bytes=2**31 - 1,
                namespace_codes=set(ns),
            )
        finally:
            await Tortoise.close_connections()
        env = {**os.environ, "DATABASE_URL": url, "DATA_DIR": str(settings.data_dir), "LOG_LEVEL": "WARNING"}
        env.pop("REDIS_URL", None)
        started = time.perf_counter()
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "api.cli",
            "import",
            "resume",
            str(row.id),
            "--batch-rows",
            str(BATCH_ROWS),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # VmHWM of the child's own address space (getrusage would also count the parent's pages it was
        # forked with); it only grows, so the last reading before exit is the peak within 0.2 s.
        peak_kb = 0
        output = asyncio.ensure_future(child.communicate())
        while not output.done():
            peak_kb = max(peak_kb, _vm_hwm_kb(child.pid))
            await asyncio.wait([output], timeout=0.2)
        stdout, stderr = output.result()
        import_seconds = time.perf_counter() - started
        peak_mb = peak_kb / 1024
        if child.returncode != 0:
            print(stdout.decode(), stderr.decode())
            raise SystemExit("the import failed")
        await Tortoise.init(config=tortoise_config(url))
        try:
            done = await ProfileImport.get(id=row.id)
            assert done.status is ImportStatus.SUCCEEDED and done.profiles_created == n, done.__dict__
            job_seconds = (done.finished_at - done.started_at).total_seconds()
        finally:
            await Tortoise.close_connections()
    copy_rate, import_rate, job_rate = n / copy_seconds, n / import_seconds, n / job_seconds
    print(f"profiles: {n:,}, two identities each (Email + {SECOND}), batch {BATCH_ROWS} rows")
    print(f"asyncpg COPY (reference): {copy_seconds:8.2f} s  {copy_rate:10,.0f} profiles/s")
    print(f"import (whole process):   {import_seconds:8.2f} s  {import_rate:10,.0f} profiles/s")
    print(f"import (job, started→finished): {job_seconds:8.2f} s  {job_rate:10,.0f} profiles/s")
    print(f"ratio import/COPY: {import_rate / copy_rate:.2f} (job only: {job_rate / copy_rate:.2f}); target >= 0.3")
    print(f"peak RSS of the import process: {peak_mb:.0f} MB (target < 300 MB)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
