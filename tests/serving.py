"""An ASGI app under a real uvicorn in the running event loop (local fake providers, the WebSocket server), and
subscribing over graphql-transport-ws knowing when the app listens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette

from api.app import create_app
from api.settings import Settings
from tests.drain import Drained
from tests.drain import drain_jobs as run_due_jobs


@contextlib.asynccontextmanager
async def uvicorn_serving(config: uvicorn.Config) -> AsyncIterator[uvicorn.Server]:
    """Serves until the block ends. uvicorn's serve() split in its steps, so the socket is known to listen when
    this enters (uvicorn has no startup event to wait on otherwise)."""
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    if server.should_exit:
        raise RuntimeError(f"uvicorn failed to start on {config.host}:{config.port}")
    task = asyncio.create_task(server.main_loop())
    try:
        yield server
    finally:
        server.should_exit = True
        await task
        await server.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    base_url: str
    settings: Settings
    app: Starlette | None = None

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    @property
    def ws_url(self) -> str:
        return self.graphql_url.replace("http://", "ws://")

    async def drain_jobs(self, *, until: Any = None, dispatch_at: Any = None, clock: Any = None) -> Drained:
        """The `drain_jobs` fixture, for helpers that get the session `server`."""
        assert self.app is not None, "the session `server` drains the session app's jobs"
        return await run_due_jobs(
            self.app.state.settings, self.app.state.redis, until=until, dispatch_at=dispatch_at, clock=clock
        )


@contextlib.asynccontextmanager
async def running_server(
    settings: Settings, lifespan: str = "on", *, app: Starlette | None = None, port: int | None = None
) -> AsyncIterator[RunningServer]:
    """An app under a real uvicorn, in this event loop, on a loopback port.

    lifespan="off" serves an app on the session app's database connections (no queue, events or worker):
    running a second lifespan would close the connections the session app uses."""
    port = port or free_port()
    if "public_url" not in settings.model_fields_set:
        # Links in messages (tracking, unsubscribe) must reach this very server.
        settings.public_url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(
        app or create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan=lifespan,
    )
    async with uvicorn_serving(config):
        yield RunningServer(base_url=f"http://127.0.0.1:{port}", settings=settings)


async def subscribe(server: RunningServer, ws: Any, message: dict[str, Any]) -> dict[str, Any] | None:
    """Sends a graphql-transport-ws `subscribe` and returns once the session app's event bus listens for it
    (None), or with the server's first answer if it answers before (an error, a completion)."""
    assert server.app is not None, "the session `server` knows when its event bus subscribes"
    listening = server.app.state.events.next_subscription()
    await ws.send(json.dumps(message))
    answer = asyncio.ensure_future(ws.recv())
    done, _ = await asyncio.wait({listening, answer}, return_when=asyncio.FIRST_COMPLETED)
    if answer in done:
        listening.cancel()
        return json.loads(answer.result())
    answer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await answer
    return None
