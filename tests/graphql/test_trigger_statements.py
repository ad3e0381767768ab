"""What one accepted trigger costs in SQL statements, REST and GraphQL (issue 17: 200 triggers/s on two cores).
Counted with tests/sql_counter.py on the request path (authentication included; BEGIN and COMMIT are not
statements here), once earlier calls made the campaign's run and the process remembers it: a new statement per
call on this path must be a choice, not an accident.

Before the shared run, 10 each: the API key lookup (REST only), the trigger read, the campaign, the trigger
insert, the namespaces, the identities, the run insert, the ledger insert, the trigger update, the outbox event,
and GraphQL read the trigger again for its answer. Now 8 each: no run write (the run is remembered), the REST key
lookup cached like GraphQL's (AUTH_CACHE_SECONDS), and GraphQL answers from what the call wrote.
Now 7: the trigger read joined to the campaign read (one round trip less). On PostgreSQL, 1: once the campaign's
shape is kept, one data-modifying statement outside any transaction does it all (models/triggers/accept_pg.py),
where the seven also cost BEGIN and COMMIT."""

from __future__ import annotations

from models.tenancy.sandbox import Role
from tests.conftest import TEST_DB, GraphQLClient, SandboxKeys
from tests.graphql.test_trigger_rest import post
from tests.graphql.test_triggers import api_campaign, people, recipient, trigger
from tests.jobs.smtp_sink import SinkHandler, smtp_sink
from tests.provider_servers import SMTP_PASSWORD, SMTP_USER
from tests.sql_counter import count_sql

REST_STATEMENTS = 7
GRAPHQL_STATEMENTS = 7
POSTGRES_STATEMENTS = 1


async def test_an_acceptance_costs_a_fixed_number_of_statements(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    async with smtp_sink(SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, "TRANSACTIONAL")
    await people(gql, sandbox)
    publisher = sandbox.keys[Role.PUBLISHER]

    def body(n: int) -> dict:
        return {"context": {"order": {"id": f"C-{n}"}}, "recipients": [recipient("yes@example.com", name="Y")]}

    for n in (0, 10):  # the first makes the run, the second finds it and remembers it
        earlier = await post(gql, campaign_id, body(n), key=publisher, idempotency_key=f"count-{n}")
        assert earlier.status_code == 201, earlier.text
    with count_sql() as rest:
        created = await post(gql, campaign_id, body(1), key=publisher, idempotency_key="count-1")
    assert created.status_code == 201, created.text
    with count_sql() as graphql:
        result = await trigger(gql, sandbox, {"campaignId": campaign_id, "idempotencyKey": "count-2", **body(2)})
    assert result["__typename"] == "CampaignTriggerSuccess", result
    print(f"\nREST {len(rest)}:\n  " + "\n  ".join(s[:150] for s in rest))
    print(f"GraphQL {len(graphql)}:\n  " + "\n  ".join(s[:150] for s in graphql))
    if TEST_DB == "postgres":
        assert (len(rest), len(graphql)) == (POSTGRES_STATEMENTS, POSTGRES_STATEMENTS), (rest, graphql)
    assert len(rest) <= REST_STATEMENTS, rest
    assert len(graphql) <= GRAPHQL_STATEMENTS, graphql


async def test_a_batch_s_statements_are_one_text_whatever_its_size(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    """PostgreSQL prepares each text once per connection: the send path's id lists are one array parameter, so
    batches of 1 and 3 rows send the same statements (an IN list of n placeholders was a new one to parse)."""
    if TEST_DB != "postgres":
        return  # SQLite spells the list out
    async with smtp_sink(SinkHandler(credentials=(SMTP_USER, SMTP_PASSWORD))) as sink:
        campaign_id = await api_campaign(gql, sandbox, sink.port, "TRANSACTIONAL")
        await people(gql, sandbox)
        texts: list[set[str]] = []
        for size in (1, 3):
            recipients = [
                recipient(a, name="N") for a in ("yes@example.com", "no@example.com", "unsubscribed@example.com")
            ]
            body = {"context": {"order": {"id": f"S-{size}"}}, "recipients": recipients[:size]}
            result = await trigger(gql, sandbox, {"campaignId": campaign_id, "idempotencyKey": f"size-{size}", **body})
            assert result["__typename"] == "CampaignTriggerSuccess", result
            with count_sql() as sent:
                await gql.drain_jobs()
            texts.append({s for s in sent if "hand_offs = hand_offs + 1" in s or "AS call" in s})
    assert len(texts[0]) == 2 and texts[0] == texts[1], texts
