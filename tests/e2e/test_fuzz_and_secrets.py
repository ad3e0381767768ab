"""Schemathesis fuzzes every query and mutation of a live `herald serve` on a throw-away database (bounded
examples, fixed seed); then the server's whole log output is searched for the API key and the secret key."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resolvers.schema import schema
from tests.conftest import TEST_SECRET, free_port
from tests.e2e.test_processes import e2e_env, herald, stop, wait_for_http  # noqa: F401 (fixture)

SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
EXAMPLES = 30
SEED = 20261101


@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is in the `test` extra: pip install -e '.[test]'")
async def test_fuzzing_finds_no_server_error_and_logs_hold_no_secrets(
    e2e_env: dict[str, str],  # noqa: F811 (the imported fixture)
    tmp_path: Path,
) -> None:
    assert herald("migrate", env=e2e_env).returncode == 0
    assert herald("sandbox", "create", "fuzz", env=e2e_env).returncode == 0
    made = herald("apikey", "create", "--sandbox", "fuzz", "--role", "ADMIN", env=e2e_env)
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("hrld_")

    port = free_port()
    env = {**e2e_env, "WORKER_IN_PROCESS": "true", "LOG_LEVEL": "DEBUG", "COST_BUDGET_MAXIMUM": "0"}
    log_path = tmp_path / "server.log"
    # Logs go to a file: an unread pipe would fill up and stall the server.
    with log_path.open("w") as log_file:
        server = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block; we never wait on it here)
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        await wait_for_http(f"http://127.0.0.1:{port}/healthz", server)
        fuzz = await asyncio.to_thread(
            subprocess.run,
            [
                SCHEMATHESIS,
                "run",
                f"http://127.0.0.1:{port}/graphql",
                "--header",
                f"Authorization: Bearer {key}",
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                str(SEED),
                "--checks",
                "not_a_server_error",
                "--phases",
                "examples,fuzzing",
                "--no-color",
                "--report-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    finally:
        stop(server)
    logs = log_path.read_text()
    report = fuzz.stdout + fuzz.stderr
    assert fuzz.returncode == 0, report[-4000:]
    # It really exercised every query and mutation root field (subscriptions are not fuzzed over HTTP).
    operations = sum(len(schema._schema.get_type(root).fields) for root in ("Query", "Mutation"))
    generated = re.search(r"(\d+) generated", report)
    assert f"Tested: {operations}" in report and generated and int(generated[1]) >= 5 * operations, report
    assert "workerPing" in logs or "worker_ping" in logs  # the mutations ran jobs: the log is not empty
    # Masked errors answer 200, which schemathesis does not flag: the server logs each one, so look there.
    assert "unexpected error" not in logs and "Traceback" not in logs, logs[-4000:]
    assert TEST_SECRET not in logs
    assert "hrld_" not in logs, [line for line in logs.splitlines() if "hrld_" in line][:3]
