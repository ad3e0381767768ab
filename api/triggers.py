"""`POST /campaigns/{campaignId}/triggers`: campaignTrigger over REST, for partners that do not speak GraphQL.

    curl -X POST -H 'Authorization: Bearer <PUBLISHER key>' -H 'Idempotency-Key: order-1234' \\
         -H 'Content-Type: application/json' \\
         -d '{"context": {"order": {"id": "1234"}},
              "recipients": [{"identity": {"namespace": "Email", "value": "ann@example.com"},
                              "context": {"name": "Ann"}, "address": "ann@work.example"}]}' \\
         http://host/campaigns/<campaign id>/triggers

The same domain function as GraphQL (models/triggers/accept.py), so the same key replays the same stored
answer whichever way it came. Answers: 201 with `{"trigger": …, "replayed": false}` for a new call, 200 with
`"replayed": true` (and `Idempotent-Replayed: true`) for a replay; 400 for a body that is not the documented
JSON or a missing `Idempotency-Key`; 401/403 for the key; 404 for a campaign not in the key's sandbox; 409 for
`IDEMPOTENCY_CONFLICT` (the key with another body) and `INVALID_STATE` (not a LIVE API-triggered campaign);
422 `INVALID_INPUT` with `fieldErrors` ([{field, code, message}], fields named like `recipients[3].identity`).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry import relay

from api.auth import authenticate_request, json_error
from models.tenancy.sandbox import Role
from models.triggers.accept import accept_trigger
from models.triggers.values import (
    IdempotencyConflictError,
    MissingProfile,
    Problem,
    TriggerAnswer,
    TriggerInvalidInputError,
    TriggerNotFoundError,
    TriggerRecipient,
    TriggerRequest,
    TriggerStateError,
)
from resolvers.context import Caller
from resolvers.nodes import pk_of

KEY_HEADER = "Idempotency-Key"
# The JSON body of up to 1,000 recipients with their contexts: well under this.
MAX_BODY_BYTES = 8 * 1024 * 1024


class BodyError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _gid(type_name: str, pk: int | None) -> str | None:
    return str(relay.GlobalID(type_name, str(pk))) if pk is not None else None


def answer_json(answer: TriggerAnswer) -> dict[str, Any]:
    """The same fields as GraphQL's CampaignTriggerSuccess (global ids)."""
    return {
        "trigger": {
            "id": _gid("CampaignTrigger", answer.trigger_id),
            "status": answer.status,
            "accepted": answer.accepted,
            "rejected": [{"index": r.index, "reason": r.reason.value} for r in answer.rejected],
            "runId": _gid("CampaignRun", answer.run_id),
        },
        "replayed": answer.replayed,
    }


def _object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BodyError(field, "must be a JSON object")
    return value


def parse_body(data: Any, campaign_pk: int, key: str) -> TriggerRequest:
    """The JSON body as a TriggerRequest; BodyError names the field whose type is wrong."""
    if not isinstance(data, dict):
        raise BodyError("body", "the body must be a JSON object")
    unknown = sorted(set(data) - {"context", "recipients", "onMissingProfile"})
    if unknown:
        raise BodyError(unknown[0], "unknown field")
    recipients_data = data.get("recipients")
    if not isinstance(recipients_data, list):
        raise BodyError("recipients", "must be a JSON array")
    recipients = []
    for index, item in enumerate(recipients_data):
        path = f"recipients[{index}]"
        if not isinstance(item, dict):
            raise BodyError(path, "must be a JSON object")
        profile_pk = None
        if item.get("profileId") is not None:
            if not isinstance(item["profileId"], str | int) or isinstance(item["profileId"], bool):
                raise BodyError(f"{path}.profileId", "must be a profile id")
            profile_pk = pk_of(item["profileId"], "Profile") or 0
        identity = item.get("identity")
        namespace = value = None
        if identity is not None:
            identity = _object(identity, f"{path}.identity")
            namespace, value = identity.get("namespace"), identity.get("value")
            if not isinstance(namespace, str) or not isinstance(value, str):
                raise BodyError(f"{path}.identity", "needs a namespace and a value, both strings")
        context = _object(item.get("context"), f"{path}.context")
        address = item.get("address")
        if address is not None and not isinstance(address, str):
            raise BodyError(f"{path}.address", "must be a string")
        recipients.append(TriggerRecipient(profile_pk, namespace, value, context, address))
    missing = data.get("onMissingProfile", MissingProfile.REJECT.value)
    if missing not in {m.value for m in MissingProfile}:
        raise BodyError("onMissingProfile", "REJECT or CREATE")
    return TriggerRequest(
        campaign_id=campaign_pk,
        idempotency_key=key,
        recipients=tuple(recipients),
        context=_object(data.get("context"), "context"),
        on_missing_profile=MissingProfile(missing),
    )


def _field_errors(problems: list[Problem]) -> list[dict[str, str]]:
    errors = []
    for problem in problems:
        name = problem.field.removeprefix("body.")
        if name == "idempotencyKey":
            name = f"headers.{KEY_HEADER}"
        errors.append({"field": name, "code": problem.code, "message": problem.message})
    return errors


async def create_trigger(request: Request) -> Response:
    caller = await authenticate_request(
        request,
        Role.PUBLISHER,
        "Triggering a campaign needs a PUBLISHER key or above.",
        # As GraphQL does: a partner calling 200 times a second looks its key up once per AUTH_CACHE_SECONDS.
        request.app.state.settings.auth_cache_seconds,
    )
    if not isinstance(caller, Caller):
        return caller
    campaign_pk = pk_of(request.path_params["campaign_id"], "Campaign")
    if campaign_pk is None:
        return json_error(404, "NOT_FOUND", "No campaign with that id in this sandbox.")
    key = request.headers.get(KEY_HEADER)
    if key is None:
        return json_error(400, "BAD_REQUEST", f"Send an `{KEY_HEADER}` header.", field=f"headers.{KEY_HEADER}")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return json_error(413, "TOO_LARGE", f"The body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        trigger_request = parse_body(orjson.loads(body), campaign_pk, key)
    except orjson.JSONDecodeError:
        return json_error(400, "BAD_REQUEST", "The body is not JSON.", field="body")
    except BodyError as exc:
        return json_error(400, "BAD_REQUEST", f"{exc.field}: {exc}", field=exc.field)
    settings = request.app.state.settings
    try:
        answer = await accept_trigger(
            caller.sandbox_id,
            trigger_request,
            idempotency_hours=settings.trigger_idempotency_hours,
            field_prefix="body",
        )
    except TriggerInvalidInputError as exc:
        return json_error(
            422, "INVALID_INPUT", "The input was refused; nothing was sent.", fieldErrors=_field_errors(exc.problems)
        )
    except TriggerNotFoundError:
        return json_error(404, "NOT_FOUND", "No campaign with that id in this sandbox.")
    except IdempotencyConflictError as exc:
        return json_error(
            409,
            "IDEMPOTENCY_CONFLICT",
            str(exc),
            idempotencyKey=exc.key,
            triggerId=_gid("CampaignTrigger", exc.trigger_id),
        )
    except TriggerStateError as exc:
        return json_error(409, "INVALID_STATE", str(exc), currentStatus=exc.current_status)
    queue = getattr(request.app.state, "queue", None)
    if answer.run_id is not None and queue is not None and not answer.replayed:
        await queue.wake_triggers(answer.run_id, settings.trigger_wake_seconds, f"t{answer.trigger_id}")
    response = JSONResponse(answer_json(answer), status_code=200 if answer.replayed else 201)
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response
