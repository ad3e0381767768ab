"""Time of `upsert_profiles` (the code behind `profilesUpsert`) for 1,000 new profiles, then the same 1,000 again.

Run: HERALD_BENCH_DB=sqlite|postgres python -m bench.profiles_upsert
Uses a fresh database (SQLite file in a temp dir, or a throw-away PostgreSQL database) and prints seconds.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from tortoise import Tortoise

from api.migrate import migrate_database
from api.settings import tortoise_config
from models.audience.profiles import IdentityValue, ProfileChanges, upsert_profiles
from models.tenancy.actions import create_sandbox
from tests.conftest import fresh_database, make_settings

N = int(os.environ.get("HERALD_BENCH_N", "1000"))


def items(n: int) -> list[ProfileChanges]:
    return [
        ProfileChanges(
            identities=[IdentityValue("Email", f"user{i}@example.com"), IdentityValue("CRMID", f"crm-{i}")],
            attributes={"person": {"name": {"firstName": f"F{i}"}}, "loyalty": {"points": i}},
        )
        for i in range(n)
    ]


async def main() -> None:
    kind = os.environ.get("HERALD_BENCH_DB", "sqlite")
    async with fresh_database(Path(tempfile.mkdtemp()), kind) as url:
        settings = make_settings(url)
        await migrate_database(settings)
        await Tortoise.init(config=tortoise_config(url))
        try:
            sandbox = await create_sandbox("bench", actor="bench")
            batch = items(N)
            for label in ("new", "again (unchanged)"):
                started = time.perf_counter()
                outcomes = await upsert_profiles(sandbox.id, batch, actor="bench")
                elapsed = time.perf_counter() - started
                statuses = {o.status.value for o in outcomes}
                print(f"{kind}: {N} profiles {label}: {elapsed:.3f} s {sorted(statuses)}")
        finally:
            await Tortoise.close_connections()


if __name__ == "__main__":
    asyncio.run(main())
