"""profilesUpsert written set-based: items of one call resolve as if written one after another."""

from __future__ import annotations

from models.audience.entities import Profile, ProfileIdentity
from models.tenancy.audit import AuditEvent
from models.tenancy.sandbox import Sandbox
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_profiles import email, upsert


def ids(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"namespace": ns, "value": value} for ns, value in pairs]


async def test_later_items_merge_into_profiles_created_earlier_in_the_call(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    data = await upsert(
        gql,
        sandbox.admin,
        [
            email("a@example.com", attributes={"n": 1}),
            {"identities": ids(("Email", "A@example.com"), ("Phone", "+33612345678")), "attributes": {"m": 2}},
            {"identities": ids(("Phone", "+33 6 12 34 56 78"), ("CRMID", "crm-a")), "consent": {"sms": "N"}},
            email("b@example.com"),
            # a@ and b@ are two profiles now: this item is refused, and nothing of it is written.
            {"identities": ids(("Email", "a@example.com"), ("Email", "b@example.com"), ("CRMID", "crm-x"))},
            {"identities": ids(("CRMID", "crm-a")), "attributes": {"n": 1, "m": 2}},
        ],
    )
    statuses = [r["status"] for r in data["results"]]
    assert statuses == ["CREATED", "UPDATED", "UPDATED", "CREATED", "ERROR", "UNCHANGED"]
    assert data["results"][4]["errors"] == [{"field": "input.profiles[4].identities", "code": "IDENTITY_CONFLICT"}]
    first = data["results"][0]["profile"]
    assert {r["profile"]["id"] for r in data["results"] if r["index"] in (0, 1, 2, 5)} == {first["id"]}
    final = data["results"][5]["profile"]
    assert final["attributes"] == {"n": 1, "m": 2}
    assert final["consent"]["sms"] == "N"
    assert sorted(i["value"] for i in final["identities"]) == ["+33612345678", "a@example.com", "crm-a"]

    sandbox_id = (await Sandbox.get(name=sandbox.name)).id
    assert await Profile.filter(sandbox_id=sandbox_id).count() == 2
    assert await ProfileIdentity.filter(sandbox_id=sandbox_id, value="crm-x").count() == 0
    actions = await AuditEvent.filter(sandbox_id=sandbox_id, object_type="Profile").values_list("action", flat=True)
    assert sorted(actions) == ["CREATE", "CREATE", "UPDATE", "UPDATE"]


async def test_a_thousand_new_profiles_in_one_call(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    items = [
        {"identities": ids(("Email", f"user{i}@example.com"), ("CRMID", f"c{i}")), "attributes": {"i": i}}
        for i in range(1000)
    ]
    data = await upsert(gql, sandbox.admin, items)
    assert (data["created"], data["failed"]) == (1000, 0)
    # Each profile got its own identities and attributes (ids mapped back to the right rows).
    for result in data["results"][::97]:
        i = result["index"]
        assert result["profile"]["attributes"] == {"i": i}
        assert sorted(x["value"] for x in result["profile"]["identities"]) == [f"c{i}", f"user{i}@example.com"]
    again = await upsert(gql, sandbox.admin, items)
    assert (again["unchanged"], again["created"], again["updated"]) == (1000, 0, 0)


async def test_integers_beyond_64_bits_are_read_as_json_doubles(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    # The request body is decoded by orjson, which reads integers past 64 bits as doubles (as JavaScript does);
    # models.audience.values still refuses such integers from other sources (imports) with INVALID_NUMBER.
    data = await upsert(gql, sandbox.admin, [email("big@example.com", attributes={"n": 2**70})])
    assert data["results"][0]["errors"] == []
    assert data["results"][0]["profile"]["attributes"]["n"] == float(2**70)
