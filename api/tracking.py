"""Public tracking endpoints (no API key; the signed token is the credential):

    GET  /t/o/{token}   open pixel: a 1x1 GIF, records an OPEN
    GET  /t/c/{token}   click: 302 to the URL recorded for that link at render time, records a CLICK
    GET  /t/u/{token}   unsubscribe confirmation page (changes nothing: mail scanners prefetch links)
    POST /t/u/{token}   unsubscribe (RFC 8058 one-click, or the page's button): idempotent

A forged, altered or truncated token gets 404 and records nothing. A click never redirects anywhere but to
the URL stored in its TrackedLink row, so the endpoint cannot serve as an open redirect.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from jobs.tracking import TRACKING_PREFIX
from models.reporting.feedback import delivery_ref, record_click, record_open, unsubscribe
from models.reporting.tracking_tokens import TokenPurpose, TokenSigner

logger = logging.getLogger(__name__)

# The smallest transparent GIF (1x1, 43 bytes).
PIXEL_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
_NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
_PAGE_HEADERS = {**_NO_CACHE, "X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}


def _signer(request: Request) -> TokenSigner:
    return request.app.state.token_signer


_GIF_HEADERS = {**_NO_CACHE, "Content-Type": "image/gif"}


def _not_found() -> Response:
    return PlainTextResponse("Not Found", status_code=404, headers=_NO_CACHE)


async def open_pixel(request: Request) -> Response:
    claims = _signer(request).verify(TokenPurpose.OPEN, request.path_params["token"])
    if claims is None:
        return _not_found()
    # A genuine token of a delivery deleted since still gets its image (nothing is recorded for it).
    await record_open(claims.delivery_id, request.headers.get("user-agent"), datetime.now(UTC))
    return Response(PIXEL_GIF, headers=_GIF_HEADERS)


async def click(request: Request) -> Response:
    claims = _signer(request).verify(TokenPurpose.CLICK, request.path_params["token"])
    if claims is None or claims.link_id is None:
        return _not_found()
    url = await record_click(claims.delivery_id, claims.link_id, request.headers.get("user-agent"), datetime.now(UTC))
    if url is None:
        return _not_found()
    return RedirectResponse(url, status_code=302, headers={**_NO_CACHE, "Referrer-Policy": "no-referrer"})


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}"
        "button{font-size:1rem;padding:.6rem 1.2rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_PAGE_HEADERS)


async def unsubscribe_page(request: Request) -> Response:
    claims = _signer(request).verify(TokenPurpose.UNSUBSCRIBE, request.path_params["token"])
    if claims is None or await delivery_ref(claims.delivery_id) is None:
        return _not_found()
    # No action: the form posts back to this very URL (whatever proxy prefix it came through), with the
    # RFC 8058 body, so both ways in are one code path.
    form = (
        "<p>Stop receiving these messages at this address?</p>"
        '<form method="post">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return _page("Unsubscribe", form)


async def unsubscribe_post(request: Request) -> Response:
    claims = _signer(request).verify(TokenPurpose.UNSUBSCRIBE, request.path_params["token"])
    if claims is None:
        return _not_found()
    recorded = await unsubscribe(claims.delivery_id, datetime.now(UTC))
    if recorded is None:
        return _not_found()
    if recorded:
        logger.info("unsubscribed", extra={"delivery_id": claims.delivery_id})
    return _page("Unsubscribed", "<p>You will not receive these messages any more.</p>")


ROUTES = [
    Route(TRACKING_PREFIX + "o/{token}", open_pixel, methods=["GET"]),
    Route(TRACKING_PREFIX + "c/{token}", click, methods=["GET"]),
    Route(TRACKING_PREFIX + "u/{token}", unsubscribe_page, methods=["GET"]),
    Route(TRACKING_PREFIX + "u/{token}", unsubscribe_post, methods=["POST"]),
]
