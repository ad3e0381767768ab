"""POST /campaigns/{id}/triggers: the same domain function and answers as campaignTrigger (issue 17)."""

from __future__ import annotations

from typing import Any

import httpx

from models.ledger.delivery import Delivery
from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_triggers import TRIGGER, api_campaign, people, pk, recipient
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER


async def post(
    gql: GraphQLClient, campaign_id: str, body: Any, *, key: str | None, idempotency_key: str | None
) -> httpx.Response:
    headers = {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    content = body if isinstance(body, bytes) else None
    return await gql.http.post(
        f"/campaigns/{campaign_id}/triggers", headers=headers, content=content, json=None if content else body
    )


async def test_rest_and_graphql_share_keys_answers_and_ledger(
    gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    handler = SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))
    async with smtp_sink(handler) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, "TRANSACTIONAL")
        await people(gql, sandbox)
        publisher = sandbox.keys[Role.PUBLISHER]
        body = {
            "context": {"order": {"id": "R-1"}},
            "recipients": [recipient("yes@example.com", name="Y"), recipient("nobody@example.com")],
        }

        created = await post(gql, campaign_id, body, key=publisher, idempotency_key="rest-1")
        assert created.status_code == 201, created.text
        answer = created.json()
        assert answer["replayed"] is False
        assert answer["trigger"]["accepted"] == 1
        assert answer["trigger"]["rejected"] == [{"index": 1, "reason": "PROFILE_NOT_FOUND"}]

        replay = await post(gql, campaign_id, body, key=publisher, idempotency_key="rest-1")
        assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == {**answer, "replayed": True}

        # The same key over GraphQL, same body: the stored answer, whichever way the first call came.
        graphql = await gql(
            TRIGGER, {"input": {"campaignId": campaign_id, "idempotencyKey": "rest-1", **body}}, key=publisher
        )
        success = graphql["campaignTrigger"]
        assert success["replayed"] is True and success["trigger"]["id"] == answer["trigger"]["id"]

        conflict = await post(gql, campaign_id, {**body, "context": {}}, key=publisher, idempotency_key="rest-1")
        assert conflict.status_code == 409
        assert conflict.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
        assert conflict.json()["error"]["triggerId"] == answer["trigger"]["id"]
        await gql.drain_jobs()
    assert len(handler.received) == 1
    assert await Delivery.filter(campaign_id=pk(campaign_id)).count() == 1

    bad_identity = await post(
        gql, campaign_id, {"recipients": [recipient("not an email")]}, key=publisher, idempotency_key="rest-2"
    )
    assert bad_identity.status_code == 422
    error = bad_identity.json()["error"]
    assert error["code"] == "INVALID_INPUT"
    assert [e["field"] for e in error["fieldErrors"]] == ["recipients[0].identity"]

    empty_key = await post(gql, campaign_id, body, key=publisher, idempotency_key="")
    assert empty_key.status_code == 422
    assert [e["field"] for e in empty_key.json()["error"]["fieldErrors"]] == ["headers.Idempotency-Key"]

    no_key = await post(gql, campaign_id, body, key=publisher, idempotency_key=None)
    assert no_key.status_code == 400 and no_key.json()["error"]["field"] == "headers.Idempotency-Key"
    not_json = await post(gql, campaign_id, b"{nope", key=publisher, idempotency_key="rest-3")
    assert not_json.status_code == 400
    wrong_type = await post(gql, campaign_id, {"recipients": {}}, key=publisher, idempotency_key="rest-3")
    assert wrong_type.status_code == 400 and wrong_type.json()["error"]["field"] == "recipients"

    assert (await post(gql, campaign_id, body, key=None, idempotency_key="rest-4")).status_code == 401
    manager = await post(gql, campaign_id, body, key=sandbox.keys[Role.MANAGER], idempotency_key="rest-4")
    assert manager.status_code == 403
    foreign = await post(gql, campaign_id, body, key=other_sandbox.keys[Role.PUBLISHER], idempotency_key="rest-4")
    assert foreign.status_code == 404
    assert await Delivery.filter(campaign_id=pk(campaign_id)).count() == 1


async def test_rest_refuses_a_campaign_that_is_not_live(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    from tests.graphql.test_campaigns import create

    draft = await create(gql, sandbox, {"name": "Draft", "type": "API_TRIGGERED"})
    response = await post(
        gql,
        draft["id"],
        {"recipients": [recipient("a@example.com")]},
        key=sandbox.keys[Role.PUBLISHER],
        idempotency_key="x",
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "INVALID_STATE"
    assert response.json()["error"]["currentStatus"] == "DRAFT"
