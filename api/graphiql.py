"""GraphiQL without a CDN: the page and its files, served by Herald itself.

The files (GraphiQL, React, graphql-ws) come from the `graphene-django-graphiql-static` wheel, a plain bundle
of them (no Django is imported: only its static folder is read), so the IDE works offline and under a strict
CSP; GRAPHIQL_ASSETS_URL points the page at a self-hosted copy instead. The page keeps the query out of the
URL (a reload is a plain GET of /graphql), and sends the Authorization header of GraphiQL's header editor in
connection_init for subscriptions.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

ASSETS_ROUTE = "/graphql/ide"
ASSET_FILES = {
    "graphiql.min.js": "text/javascript",
    "graphiql.min.css": "text/css",
    "react.production.min.js": "text/javascript",
    "react-dom.production.min.js": "text/javascript",
    "graphql-ws.min.js": "text/javascript",
}


def bundled_assets_dir() -> Path | None:
    spec = importlib.util.find_spec("graphene_django_graphiql_static")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static" / "graphene_django_graphiql_static"
    return folder if folder.is_dir() else None


async def serve_asset(request: Request) -> Response:
    name = request.path_params["name"]
    folder = bundled_assets_dir()
    if name not in ASSET_FILES or folder is None:
        return PlainTextResponse("Not Found", status_code=404)
    # The files never change within a release: a day of caching.
    return FileResponse(folder / name, media_type=ASSET_FILES[name], headers={"Cache-Control": "public, max-age=86400"})


def graphiql_page(assets_url: str | None) -> HTMLResponse:
    base = (assets_url or ASSETS_ROUTE).rstrip("/")
    html = PAGE.replace("__ASSETS__", json.dumps(base)[1:-1].replace("<", "\\u003c"))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Herald GraphiQL</title>
<style>html, body, #graphiql { height: 100%; margin: 0; width: 100%; overflow: hidden; }</style>
<link rel="stylesheet" href="__ASSETS__/graphiql.min.css">
<script src="__ASSETS__/react.production.min.js"></script>
<script src="__ASSETS__/react-dom.production.min.js"></script>
<script src="__ASSETS__/graphiql.min.js"></script>
<script src="__ASSETS__/graphql-ws.min.js"></script>
</head>
<body>
<div id="graphiql">Loading…</div>
<script>
const httpUrl = window.location.origin + window.location.pathname;
const wsUrl = httpUrl.replace(/^http/, "ws");
const httpFetcher = GraphiQL.createFetcher({ url: httpUrl });
let wsClient = null, wsAuthorization = null;

function authorizationOf(headers) {
  for (const name of Object.keys(headers || {})) {
    if (name.toLowerCase() === "authorization") return String(headers[name]);
  }
  return "";
}

function subscriptionClient(headers) {
  const authorization = authorizationOf(headers);
  if (wsClient === null || authorization !== wsAuthorization) {
    if (wsClient !== null) wsClient.dispose();
    wsAuthorization = authorization;
    wsClient = graphqlWs.createClient({ url: wsUrl, lazy: true, connectionParams: { Authorization: authorization } });
  }
  return wsClient;
}

function isSubscription(params, options) {
  const ast = options && options.documentAST;
  if (!ast) return /^\\s*subscription\\b/.test(params.query || "");
  return ast.definitions.some((d) => d.kind === "OperationDefinition" && d.operation === "subscription"
    && (!params.operationName || (d.name && d.name.value === params.operationName)));
}

function fetcher(params, options) {
  if (!isSubscription(params, options)) return httpFetcher(params, options);
  const client = subscriptionClient(options && options.headers);
  return {
    subscribe(sink) {
      const dispose = client.subscribe(params, {
        next: (value) => sink.next(value),
        error: (error) => sink.error(error),
        complete: () => sink.complete(),
      });
      return { unsubscribe: dispose };
    },
  };
}

const element = React.createElement(GraphiQL, {
  fetcher: fetcher,
  isHeadersEditorEnabled: true,
  shouldPersistHeaders: true,
  defaultHeaders: '{"Authorization": "Bearer <your API key>"}',
});
const container = document.getElementById("graphiql");
if (ReactDOM.createRoot) ReactDOM.createRoot(container).render(element); else ReactDOM.render(element, container);
</script>
</body>
</html>
"""
