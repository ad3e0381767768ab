"""Headless Chromium (the Debian package) driven over the DevTools protocol with the `websockets` client the
tests already use: open a URL, then read a value the page computes. No browser download, no npm."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import websockets

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


class Page:
    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.ids = itertools.count(1)
        self.events: list[str] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        await self.connection.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.connection.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            if "method" in message:
                self.events.append(message["method"])

    async def open(self, url: str) -> None:
        """Navigates and returns once the page has loaded (so later evaluations run in the new page)."""
        await self.call("Page.enable")
        self.events.clear()
        await self.call("Page.navigate", url=url)
        while "Page.loadEventFired" not in self.events:
            message = json.loads(await self.connection.recv())
            if "method" in message:
                self.events.append(message["method"])

    async def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of a JavaScript expression in the page, promises awaited."""
        async with asyncio.timeout(timeout):
            result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def text_of(self, selector: str, timeout: float = 30.0) -> str:
        """The text of `selector` once the page's own script has written some (awaited in the page)."""
        expression = (
            "new Promise((resolve) => { const look = () => { const found = document.querySelector("
            + json.dumps(selector)
            + "); found && found.textContent ? resolve(found.textContent) : setTimeout(look, 50); }; look(); })"
        )
        return await self.evaluate(expression, timeout)


@contextlib.asynccontextmanager
async def chromium_page() -> AsyncIterator[Page]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="herald-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        drain = None
        try:
            port = await asyncio.wait_for(_devtools_port(process), timeout=30)
            # Keep reading, or chromium blocks once the pipe is full.
            drain = asyncio.create_task(process.stderr.read())  # type: ignore[union-attr]
            async with httpx.AsyncClient() as http:
                targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with websockets.connect(url, max_size=None) as connection:
                yield Page(connection)
        finally:
            if process.returncode is None:
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
            if drain is not None:
                drain.cancel()


async def _devtools_port(process: asyncio.subprocess.Process) -> int:
    assert process.stderr is not None
    while line := (await process.stderr.readline()).decode(errors="replace"):
        found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
        if found:
            return int(found.group(1))
    raise RuntimeError(f"chromium exited ({await process.wait()}) before opening its DevTools port")
