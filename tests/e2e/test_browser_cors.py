"""In a real browser: a single-page app on another origin runs a query, a mutation and a subscription with
an API key when its origin is in ALLOWED_ORIGINS, and is refused from an unlisted one; GraphiQL renders from
Herald's own files and queries with a key."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import free_port
from tests.e2e.browser import CHROMIUM, chromium_page
from tests.e2e.test_processes import e2e_env, herald, spawn, stop, wait_for_http  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run installs it)"
)

# The app: runs the three operations against API (from the URL's hash) and writes what happened into #result.
APP = """<!doctype html><html><body><pre id="result"></pre><script>
const [api, key] = decodeURIComponent(location.hash.slice(1)).split("|");
const outcome = {};
const done = () => { document.getElementById("result").textContent = JSON.stringify(outcome); };
async function post(query) {
  const reply = await fetch(api, {method: "POST", body: JSON.stringify({query}),
    headers: {"Content-Type": "application/json", "Authorization": "Bearer " + key}});
  return (await reply.json()).data;
}
async function run() {
  try { outcome.query = (await post("{ viewer { role } }")).viewer.role; }
  catch (error) { outcome.query = "refused: " + error.name; }
  outcome.subscription = await new Promise((resolve) => {
    const ws = new WebSocket(api.replace(/^http/, "ws"), "graphql-transport-ws");
    const timer = setTimeout(() => resolve("timeout"), 20000);
    let pinger = null;
    let lastPing = Promise.resolve();
    ws.onopen = () => ws.send(JSON.stringify({type: "connection_init", payload: {Authorization: "Bearer " + key}}));
    ws.onclose = (event) => { clearInterval(pinger); clearTimeout(timer); resolve("refused: close " + event.code); };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "connection_ack") {
        ws.send(JSON.stringify({id: "1", type: "subscribe",
          payload: {query: "subscription { workerPong { pingId message } }"}}));
        // The mutation, until the subscription (registered on Redis asynchronously) sees its pong.
        const ping = () => {
          lastPing = post('mutation { workerPing(input: {message: "from the browser"}) ' +
            "{ ... on WorkerPingSuccess { pingId } } }").then((data) => { outcome.mutation = data.workerPing.pingId; });
        };
        ping(); pinger = setInterval(ping, 500);
      } else if (message.type === "next") {
        // The pong can arrive before the mutation's own answer: wait for that answer too.
        clearInterval(pinger); clearTimeout(timer);
        const pong = message.payload.data.workerPong.message;
        lastPing.finally(() => { resolve(pong); ws.close(); });
      }
    };
  });
  done();
}
run();
</script></body></html>"""


def serve_app() -> Iterator[str]:
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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def app_origin() -> Iterator[str]:
    yield from serve_app()


@pytest.fixture
def unlisted_origin() -> Iterator[str]:
    yield from serve_app()


async def test_a_listed_origin_queries_mutates_and_subscribes_and_an_unlisted_one_is_refused(
    e2e_env: dict[str, str],  # noqa: F811 (the fixture imported above)
    app_origin: str,
    unlisted_origin: str,
) -> None:
    assert herald("migrate", env=e2e_env).returncode == 0
    assert herald("sandbox", "create", "spa", env=e2e_env).returncode == 0
    key = herald("apikey", "create", "--sandbox", "spa", "--role", "ADMIN", env=e2e_env).stdout.split()[-1]
    port = free_port()
    env = {**e2e_env, "ALLOWED_ORIGINS": json.dumps([app_origin]), "WORKER_IN_PROCESS": "true"}
    server = spawn("serve", "--port", str(port), env=env)
    try:
        api = f"http://127.0.0.1:{port}/graphql"
        await wait_for_http(f"http://127.0.0.1:{port}/readyz", server)
        async with chromium_page() as page:
            await page.open(f"{app_origin}/#{api}|{key}")
            listed = json.loads(await page.text_of("#result"))
            await page.open(f"{unlisted_origin}/#{api}|{key}")
            unlisted = json.loads(await page.text_of("#result"))
    finally:
        output = stop(server)
    assert listed["query"] == "ADMIN", (listed, output)
    assert listed["mutation"], listed
    assert listed["subscription"] == "from the browser", listed
    assert unlisted["query"] == "refused: TypeError", unlisted  # the browser's CORS refusal
    assert unlisted["subscription"].startswith("refused: close"), unlisted
    assert "mutation" not in unlisted


async def test_graphiql_renders_from_herald_own_files_and_runs_a_query(
    e2e_env: dict[str, str],  # noqa: F811 (the fixture imported above)
) -> None:
    assert herald("migrate", env=e2e_env).returncode == 0
    assert herald("sandbox", "create", "ide", env=e2e_env).returncode == 0
    key = herald("apikey", "create", "--sandbox", "ide", "--role", "VIEWER", env=e2e_env).stdout.split()[-1]
    port = free_port()
    server = spawn("serve", "--port", str(port), env={**e2e_env, "GRAPHQL_IDE": "true"})
    try:
        await wait_for_http(f"http://127.0.0.1:{port}/readyz", server)
        async with chromium_page() as page:
            # GraphiQL state in the URL, as an older page left it: still the IDE.
            await page.open(f"http://127.0.0.1:{port}/graphql?q=%7B%7D&variables=")
            assert "GraphiQL" in await page.text_of(".graphiql-container .graphiql-editors")
            # GraphiQL's fetcher (the page's own) answers with a promise or an async iterable of results.
            role = await page.evaluate(
                "(async () => { let result = await fetcher({query: '{ viewer { role } }'}, "
                f"{{headers: {{Authorization: 'Bearer {key}'}}}}); "
                "if (result[Symbol.asyncIterator]) { for await (const first of result) { result = first; break; } } "
                "return result.data.viewer.role; })()"
            )
    finally:
        stop(server)
    assert role == "VIEWER"
