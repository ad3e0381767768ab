"""`herald serve`: the SMTP sink, the embedded Redis and database when nothing is configured, then uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import os

from api.cli import _settings, _with_orm  # the CLI's own helpers: one way to read settings and open the ORM
from api.settings import Settings


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.embedded_redis import EmbeddedRedis
    from api.migrate import migrate_database
    from api.serve_state import ServeState, remove_state, write_state

    settings = _settings()
    settings.check_secure()
    settings.check_production()
    sink = None
    embedded_redis = None
    try:
        if settings.embedded_redis:
            # Before any thread exists: its preexec_fn (the kernel ends it with us) must not run beside threads.
            embedded_redis = EmbeddedRedis(settings.data_dir)
            os.environ["REDIS_URL"] = embedded_redis.start()
            os.environ.setdefault("WORKER_IN_PROCESS", "true")
        if settings.smtp_sink_enabled:
            from api.mail_sink import SinkThread

            # A taken port ends the start here (the embedded Redis is stopped below), before the database.
            sink = SinkThread(settings.data_dir, settings.smtp_sink_port)
            sink.start()
        if settings.embedded_database:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.embedded_database or args.migrate:
            asyncio.run(migrate_database(settings))
        else:
            # An unmigrated database: one clear message here rather than a traceback from the app's startup.
            asyncio.run(_with_orm(settings, _nothing))
        if not os.environ.get("PUBLIC_URL"):
            # Links in messages point at this server unless the operator names a public address.
            host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
            os.environ["PUBLIC_URL"] = f"http://{host}:{args.port}"
        settings = _settings()  # picks up REDIS_URL / WORKER_IN_PROCESS / PUBLIC_URL
        first_key = asyncio.run(_bootstrap_dev_sandbox(settings)) if settings.embedded_database else None
        url = f"http://{args.host}:{args.port}/graphql"
        write_state(
            settings.data_dir,
            ServeState(
                pid=os.getpid(),
                graphql_url=f"http://{_loopback(args.host)}:{args.port}/graphql",
                public_url=settings.public_url,
                sink_port=settings.smtp_sink_port if sink is not None else None,
            ),
        )
        print(f"Herald is starting at {url}", flush=True)
        if sink is not None:
            print(
                f"Local SMTP sink at 127.0.0.1:{settings.smtp_sink_port}; what it receives is kept in "
                f"{(settings.data_dir / 'mail').as_posix()}/new (one file per message)",
                flush=True,
            )
        if first_key:
            print(
                "Created sandbox 'dev' with an ADMIN API key (shown once, store it now):\n"
                f"  {first_key}\n"
                f"Try: curl -s {url} -H 'Authorization: Bearer {first_key}' "
                "-H 'Content-Type: application/json' -d '{\"query\":\"{ viewer { sandbox { name } role } }\"}'",
                flush=True,
            )
        uvicorn.run(
            "api.cli:app_factory",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            access_log=not settings.is_prod,
            server_header=False,
            log_config=None,
        )
    finally:
        remove_state(settings.data_dir, os.getpid())
        if embedded_redis is not None:
            embedded_redis.stop()
        if sink is not None:
            sink.stop()
    return 0


async def _nothing() -> None:
    return None


def _loopback(host: str) -> str:
    """An address a client on this machine reaches a server bound to `host` at."""
    return {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)


async def _bootstrap_dev_sandbox(settings: Settings) -> str | None:
    from models.tenancy.actions import create_api_key, create_sandbox
    from models.tenancy.sandbox import Role, Sandbox

    async def bootstrap() -> str | None:
        if await Sandbox.exists():
            return None
        await create_sandbox("dev", actor="bootstrap")
        _, plaintext = await create_api_key("dev", Role.ADMIN, name="first start", actor="bootstrap")
        return plaintext

    return await _with_orm(settings, bootstrap)
