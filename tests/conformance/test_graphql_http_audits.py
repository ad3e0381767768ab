"""GraphQL over HTTP conformance: the npm `graphql-http` server audits against the live server."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from models.tenancy.sandbox import Role
from tests.conftest import RunningServer, SandboxKeys

HERE = Path(__file__).resolve().parent
NODE, NPM = shutil.which("node"), shutil.which("npm")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None, reason="node and npm are needed to run the graphql-http audits (npm package)"
)


async def _run(*args: str, timeout: float) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=HERE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode()


async def _install_audit_suite() -> None:
    if (HERE / "node_modules" / "graphql-http" / "package.json").exists():
        return
    code, _, err = await _run(NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error", timeout=300)
    assert code == 0, f"npm ci failed: {err}"


async def test_every_graphql_http_audit_passes(server: RunningServer, sandbox: SandboxKeys) -> None:
    await _install_audit_suite()
    code, out, err = await _run(NODE, "audit.mjs", server.graphql_url, sandbox.keys[Role.VIEWER], timeout=120)
    assert code == 0, err
    results = json.loads(out)
    failed = [f"{r['status']}: {r['name']} ({r['reason']})" for r in results if r["status"] != "ok"]
    assert len(results) >= 61
    assert not failed, "\n".join(failed)
