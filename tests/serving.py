"""An ASGI app under a real uvicorn in the running event loop (local fake providers, the WebSocket server)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn


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
