"""`herald` command line: serve, worker, migrate, sandbox, API-key and (api/cli_people.py) membership
administration."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tortoise import Tortoise

from api.cli_people import add_user_commands
from api.logs import configure_logging
from api.settings import Settings, tortoise_config

logger = logging.getLogger("herald.cli")
CLI_ACTOR = "cli"


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level)
    return settings


async def _with_orm(settings: Settings, action: Callable[[], Awaitable[Any]]) -> Any:
    from api.migrate import ensure_migrated

    await Tortoise.init(config=tortoise_config(settings.resolved_database_url, settings.db_pool_max))
    try:
        await ensure_migrated()
        return await action()
    finally:
        await Tortoise.close_connections()


def app_factory():
    """Entry point for uvicorn worker processes (`--workers N`): settings come from the environment."""
    from api.app import create_app
    from api.gc_tuning import tune_for_serving

    app = create_app(_settings())
    tune_for_serving()
    return app


# ---- serve (api/serve.py) -------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from api.serve import serve

    return serve(args)


# ---- worker and migrate ---------------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    from jobs.worker import build_worker, lower_priority, run_loop

    settings = _settings()
    if settings.redis_url is None:
        print("herald worker needs REDIS_URL (the embedded Redis belongs to `herald serve`).", file=sys.stderr)
        return 2
    settings.check_secure()
    settings.check_production()
    lower_priority(settings)

    async def run() -> None:
        await Tortoise.init(config=tortoise_config(settings.resolved_database_url, settings.db_pool_max))
        from api.migrate import ensure_migrated

        try:
            await ensure_migrated()
        finally:
            await Tortoise.close_connections()
        worker = build_worker(settings, burst=args.burst)
        try:
            # async_run (not main) so arq's SIGTERM/SIGINT handler can cancel it.
            with contextlib.suppress(asyncio.CancelledError):
                await worker.async_run()
        finally:
            await worker.close()

    run_loop(run())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from api.migrate import migrate_database

    settings = _settings()
    if settings.is_sqlite:
        Path(settings.resolved_database_url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)
    applied = asyncio.run(migrate_database(settings, target=args.target))
    print(f"Applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "; up to date."))
    return 0


# ---- sandboxes and keys ---------------------------------------------------------------------------------


def cmd_sandbox_create(args: argparse.Namespace) -> int:
    from models.tenancy.actions import create_sandbox

    sandbox = asyncio.run(_with_orm(_settings(), lambda: create_sandbox(args.name, actor=CLI_ACTOR)))
    print(f"Created sandbox {sandbox.name!r} with the standard identity namespaces.")
    return 0


def cmd_sandbox_list(args: argparse.Namespace) -> int:
    from models.tenancy.sandbox import Sandbox

    async def names() -> list[str]:
        return list(await Sandbox.all().order_by("name").values_list("name", flat=True))

    for name in asyncio.run(_with_orm(_settings(), names)):
        print(name)
    return 0


def cmd_apikey_create(args: argparse.Namespace) -> int:
    from models.tenancy.actions import create_api_key
    from models.tenancy.sandbox import Role

    key, plaintext = asyncio.run(
        _with_orm(
            _settings(),
            lambda: create_api_key(args.sandbox, Role(args.role), name=args.name or args.role.lower(), actor=CLI_ACTOR),
        )
    )
    print(f"Created API key {key.id} ({key.role.value}) for sandbox {args.sandbox!r}. It is shown only once:")
    print(plaintext)
    return 0


def cmd_apikey_list(args: argparse.Namespace) -> int:
    from models.tenancy.sandbox import ApiKey

    async def rows() -> list[dict[str, Any]]:
        return (
            await ApiKey.filter(sandbox__name=args.sandbox)
            .order_by("id")
            .values("id", "name", "role", "display_prefix", "created_at", "revoked_at")
        )

    for row in asyncio.run(_with_orm(_settings(), rows)):
        state = "revoked" if row["revoked_at"] else "active"
        print(f"{row['id']}\t{row['role']}\t{row['display_prefix']}…\t{state}\t{row['name']}")
    return 0


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    from models.tenancy.actions import revoke_api_key

    key = asyncio.run(_with_orm(_settings(), lambda: revoke_api_key(args.key_id, actor=CLI_ACTOR)))
    print(f"API key {key.id} is revoked.")
    return 0


# ---- imports --------------------------------------------------------------------------------------------
# `herald import profiles` runs the import in this process, through the same steps as an upload and the
# same job function: it needs no running server, no API key and no worker, shows progress on the terminal
# and exits non-zero when the import fails, which is what an operator fixing data at 3 a.m. wants. Progress
# is also published on Redis when REDIS_URL is set, so `profileImportProgress` subscribers see it.

_FORMATS_BY_SUFFIX = {".csv": "CSV", ".ndjson": "NDJSON", ".jsonl": "NDJSON"}


def cmd_import_profiles(args: argparse.Namespace) -> int:
    from models.audience.import_format import ImportFormat
    from models.audience.imports import ImportRefused, receive_import
    from models.audience.profiles import namespaces_by_code
    from models.tenancy.actions import TenancyError
    from models.tenancy.sandbox import Sandbox

    settings = _settings()
    path = Path(args.file)
    if not path.is_file():
        print(f"herald: no such file: {path}", file=sys.stderr)
        return 2
    format_name = args.format or _FORMATS_BY_SUFFIX.get(path.suffix.lower())
    if format_name is None:
        print("herald: cannot tell the format from the file name; pass --format csv|ndjson", file=sys.stderr)
        return 2
    format = ImportFormat(format_name.upper())

    async def chunks():
        with open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                yield chunk

    async def action() -> int:
        sandbox = await Sandbox.get_or_none(name=args.sandbox)
        if sandbox is None:
            raise TenancyError(f"no sandbox {args.sandbox!r}")
        try:
            row = await receive_import(
                sandbox.id,
                chunks(),
                format=format,
                file_name=path.name,
                actor=CLI_ACTOR,
                data_dir=settings.data_dir,
                max_bytes=settings.import_max_bytes,
                namespace_codes=set(await namespaces_by_code(sandbox.id)),
            )
        except ImportRefused as refused:
            print(f"herald: {refused.message}", file=sys.stderr)
            for problem in refused.problems:
                print(f"  - {problem}", file=sys.stderr)
            return 1
        print(f"Import {row.id} of {path.name} ({row.size_bytes} bytes) into sandbox {sandbox.name!r}.", flush=True)
        return await _run_import_here(settings, row.id, args.batch_rows)

    return asyncio.run(_with_orm(settings, action))


def cmd_import_resume(args: argparse.Namespace) -> int:
    """Finish an import left RUNNING (a CLI run stopped with Ctrl-C) or PENDING, from its last batch."""
    settings = _settings()
    return asyncio.run(_with_orm(settings, lambda: _run_import_here(settings, args.import_id, args.batch_rows)))


async def _run_import_here(settings: Settings, import_id: int, batch_rows: int | None) -> int:
    import time

    from jobs.events import publish
    from jobs.imports import progress_payload, run_import
    from models.audience.imports import ImportStatus, ProfileImport, progress_topic

    redis = None
    if settings.redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url)
    last = 0.0

    async def progress(row: ProfileImport) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < 1 and row.status not in (ImportStatus.SUCCEEDED, ImportStatus.FAILED):
            return
        last = now
        print(
            f"  {row.rows_read} rows read: {row.profiles_created} created, {row.profiles_updated} updated, "
            f"{row.profiles_unchanged} unchanged, {row.rows_rejected} rejected",
            flush=True,
        )
        if redis is not None:
            try:
                await publish(redis, row.sandbox_id, progress_topic(row.id), progress_payload(row))
            except Exception as exc:  # progress events are a courtesy; the import goes on without Redis
                logger.warning("could not publish import progress: %s", exc)

    try:
        rows = batch_rows or settings.import_batch_rows
        await run_import(import_id, data_dir=settings.data_dir, batch_rows=rows, progress=progress)
    finally:
        if redis is not None:
            await redis.aclose()
    row = await ProfileImport.get_or_none(id=import_id)
    if row is None:
        print(f"herald: no import {import_id}", file=sys.stderr)
        return 1
    for rejected in row.rejected_rows or []:
        print(f"  line {rejected['line']}: {rejected['field'] or 'row'}: {rejected['code']}: {rejected['message']}")
    if row.rows_rejected > len(row.rejected_rows or []):
        print(f"  … and {row.rows_rejected - len(row.rejected_rows)} more rejected rows")
    if row.status is ImportStatus.SUCCEEDED:
        print(
            f"Import {row.id} SUCCEEDED: {row.rows_read} rows read, {row.profiles_created} created, "
            f"{row.profiles_updated} updated, {row.profiles_unchanged} unchanged, {row.rows_rejected} rejected."
        )
        return 0
    print(f"Import {row.id} {row.status.value}: {row.error or ''}", file=sys.stderr)
    return 1


def cmd_demo(args: argparse.Namespace) -> int:
    from api.demo import DemoExistsError, load_demo, next_steps
    from api.serve_state import read_state, state_path

    settings = _settings()
    if args.profiles < 1 or args.profiles > 1_000_000:
        print("herald: --profiles must be between 1 and 1000000", file=sys.stderr)
        return 2
    # The server's own record (DATA_DIR/serve.json) says where it answers and where its sink listens, so this
    # terminal needs no settings of its own; the preset is validated against that live sink, never a stand-in.
    running = read_state(settings.data_dir)
    if running is None or running.sink_port is None:
        why = "none is running" if running is None else "the running one has no SMTP sink (SMTP_SINK=false)"
        print(
            f"herald: `herald demo` needs a running `herald serve` with its local SMTP sink, and {why} "
            f"(looked for {state_path(settings.data_dir).as_posix()}). Start `herald serve` in another terminal "
            "from this directory (the same DATA_DIR), then run `herald demo` again.",
            file=sys.stderr,
        )
        return 1
    if settings.is_sqlite:
        Path(settings.resolved_database_url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)
    if settings.embedded_database:  # `herald serve` migrates its embedded database; so does its demo
        from api.migrate import migrate_database

        asyncio.run(migrate_database(settings))
    try:
        sink_port = running.sink_port
        loaded = asyncio.run(
            _with_orm(settings, lambda: load_demo(settings, profiles=args.profiles, sink_port=sink_port))
        )
    except DemoExistsError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 1
    print(next_steps(loaded, settings, args.url or running.graphql_url), flush=True)
    return 0


def cmd_export_schema(args: argparse.Namespace) -> int:
    from strawberry.printer import print_schema

    from resolvers.schema import schema

    text = print_schema(schema) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald", description="Herald campaign server.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="Run the GraphQL server (embedded SQLite + Redis + worker by default).")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="Number of web processes.")
    serve.add_argument("--migrate", action="store_true", help="Apply migrations first (always on embedded SQLite).")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="Run a job worker (needs REDIS_URL).")
    worker.add_argument("--burst", action="store_true", help="Exit once the queue is empty.")
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser("migrate", help="Apply database migrations (safe to run from several processes).")
    migrate.add_argument("target", nargs="?", default=None, help="e.g. herald.0001_initial (default: latest)")
    migrate.set_defaults(func=cmd_migrate)

    sandbox = sub.add_parser("sandbox", help="Manage sandboxes.").add_subparsers(dest="action", required=True)
    create = sandbox.add_parser("create")
    create.add_argument("name")
    create.set_defaults(func=cmd_sandbox_create)
    sandbox.add_parser("list").set_defaults(func=cmd_sandbox_list)

    apikey = sub.add_parser("apikey", help="Manage API keys.").add_subparsers(dest="action", required=True)
    key_create = apikey.add_parser("create")
    key_create.add_argument("--sandbox", required=True)
    key_create.add_argument("--role", required=True, choices=["VIEWER", "MANAGER", "PUBLISHER", "ADMIN"])
    key_create.add_argument("--name", default=None, help="A label to tell keys apart.")
    key_create.set_defaults(func=cmd_apikey_create)
    key_list = apikey.add_parser("list")
    key_list.add_argument("--sandbox", required=True)
    key_list.set_defaults(func=cmd_apikey_list)
    key_revoke = apikey.add_parser("revoke")
    key_revoke.add_argument("key_id", type=int)
    key_revoke.set_defaults(func=cmd_apikey_revoke)

    add_user_commands(sub)

    imports = sub.add_parser("import", help="Bulk imports.").add_subparsers(dest="action", required=True)
    import_profiles = imports.add_parser(
        "profiles", help="Import profiles from a CSV (header row) or NDJSON file, in this process."
    )
    import_profiles.add_argument("file")
    import_profiles.add_argument("--sandbox", required=True)
    import_profiles.add_argument("--format", choices=["csv", "ndjson"], default=None, help="Default: from the suffix.")
    import_profiles.add_argument("--batch-rows", type=int, default=None, help="Rows per transaction.")
    import_profiles.set_defaults(func=cmd_import_profiles)
    import_resume = imports.add_parser("resume", help="Finish an interrupted import from its last batch.")
    import_resume.add_argument("import_id", type=int)
    import_resume.add_argument("--batch-rows", type=int, default=None)
    import_resume.set_defaults(func=cmd_import_resume)

    demo = sub.add_parser(
        "demo", help="Load a `demo` sandbox: generated profiles, an email preset on the local SMTP sink, a campaign."
    )
    demo.add_argument("--profiles", type=int, default=10_000, help="How many profiles to generate (default 10000).")
    demo.add_argument("--url", default=None, help="Where `herald serve` answers (default: what it recorded).")
    demo.set_defaults(func=cmd_demo)

    export = sub.add_parser("export-schema", help="Print the GraphQL SDL (what schema.graphql holds).")
    export.add_argument("--output", "-o", default="-")
    export.set_defaults(func=cmd_export_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    from api.mail_sink import SinkPortTakenError
    from api.migrate import UnmigratedDatabaseError
    from api.settings import InsecureSettingsError
    from models.tenancy.actions import TenancyError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (TenancyError, UnmigratedDatabaseError, InsecureSettingsError, SinkPortTakenError) as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
