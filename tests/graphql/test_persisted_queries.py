"""Automatic persisted queries (Apollo APQ) and the API-key cache."""

from __future__ import annotations

import hashlib

from models.tenancy.actions import revoke_api_key
from models.tenancy.sandbox import ApiKey, hash_api_key
from tests.conftest import GraphQLClient, SandboxKeys

QUERY = "query Persisted { viewer { role } }"
DIGEST = hashlib.sha256(QUERY.encode()).hexdigest()


def _ext(digest: str = DIGEST, version: int = 1) -> dict:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


async def _post(gql: GraphQLClient, body: dict, key: str):
    return await gql.http.post(gql.url, json=body, headers={"Authorization": f"Bearer {key}"})


async def test_unknown_hash_asks_for_the_query_then_the_hash_alone_works(
    gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    unknown = hashlib.sha256(b"query Never { viewer { role } }").hexdigest()
    miss = await _post(gql, {"extensions": _ext(unknown)}, sandbox.admin)

    assert miss.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert miss.json()["errors"][0]["message"] == "PersistedQueryNotFound"

    stored = await _post(gql, {"query": QUERY, "extensions": _ext()}, sandbox.admin)
    assert stored.json()["data"] == {"viewer": {"role": "ADMIN"}}
    by_hash = await _post(gql, {"extensions": _ext()}, sandbox.admin)
    assert by_hash.status_code == 200
    assert by_hash.json()["data"] == {"viewer": {"role": "ADMIN"}}
    over_get = await gql.http.get(
        gql.url,
        params={"extensions": f'{{"persistedQuery":{{"version":1,"sha256Hash":"{DIGEST}"}}}}'},
        headers={"Authorization": f"Bearer {sandbox.admin}", "Accept": "application/json"},
    )
    assert over_get.json()["data"] == {"viewer": {"role": "ADMIN"}}


async def test_a_hash_that_does_not_match_the_query_is_refused(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    wrong = await _post(gql, {"query": "query Other { viewer { role } }", "extensions": _ext()}, sandbox.admin)
    assert wrong.status_code == 400
    bad_version = await _post(gql, {"query": QUERY, "extensions": _ext(version=2)}, sandbox.admin)
    assert bad_version.status_code == 400


async def test_a_persisted_query_still_needs_a_valid_key(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    await _post(gql, {"query": QUERY, "extensions": _ext()}, sandbox.admin)
    refused = await gql.http.post(gql.url, json={"extensions": _ext()})
    assert refused.status_code == 401


async def test_revocation_in_this_process_beats_the_key_cache(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    key = sandbox.keys[next(iter(sandbox.keys))]
    for _ in range(2):  # the second answer comes from the cache
        assert (await gql.raw(QUERY, key=key)).status_code == 200
    stored = await ApiKey.get(key_hash=hash_api_key(key))
    await revoke_api_key(stored.id, actor="test")
    assert (await gql.raw(QUERY, key=key)).status_code == 401
