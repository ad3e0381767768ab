"""`herald serve` as a new user and an operator meet it: the embedded Redis dies with it, a taken sink port
stops it, production without its settings does not start, and the demo finds the server by itself."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET, free_port
from tests.e2e.polling import wait_until
from tests.e2e.test_processes import e2e_env, herald, spawn, stop, wait_for_http  # noqa: F401 (a fixture)


def embedded_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ENV"}}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env["SMTP_SINK_PORT"] = str(free_port())
    return env


def running(pid: int) -> bool:
    """Alive and not a zombie (PID 1 of a container may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def test_the_embedded_redis_ends_when_serve_is_killed(tmp_path: Path) -> None:
    port = free_port()
    server = spawn("serve", "--port", str(port), env=embedded_env(), cwd=tmp_path)
    try:
        await wait_for_http(f"http://127.0.0.1:{port}/healthz", server)
        redis_pid = int((tmp_path / "var" / "embedded-redis.pid").read_text())
        assert running(redis_pid)
    finally:
        output = stop(server, signal.SIGKILL)  # no handler, no finally: only the kernel can stop the child
    assert server.returncode == -signal.SIGKILL, output
    await wait_until(lambda: not running(redis_pid), timeout=10, interval=0.05)


async def test_serve_refuses_a_taken_sink_port(tmp_path: Path) -> None:
    env = embedded_env()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        env["SMTP_SINK_PORT"] = str(taken.getsockname()[1])
        process = spawn("serve", "--port", str(free_port()), env=env, cwd=tmp_path)
        output = await asyncio.to_thread(lambda: process.communicate(timeout=30)[0])
    assert process.returncode == 1, output
    assert "SMTP_SINK_PORT" in output and "SMTP_SINK=false" in output and "Traceback" not in output
    assert not (tmp_path / "var" / "embedded-redis.pid").exists()  # what it had started is stopped
    assert not (tmp_path / "var" / "herald.sqlite3").exists()  # refused before the database


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, "REDIS_URL"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "PUBLIC_URL must be set"),
        (
            {"REDIS_URL": "redis://127.0.0.1:6379/0", "PUBLIC_URL": "http://herald.example.com"},
            "PUBLIC_URL must be https",
        ),
    ],
)
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_production_refuses_to_start_without_what_it_needs(
    tmp_path: Path, command: str, settings: dict[str, str], named: str
) -> None:
    env = {**embedded_env(), "ENV": "prod", "SECRET_KEY": TEST_SECRET, "DATABASE_URL": "sqlite://x.db", **settings}
    result = herald(command, env=env, cwd=tmp_path)
    if command == "worker" and not settings:
        assert result.returncode == 2 and "REDIS_URL" in result.stderr  # the worker never had an embedded Redis
        return
    assert result.returncode == 1 and named in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unmigrated_database_is_one_message(e2e_env: dict[str, str], command: str) -> None:  # noqa: F811
    result = herald(command, env=e2e_env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("herald: The database is not migrated"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


async def test_demo_needs_a_running_serve_and_reads_where_it_is(tmp_path: Path) -> None:
    alone = herald("demo", "--profiles", "5", env=embedded_env(), cwd=tmp_path)
    assert alone.returncode == 1 and "needs a running `herald serve`" in alone.stderr, alone.stderr
    assert not (tmp_path / "var" / "herald.sqlite3").exists()  # refused before touching anything

    port, env = free_port(), embedded_env()
    server = spawn("serve", "--port", str(port), env=env, cwd=tmp_path)
    try:
        await wait_for_http(f"http://127.0.0.1:{port}/readyz", server)
        state = json.loads((tmp_path / "var" / "serve.json").read_text())
        assert state == {
            "pid": server.pid,
            "graphql_url": f"http://127.0.0.1:{port}/graphql",
            "public_url": f"http://127.0.0.1:{port}",
            "sink_port": int(env["SMTP_SINK_PORT"]),
        }
        # A second terminal with none of the server's settings: the sink port and URL come from serve.json.
        other = {k: v for k, v in env.items() if k != "SMTP_SINK_PORT"}
        loaded = herald("demo", "--profiles", "5", env=other, cwd=tmp_path)
        assert loaded.returncode == 0, loaded.stderr
        assert "(ACTIVE)" in loaded.stdout and f"open http://127.0.0.1:{port}/graphql" in loaded.stdout
    finally:
        stop(server, signal.SIGINT)
    assert not (tmp_path / "var" / "serve.json").exists()
