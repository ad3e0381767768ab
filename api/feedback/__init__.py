"""Email feedback from real providers, one endpoint per preset and provider:

    POST /webhooks/email/{preset}/{provider}    provider: ses | sendgrid | mailgun | postmark

`preset` is the email preset's id (as GraphQL shows it, or its number). Each provider proves the request is
its own by its own mechanism (SNS signature, ECDSA, HMAC, basic auth) with credentials stored on the preset;
only deliveries of campaigns using that preset are matched, by our Message-ID or the relay's id from its 250
reply. Unknown messages are answered 200 (providers retry anything else); refusals are 4xx and apply nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.auth import json_error
from api.feedback import mailgun, postmark, sendgrid, ses
from api.feedback.common import FeedbackRefused, FeedbackRequest, ProviderReply
from models.ledger.counts import ledger_counts, store_counters
from models.presets.preset import MessagePreset
from models.presets.rules import Channel
from models.presets.secret_box import SecretBox, SecretsUnreadableError
from models.reporting.feedback import apply_feedback, deliveries_by_feedback_id
from resolvers.nodes import pk_of

logger = logging.getLogger(__name__)

PROVIDERS: dict[str, Callable[[FeedbackRequest], Awaitable[ProviderReply]]] = {
    "ses": ses.read,
    "sendgrid": sendgrid.read,
    "mailgun": mailgun.read,
    "postmark": postmark.read,
}
PATH = "/webhooks/email/{preset}/{provider}"


async def provider_feedback(request: Request) -> Response:
    read = PROVIDERS.get(request.path_params["provider"])
    preset_id = pk_of(request.path_params["preset"], "MessagePreset")
    preset = await MessagePreset.get_or_none(id=preset_id) if preset_id is not None else None
    if read is None or preset is None or preset.channel != Channel.EMAIL:
        return json_error(404, "NOT_FOUND", "No such email preset or provider.")
    settings = request.app.state.settings
    try:
        secrets = SecretBox(settings.secret_key.get_secret_value()).open(preset.secrets, sandbox_id=preset.sandbox_id)
    except SecretsUnreadableError:
        logger.warning("email feedback: preset %s secrets unreadable", preset.id)
        secrets = {}
    try:
        body = await request.body()  # size limited by BodySizeLimitMiddleware (WEBHOOK_MAX_BODY_BYTES)
    except ClientDisconnect:
        return Response(status_code=400)
    async with httpx.AsyncClient(follow_redirects=False) as http:
        context = FeedbackRequest(request.headers, body, preset.settings or {}, secrets, settings, http)
        try:
            reply = await read(context)
        except FeedbackRefused as refused:
            logger.info("email feedback for preset %s refused: %s", preset.id, refused.message)
            response = json_error(
                refused.status, "FORBIDDEN" if refused.status in (401, 403) else "BAD_REQUEST", refused.message
            )
            response.headers.update(refused.headers)
            return response
    if reply.answer is not None:
        return JSONResponse(reply.answer)
    found = await deliveries_by_feedback_id(preset.id, [i for event in reply.events for i in event.ids])
    now = datetime.now(UTC)
    actor = f"provider:{request.path_params['provider']}"
    results: list[dict[str, Any]] = []
    touched: set[int] = set()
    for index, event in enumerate(reply.events):
        ref = next((found[i] for i in event.ids if i in found), None)
        result: dict[str, Any] = {"index": index, "event": event.kind}
        if event.feedback is None:
            result["outcome"] = "IGNORED"
        elif ref is None:
            result["outcome"] = "UNKNOWN"
        else:
            result["outcome"] = (await apply_feedback(ref, event.feedback, now, actor=actor)).value
            touched.add(ref.run_id)
        results.append(result)
    for run_id in sorted(touched):
        await store_counters(run_id, await ledger_counts(run_id))
    return JSONResponse({"results": results})


ROUTES = [Route(PATH, provider_feedback, methods=["POST"])]
