"""A first run as the README tells it: `herald serve`, `herald demo`, activate, and the mail in the Maildir."""

from __future__ import annotations

import mailbox
import re
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.e2e.polling import wait_until
from tests.e2e.test_processes import e2e_env, herald, spawn, stop, wait_for_http  # noqa: F401 (a fixture)

ACTIVATE = "mutation($id: ID!) { campaignActivate(input: {id: $id}) { __typename } }"
RUNS = """query($id: ID!) { campaignRuns(campaignId: $id) { edges { node { status targeted excluded sent } } } }"""
REVIEW = (
    """query($id: ID!) { campaignReview(id: $id) { ... on CampaignReview { canActivate plan { contactable } } } }"""
)


def readme_operation(start: str) -> str:
    """An operation of the README's first-run block, from `start` to its closing brace."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    found = re.search(re.escape(start) + r".*?\n\}", readme, re.DOTALL)
    assert found, f"{start} is not in the README"
    return found.group(0)


async def test_demo_loads_a_campaign_that_sends_to_the_local_sink(
    e2e_env: dict[str, str],  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    sink_port, port = free_port(), free_port()
    env = {**e2e_env, "SMTP_SINK": "true", "SMTP_SINK_PORT": str(sink_port), "DATA_DIR": str(tmp_path / "var")}
    env["WORKER_IN_PROCESS"] = "true"
    assert herald("migrate", env=env).returncode == 0
    server = spawn("serve", "--port", str(port), env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_for_http(f"{base}/readyz", server)
        loaded = herald("demo", "--profiles", "200", "--url", f"{base}/graphql", env=env)
        assert loaded.returncode == 0, loaded.stderr
        assert "(ACTIVE)" in loaded.stdout  # the preset was validated against the running sink
        key = next(line.strip() for line in loaded.stdout.splitlines() if line.strip().startswith("hrld_"))
        campaign_id = loaded.stdout.split("DRAFT campaign ")[1].split(".\n")[0]

        again = herald("demo", env=env)
        assert again.returncode == 1 and "exists already" in again.stderr  # refused, nothing changed

        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:

            async def gql(query: str, **variables: str) -> dict:
                reply = await http.post("/graphql", json={"query": query, "variables": variables})
                assert "errors" not in reply.json(), reply.json()
                return reply.json()["data"]

            review = (await gql(REVIEW, id=campaign_id))["campaignReview"]
            assert review["canActivate"], review
            # The README's proof example, as printed there.
            proof = (await gql(readme_operation("mutation Proof"), id=campaign_id))["campaignSendProof"]
            assert [(o["recipient"], o["status"]) for o in proof["outcomes"]] == [("you@example.com", "SENT")], proof
            contactable = review["plan"]["contactable"]
            assert 0 < contactable < 200
            assert (await gql(ACTIVATE, id=campaign_id))["campaignActivate"]["__typename"] == "CampaignActivateSuccess"

            async def finished() -> dict | None:
                edges = (await gql(RUNS, id=campaign_id))["campaignRuns"]["edges"]
                run = edges[0]["node"] if edges else None
                return run if run and run["status"] == "SUCCEEDED" else None

            run = await wait_until(finished, timeout=60, interval=0.2)
        assert run["sent"] == run["targeted"] == contactable
        kept = list(mailbox.Maildir(tmp_path / "var" / "mail", create=False))
        assert sorted(m["Subject"].startswith("[Proof] ") for m in kept) == [False] * contactable + [True]
        kept = [m for m in kept if not m["Subject"].startswith("[Proof] ")]
        first = kept[0]
        assert "points are waiting" in first["Subject"] and first["Message-ID"]
        html = next(part for part in first.walk() if part.get_content_type() == "text/html").get_payload(decode=True)
        assert b'class="preheader"' in html and b"member" in html
    finally:
        output = stop(server)
    assert "Traceback" not in output, output
