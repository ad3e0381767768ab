"""In a real browser: an SPA page on an allowed origin signs two people in at the test identity provider (npm
oidc-provider), lists campaigns with one's token, requests approval as her, is refused her own approval, approves
as the other, activates, and watches the campaign's status change by subscription.

Sign-in: the page takes a token from the provider's token endpoint itself (client-credentials grant, through the
provider's CORS), standing in for the redirect flow a real SPA would run (authorization code with PKCE): a login
form to drive would test the provider, not Herald. The tokens are the provider's real signed JWTs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import GraphQLClient, free_port
from tests.e2e.browser import CHROMIUM, chromium_page
from tests.e2e.polling import wait_until
from tests.e2e.test_processes import e2e_env, herald, spawn, stop, wait_for_http  # noqa: F401 (a fixture)
from tests.graphql.test_approvals import POLICY_CREATE
from tests.graphql.test_campaigns import CREATE as CAMPAIGN_CREATE
from tests.graphql.test_campaigns import ready_input
from tests.graphql.test_presets import CREATE as PRESET_CREATE
from tests.graphql.test_presets import VALIDATE, in_app_input
from tests.graphql.test_profiles import UPSERT, email
from tests.graphql.test_segments import CREATE as SEGMENT_CREATE
from tests.graphql.test_segments import cond
from tests.oidc.provider import AUDIENCE, SPA_ORIGIN, SPA_PORT, IdentityProvider, secret_of

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run installs it)"
)

# The SPA: signs alice and bob in, then drives the approval through Herald and writes what happened into #result.
APP = """<!doctype html><html><body><pre id="result"></pre><script>
const config = JSON.parse(decodeURIComponent(location.hash.slice(1)));
const outcome = {statuses: []};
const done = () => { document.getElementById("result").textContent = JSON.stringify(outcome); };
async function signIn(person) {
  const reply = await fetch(config.issuer + "/token", {method: "POST", body: new URLSearchParams({
    grant_type: "client_credentials", client_id: person, client_secret: config.secrets[person],
    resource: config.resource})});
  return (await reply.json()).access_token;
}
async function gql(token, query, variables) {
  const reply = await fetch(config.api, {method: "POST", body: JSON.stringify({query, variables}),
    headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token,
              "X-Herald-Sandbox": config.sandbox}});
  const body = await reply.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}
const SUCCESS = {campaignActivate: "CampaignActivateSuccess", campaignRequestApproval: "CampaignApprovalStepSuccess",
  campaignApprove: "CampaignApproveSuccess"};
const EXTRA = {campaignActivate: "... on ApprovalRequiredError { policies }",
  campaignRequestApproval: "... on ApprovalRefusedError { code }",
  campaignApprove: "... on ApprovalRefusedError { code }"};
const step = (name) => `mutation($id: ID!) { ${name}(input: {id: $id}) { __typename
  ... on ${SUCCESS[name]} { campaign { status } } ${EXTRA[name]} } }`;
async function run() {
  const alice = await signIn("alice"), bob = await signIn("bob");
  outcome.me = (await gql(alice, "{ me { sub email } viewer { role } }")).me;
  const listed = await gql(alice, "{ campaigns(first: 10) { nodes { id name status } } }");
  const campaign = listed.campaigns.nodes.find((node) => node.name === config.campaignName);
  outcome.listed = campaign ? campaign.status : "missing";
  let actions = Promise.resolve();
  await new Promise((resolve) => {
    const ws = new WebSocket(config.api.replace(/^http/, "ws"), "graphql-transport-ws");
    const timer = setTimeout(() => { outcome.timeout = true; resolve(); }, 30000);
    ws.onopen = () => ws.send(JSON.stringify({type: "connection_init",
      payload: {Authorization: "Bearer " + alice, sandbox: config.sandbox}}));
    ws.onmessage = async (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "connection_ack") {
        ws.send(JSON.stringify({id: "1", type: "subscribe", payload: {
          query: "subscription($id: ID) { campaignStatusChanged(id: $id) { status } }",
          variables: {id: campaign.id}}}));
      } else if (message.type === "next") {
        const status = message.payload.data.campaignStatusChanged.status;
        outcome.statuses.push(status);
        if (outcome.statuses.length === 1) {  // the current state: subscribed, now act
          actions = (async () => {
            const id = {id: campaign.id};
            outcome.activate = (await gql(alice, step("campaignActivate"), id)).campaignActivate;
            outcome.request = (await gql(alice, step("campaignRequestApproval"), id)).campaignRequestApproval;
            outcome.selfApproval = (await gql(alice, step("campaignApprove"), id)).campaignApprove;
            outcome.approval = (await gql(bob, step("campaignApprove"), id)).campaignApprove;
            outcome.activated = (await gql(bob, step("campaignActivate"), id)).campaignActivate;
          })().catch((error) => { outcome.error = String(error); clearTimeout(timer); resolve(); });
        }
        // The event can come before the mutation's own answer: wait for the answers too.
        if (status === "LIVE") { clearTimeout(timer); actions.finally(() => { ws.close(); resolve(); }); }
      } else if (message.type === "error") { outcome.error = JSON.stringify(message); resolve(); }
    };
    ws.onclose = () => { clearTimeout(timer); actions.finally(resolve); };
  });
  done();
}
run().catch((error) => { outcome.error = String(error); done(); });
</script></body></html>"""


@pytest.fixture
def spa() -> Iterator[str]:
    """The SPA's page, served from SPA_ORIGIN (the origin the identity provider's CORS lets sign in)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = APP.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", SPA_PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield SPA_ORIGIN
    finally:
        server.shutdown()
        server.server_close()


