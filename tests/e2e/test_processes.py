"""Herald as an operator runs it: separate `herald serve` and `herald worker` processes, the CLI, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import mailbox
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import pytest
import websockets
from redis.asyncio import Redis

from tests.conftest import REDIS_URL, TEST_SECRET, free_port, fresh_database
from tests.e2e.polling import wait_until

PING_MUTATION = 'mutation { workerPing(input: {message: "across"}) { ... on WorkerPingSuccess { pingId } } }'

# Its own Redis database, so the session server's in-process worker does not take these jobs.
E2E_REDIS_URL = f"{REDIS_URL.rsplit('/', 1)[0]}/{(int(REDIS_URL.rsplit('/', 1)[1]) + 1) % 16}"
AUTH_CACHE_SECONDS = 1.0  # short, so waiting out a revocation made by another process costs little


def herald(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def spawn(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


@pytest.fixture
async def e2e_env(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    redis = Redis.from_url(E2E_REDIS_URL)
    await redis.flushdb()
    async with fresh_database(tmp_path) as url:
        yield {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": E2E_REDIS_URL,
            "SECRET_KEY": TEST_SECRET,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }
    await redis.flushdb()
    await redis.aclose()


async def wait_for_http(url: str, process: subprocess.Popen[str]) -> None:
    async def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stdout.read() if process.stdout else ''}")
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(url)).status_code == 200
        except httpx.TransportError:
            return False

    await wait_until(answers, timeout=30, interval=0.1)


async def test_serve_refuses_an_unmigrated_database(e2e_env: dict[str, str]) -> None:
    process = spawn("serve", "--port", str(free_port()), env=e2e_env)
    output = await asyncio.to_thread(lambda: process.communicate(timeout=30)[0])
    assert process.returncode != 0
    assert "herald migrate" in output


async def test_cli_keys_and_a_worker_event_reaching_another_server_process(e2e_env: dict[str, str]) -> None:
    assert herald("migrate", env=e2e_env).returncode == 0
    created = herald("sandbox", "create", "acme", env=e2e_env)
    assert created.returncode == 0, created.stderr
    assert herald("sandbox", "create", "acme", env=e2e_env).returncode == 1  # duplicate: a clear refusal
    made = herald("apikey", "create", "--sandbox", "acme", "--role", "ADMIN", env=e2e_env)
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("hrld_")

    port = free_port()
    server = spawn("serve", "--port", str(port), env={**e2e_env, "AUTH_CACHE_SECONDS": str(AUTH_CACHE_SECONDS)})
    worker = spawn("worker", env=e2e_env)
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_for_http(f"{base}/readyz", server)
        async with websockets.connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(
                json.dumps(
                    {
                        "id": "s1",
                        "type": "subscribe",
                        "payload": {"query": "subscription { workerPong { pingId message worker } }"},
                    }
                )
            )
            async with httpx.AsyncClient() as http:
                # The subscription is registered once the server has subscribed on Redis; retry the ping until
                # a pong arrives rather than guessing how long that takes.
                async def ping_and_receive() -> dict | None:
                    reply = await http.post(
                        f"{base}/graphql",
                        json={"query": PING_MUTATION},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    ping_id = reply.json()["data"]["workerPing"]["pingId"]
                    try:
                        async with asyncio.timeout(2):
                            while True:
                                message = json.loads(await ws.recv())
                                pong = message["payload"]["data"]["workerPong"]
                                if pong["pingId"] == ping_id:
                                    return pong
                    except TimeoutError:
                        return None

                pong = await wait_until(ping_and_receive, timeout=30)
        assert pong["message"] == "across"
        assert pong["worker"].endswith(f":{worker.pid}")  # answered by the worker process, not the server
        # WORKER_NICE (default 10): the worker process gives way to the server, which keeps its priority.
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(19, os.nice(0) + 10)
        assert os.getpriority(os.PRIO_PROCESS, server.pid) == os.nice(0)

        revoke_id = herald("apikey", "list", "--sandbox", "acme", env=e2e_env).stdout.split()[0]
        assert herald("apikey", "revoke", revoke_id, env=e2e_env).returncode == 0
        # Revoked in another process: the server's key cache lets it through for at most AUTH_CACHE_SECONDS.
        async with httpx.AsyncClient() as http:

            async def refused() -> bool:
                response = await http.post(
                    f"{base}/graphql", json={"query": "{ viewer { role } }"}, headers={"Authorization": f"Bearer {key}"}
                )
                return response.status_code == 401

            await wait_until(refused, timeout=AUTH_CACHE_SECONDS + 3, interval=0.1)
    finally:
        worker_output = stop(worker)
        stop(server)
    assert worker.returncode == 0, worker_output  # SIGTERM is a clean shutdown


async def test_embedded_serve_starts_answers_and_leaves_nothing_behind(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    port, sink_port = free_port(), free_port()
    env["SMTP_SINK_PORT"] = str(sink_port)
    server = spawn("serve", "--port", str(port), env=env, cwd=tmp_path)
    pid_file = tmp_path / "var" / "embedded-redis.pid"
    try:

        def read_printed_key() -> str:
            for line in server.stdout:  # type: ignore[union-attr]
                if line.strip().startswith("hrld_"):
                    return line.strip()
            raise AssertionError("herald serve exited without printing a key")

        key = await asyncio.wait_for(asyncio.to_thread(read_printed_key), timeout=30)
        await wait_for_http(f"http://127.0.0.1:{port}/healthz", server)
        redis_pid = int(pid_file.read_text())
        async with httpx.AsyncClient() as http:
            reply = await http.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": "{ viewer { sandbox { name } role } }"},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert reply.json()["data"] == {"viewer": {"sandbox": {"name": "dev"}, "role": "ADMIN"}}

        # The local SMTP sink keeps what it receives as a Maildir under ./var/mail.
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "sink check"
        message.set_content("kept")
        await aiosmtplib.send(message, hostname="127.0.0.1", port=sink_port)
        kept = list(mailbox.Maildir(tmp_path / "var" / "mail", create=False))
        assert [(m["Subject"], m["X-Herald-Sink-To"]) for m in kept] == [("sink check", "b@example.com")]
    finally:
        output = stop(server, signal.SIGINT)
    assert server.returncode in (0, 130), output
    assert "Traceback" not in output
    assert not Path(f"/proc/{redis_pid}").exists(), "the embedded redis-server outlived herald serve"
    assert not pid_file.exists()
    with pytest.raises(OSError):  # the sink stopped with the server
        socket.create_connection(("127.0.0.1", sink_port), timeout=1).close()