async def _setup(gql: GraphQLClient, admin: str) -> str:
    """An active in-app preset, three gold profiles, a policy (in-app needs a PUBLISHER's approval), a campaign."""
    preset = (await gql(PRESET_CREATE, {"input": in_app_input("inbox")}, key=admin))["messagePresetCreate"]["preset"]
    await gql(VALIDATE, {"input": {"id": preset["id"]}}, key=admin)

    async def active() -> bool:
        query = "query($id: ID!) { messagePreset(id: $id) { status } }"
        return (await gql(query, {"id": preset["id"]}, key=admin))["messagePreset"]["status"] == "ACTIVE"

    await wait_until(active, timeout=30, interval=0.1)
    people = [email(f"p{i}@example.com", attributes={"tier": "gold"}) for i in range(3)]
    await gql(UPSERT, {"input": {"profiles": people}}, key=admin)
    segment = await gql(
        SEGMENT_CREATE, {"input": {"kind": "RULE", "name": "gold", "rule": cond("tier", "EQ", "gold")}}, key=admin
    )
    policy = {"name": "In-app needs a publisher", "channels": ["IN_APP"], "approverRoles": ["PUBLISHER"]}
    made = await gql(POLICY_CREATE, {"input": policy}, key=admin)
    assert made["approvalPolicyCreate"]["__typename"] == "ApprovalPolicySuccess", made
    campaign = ready_input(preset["id"], segment["segmentCreate"]["segment"]["id"], name="Launch")
    created = await gql(CAMPAIGN_CREATE, {"input": campaign}, key=admin)
    assert created["campaignCreate"]["__typename"] == "CampaignSuccess", created
    return "Launch"


async def test_an_spa_signs_in_requests_approval_approves_as_another_and_watches_the_status(
    e2e_env: dict[str, str],  # noqa: F811 (the fixture imported above)
    oidc_provider: IdentityProvider,
    spa: str,
) -> None:
    assert herald("migrate", env=e2e_env).returncode == 0
    assert herald("sandbox", "create", "people", env=e2e_env).returncode == 0
    for sub, role in (("alice", "PUBLISHER"), ("bob", "PUBLISHER")):
        made = herald("user", "set-role", "--sandbox", "people", "--sub", sub, "--role", role, env=e2e_env)
        assert made.returncode == 0, made.stderr
    assert "alice" in herald("user", "list", "--sandbox", "people", env=e2e_env).stdout
    admin = herald("apikey", "create", "--sandbox", "people", "--role", "ADMIN", env=e2e_env).stdout.split()[-1]
    port = free_port()
    env = {
        **e2e_env,
        "ALLOWED_ORIGINS": json.dumps([spa]),
        "WORKER_IN_PROCESS": "true",
        "OIDC_ISSUER": oidc_provider.issuer,
        "OIDC_AUDIENCE": AUDIENCE,
    }
    server = spawn("serve", "--port", str(port), env=env)
    try:
        api = f"http://127.0.0.1:{port}/graphql"
        await wait_for_http(f"http://127.0.0.1:{port}/readyz", server)
        async with httpx.AsyncClient(timeout=30) as http:
            name = await _setup(GraphQLClient(http, api), admin)
        config: dict[str, Any] = {
            "api": api,
            "issuer": oidc_provider.issuer,
            "resource": "https://herald.test/",
            "secrets": {who: secret_of(who) for who in ("alice", "bob")},
            "sandbox": "people",
            "campaignName": name,
        }
        async with chromium_page() as page:
            await page.open(f"{spa}/#{json.dumps(config)}")
            outcome = json.loads(await page.text_of("#result", timeout=60))
    finally:
        output = stop(server)
    assert "error" not in outcome and "timeout" not in outcome, (outcome, output)
    assert outcome["me"] == {"sub": "alice", "email": "alice@example.com"}
    assert outcome["listed"] == "DRAFT"
    assert outcome["activate"] == {"__typename": "ApprovalRequiredError", "policies": ["In-app needs a publisher"]}
    assert outcome["request"]["campaign"]["status"] == "IN_REVIEW"
    assert outcome["selfApproval"] == {"__typename": "ApprovalRefusedError", "code": "SELF_APPROVAL"}
    assert outcome["approval"]["campaign"]["status"] == "APPROVED"
    assert outcome["activated"]["campaign"]["status"] == "LIVE"
    # The subscription saw every change, in order, after the current state.
    assert outcome["statuses"] == ["DRAFT", "IN_REVIEW", "APPROVED", "LIVE"]
