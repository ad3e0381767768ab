"""Bulk profile import: real HTTP uploads to the session server, its in-process arq worker, real files."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from jobs.imports import run_import
from models.audience.entities import Profile, ProfileIdentity
from models.audience.import_format import ImportFormat
from models.audience.imports import ImportStatus, ProfileImport, receive_import
from models.audience.profiles import namespaces_by_code
from models.tenancy.audit import AuditEvent
from models.tenancy.sandbox import Role, Sandbox
from resolvers.audience.inputs import decode_id
from tests.conftest import (
    TEST_DATA_DIR,
    GraphQLClient,
    RunningServer,
    SandboxKeys,
)

IMPORT = """
query($id: ID!) {
  profileImport(id: $id) {
    id status format fileName rowsRead created updated unchanged rejected error
    rejectedRows { line field code message }
  }
}
"""
BY_IDENTITY = """
query($ns: String!, $value: String!) {
  profileByIdentity(namespace: $ns, value: $value) {
    attributes timeZone testProfile consent { email sms push } identities { namespace value }
  }
}
"""

GOOD_CSV = (
    "identity.Email,identity.Phone,attr.person.name.firstName,attr.loyalty.points:number,consent.email,timeZone,"
    "testProfile\n"
    "Ann@Example.com,+33 6 12 34 56 78,Ann,12,y,Europe/Paris,false\n"
    "bob@example.com,,Bob,7.5,n,,\n"
    '"carl@example.com",+14155552671,"Carl, Jr.",0,unknown,America/New_York,yes\n'
    'dora@example.com,,"Multi\nline",,,,\n'
)


async def upload(
    server: RunningServer, key: str | None, body: bytes | str, content_type: str = "text/csv", **params: str
) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    content = body.encode() if isinstance(body, str) else body
    async with httpx.AsyncClient(timeout=60) as http:
        return await http.post(f"{server.base_url}/imports/profiles", content=content, headers=headers, params=params)


async def finished(gql: GraphQLClient, key: str, import_id: str) -> dict[str, Any]:
    """Runs the queued import job, then reads the import."""
    await gql.drain_jobs()
    data = (await gql(IMPORT, {"id": import_id}, key=key))["profileImport"]
    assert data["status"] in ("SUCCEEDED", "FAILED"), data
    return data


async def import_file(server, gql, key: str, body: bytes | str, content_type: str = "text/csv") -> dict[str, Any]:
    response = await upload(server, key, body, content_type)
    assert response.status_code == 202, response.text
    return await finished(gql, key, response.json()["id"])


async def sandbox_id(keys: SandboxKeys) -> int:
    return (await Sandbox.get(name=keys.name)).id


async def test_csv_import_creates_profiles_and_reimport_changes_nothing(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    result = await import_file(server, gql, sandbox.admin, GOOD_CSV)
    assert result["status"] == "SUCCEEDED", result
    assert (result["rowsRead"], result["created"], result["rejected"]) == (4, 4, 0)
    assert result["format"] == "CSV"

    ann = (await gql(BY_IDENTITY, {"ns": "Phone", "value": "+33612345678"}, key=sandbox.admin))["profileByIdentity"]
    assert ann["attributes"] == {"person": {"name": {"firstName": "Ann"}}, "loyalty": {"points": 12}}
    assert ann["consent"]["email"] == "Y" and ann["timeZone"] == "Europe/Paris" and ann["testProfile"] is False
    assert {"namespace": "Email", "value": "ann@example.com"} in ann["identities"]
    carl = (await gql(BY_IDENTITY, {"ns": "Email", "value": "carl@example.com"}, key=sandbox.admin))[
        "profileByIdentity"
    ]
    assert carl["attributes"]["person"]["name"]["firstName"] == "Carl, Jr." and carl["testProfile"] is True
    dora = (await gql(BY_IDENTITY, {"ns": "Email", "value": "dora@example.com"}, key=sandbox.admin))[
        "profileByIdentity"
    ]
    assert dora["attributes"] == {"person": {"name": {"firstName": "Multi\nline"}}}

    sid = await sandbox_id(sandbox)
    before = await Profile.filter(sandbox_id=sid).order_by("id").values("id", "updated_at", "attributes")
    again = await import_file(server, gql, sandbox.admin, GOOD_CSV)
    assert (again["status"], again["created"], again["updated"], again["unchanged"]) == ("SUCCEEDED", 0, 0, 4)
    assert await Profile.filter(sandbox_id=sid).order_by("id").values("id", "updated_at", "attributes") == before
    assert await ProfileIdentity.filter(sandbox_id=sid).count() == 6

    changed = await import_file(server, gql, sandbox.admin, "identity.Email,attr.loyalty.tier\nbob@example.com,gold\n")
    assert (changed["updated"], changed["created"]) == (1, 0)
    bob = (await gql(BY_IDENTITY, {"ns": "Email", "value": "bob@example.com"}, key=sandbox.admin))["profileByIdentity"]
    assert bob["attributes"]["loyalty"] == {"points": 7.5, "tier": "gold"}
    actions = await AuditEvent.filter(sandbox_id=sid, object_type="ProfileImport").values_list("action", flat=True)
    assert sorted(actions).count("FINISH") == 3 and "IMPORT_BATCH" in actions


async def test_bad_rows_are_rejected_one_by_one_and_the_rest_is_imported(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    huge = "x" * 1_000_000
    rows = [
        b"identity.Email,identity.Phone,attr.note,attr.points:integer,consent.sms",  # line 1
        b"ok1@example.com,,fine,1,y",  # 2
        b"not-an-email,,,,",  # 3
        b"ph@example.com,12345,,,",  # 4
        b"nul@example.com,,a\x00b,,",  # 5
        ("big@example.com,," + huge + ",,").encode(),  # 6: a 1 MB field
        b"short@example.com,,",  # 7: too few fields
        b"pts@example.com,,,many,",  # 8
        b"consent@example.com,,,,maybe",  # 9
        b"bad\xff\xfeutf8@example.com,,,,",  # 10
        b",,no identity,,",  # 11
        ("toolong@example.com,," + "y" * 1_100_000 + ",,").encode(),  # 12: over the 1 MiB record limit
        b'ok2@example.com,+14155552671,"quoted, with comma",2,n',  # 13
        b"",
    ]
    result = await import_file(server, gql, sandbox.admin, b"\n".join(rows))
    assert result["status"] == "SUCCEEDED", result
    assert (result["rowsRead"], result["created"], result["rejected"]) == (12, 2, 10)
    rejected = {row["line"]: (row["field"], row["code"]) for row in result["rejectedRows"]}
    assert rejected == {
        3: ("identity.Email", "INVALID_EMAIL"),
        4: ("identity.Phone", "INVALID_PHONE"),
        5: ("attr.*", "INVALID_CHARACTERS"),
        6: ("", "TOO_LONG"),
        7: ("", "MALFORMED_ROW"),
        8: ("attr.points:integer", "INVALID_VALUE"),
        9: ("consent.sms", "INVALID_VALUE"),
        10: ("", "INVALID_ENCODING"),
        11: ("identity.*", "COUNT"),
        12: ("", "TOO_LONG"),
    }
    assert all(row["message"] for row in result["rejectedRows"])
    sid = await sandbox_id(sandbox)
    # Nothing half-written: exactly the two good profiles and their three identities.
    assert await Profile.filter(sandbox_id=sid).count() == 2
    assert sorted(await ProfileIdentity.filter(sandbox_id=sid).values_list("value", flat=True)) == [
        "+14155552671",
        "ok1@example.com",
        "ok2@example.com",
    ]


async def test_ndjson_lines_use_the_upsert_input_shape(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    too_deep_to_parse = '{"identities": [{"namespace": "Email", "value": "n3@example.com"}], "attributes": ' + (
        "[" * 5000 + "]" * 5000 + "}"
    )
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(15):
        cursor["x"] = {}
        cursor = cursor["x"]
    lines = [
        json.dumps(
            {
                "identities": [
                    {"namespace": "Email", "value": "n1@example.com"},
                    {"namespace": "CRMID", "value": "c1"},
                ],
                "attributes": {"person": {"name": {"firstName": "Nia"}}},
                "consent": {"email": "Y", "push": "N"},
                "timeZone": "Europe/Berlin",
                "testProfile": True,
            }
        ),
        "",
        json.dumps({"identities": [{"namespace": "Email", "value": "n2@example.com"}], "color": "red"}),
        json.dumps(["not", "an", "object"]),
        "{not json",
        too_deep_to_parse,
        json.dumps({"identities": [{"namespace": "Nope", "value": "x"}]}),
        json.dumps({"identities": [{"namespace": "Email", "value": "n4@example.com"}], "timeZone": "Mars/Base"}),
        json.dumps(
            {"identities": [{"namespace": "CRMID", "value": "c1"}, {"namespace": "Email", "value": "N1@example.com"}]}
        ),
        json.dumps({"identities": [{"namespace": "Email", "value": "n5@example.com"}], "attributes": deep}),
    ]
    result = await import_file(server, gql, sandbox.admin, "\n".join(lines) + "\n", "application/x-ndjson")
    assert result["status"] == "SUCCEEDED", result
    assert (result["rowsRead"], result["created"], result["unchanged"], result["rejected"]) == (9, 1, 1, 7)
    rejected = {row["line"]: (row["field"], row["code"]) for row in result["rejectedRows"]}
    assert rejected == {
        3: ("color", "UNKNOWN_FIELD"),
        4: ("", "NOT_AN_OBJECT"),
        5: ("", "INVALID_JSON"),
        6: ("", "INVALID_JSON"),  # nested deeper than the JSON parser allows
        7: ("identities[0]", "UNKNOWN_NAMESPACE"),
        8: ("timeZone", "UNKNOWN_TIME_ZONE"),
        10: ("attributes", "TOO_DEEP"),
    }
    nia = (await gql(BY_IDENTITY, {"ns": "CRMID", "value": "c1"}, key=sandbox.admin))["profileByIdentity"]
    assert nia["consent"] == {"email": "Y", "sms": "UNKNOWN", "push": "N"} and nia["testProfile"] is True


async def test_identities_of_two_profiles_in_one_row_are_rejected(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    body = "identity.Email,identity.CRMID\na@example.com,\n,crm-b\na@example.com,crm-b\nA@example.com,crm-a\n"
    result = await import_file(server, gql, sandbox.admin, body)
    assert (result["created"], result["updated"], result["rejected"]) == (2, 1, 1)
    assert result["rejectedRows"][0]["line"] == 4
    assert result["rejectedRows"][0]["code"] == "IDENTITY_CONFLICT"


async def test_a_bad_header_refuses_the_file_before_anything_is_queued(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    body = (
        "identity.Email,identity.Fax,atr.name,attr.a,attr.a.b,identity.Email,attr.n:float\nx@example.com,1,2,3,4,5,6\n"
    )
    response = await upload(server, sandbox.admin, body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "BAD_HEADER"
    problems = "\n".join(error["problems"])
    for needle in ("'identity.Fax'", "'atr.name'", "given twice", "'a'", "float"):
        assert needle in problems
    assert await ProfileImport.filter(sandbox_id=await sandbox_id(sandbox)).count() == 0
    assert list((TEST_DATA_DIR / "imports").glob("*.part")) == []


async def test_upload_refusals(server: RunningServer, sandbox: SandboxKeys) -> None:
    assert (await upload(server, None, GOOD_CSV)).status_code == 401
    assert (await upload(server, "hrld_wrong", GOOD_CSV)).status_code == 401
    for role in (Role.VIEWER, Role.MANAGER, Role.PUBLISHER):
        assert (await upload(server, sandbox.keys[role], GOOD_CSV)).status_code == 403
    assert (await upload(server, sandbox.admin, GOOD_CSV, "application/json")).status_code == 415
    assert (await upload(server, sandbox.admin, b"")).status_code == 400
    assert (await upload(server, sandbox.admin, b"\n\n")).status_code == 400


async def test_an_upload_over_the_size_limit_gets_413_and_leaves_no_file(
    server: RunningServer, sandbox: SandboxKeys
) -> None:
    limit = server.settings.import_max_bytes
    server.settings.import_max_bytes = 4096  # the app reads this settings object per request
    try:
        declared = await upload(server, sandbox.admin, "identity.Email\n" + "a@example.com\n" * 400)
        assert declared.status_code == 413

        async def chunks():
            yield b"identity.Email\n"
            for _ in range(100):
                yield b"a@example.com\n" * 10

        # Chunked (no Content-Length): refused while streaming.
        async with httpx.AsyncClient(timeout=30) as http:
            streamed = await http.post(
                f"{server.base_url}/imports/profiles",
                content=chunks(),
                headers={"Authorization": f"Bearer {sandbox.admin}", "Content-Type": "text/csv"},
            )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "TOO_LARGE"
    finally:
        server.settings.import_max_bytes = limit
    assert list((TEST_DATA_DIR / "imports").glob("*.part")) == []
    assert await ProfileImport.filter(sandbox_id=await sandbox_id(sandbox)).count() == 0


async def _pending_import(keys: SandboxKeys, body: str) -> ProfileImport:
    sid = await sandbox_id(keys)

    async def chunks():
        yield body.encode()

    return await receive_import(
        sid,
        chunks(),
        format=ImportFormat.CSV,
        file_name="direct.csv",
        actor="test",
        data_dir=TEST_DATA_DIR,
        max_bytes=10_000_000,
        namespace_codes=set(await namespaces_by_code(sid)),
    )


async def test_a_run_cut_short_resumes_after_its_last_batch_and_counts_once(
    server: RunningServer, sandbox: SandboxKeys
) -> None:
    body = "identity.Email,attr.i:integer\n" + "".join(f"r{i}@example.com,{i}\n" for i in range(10))
    row = await _pending_import(sandbox, body)
    batches = 0

    async def crash_after_two_batches(current: ProfileImport) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise asyncio.CancelledError  # what arq does to a job on timeout; the row stays RUNNING

    with pytest.raises(asyncio.CancelledError):
        await run_import(row.id, data_dir=TEST_DATA_DIR, batch_rows=3, progress=crash_after_two_batches)
    halfway = await ProfileImport.get(id=row.id)
    assert (halfway.status, halfway.rows_read, halfway.profiles_created) == (ImportStatus.RUNNING, 6, 6)

    await run_import(row.id, data_dir=TEST_DATA_DIR, batch_rows=3)
    await run_import(row.id, data_dir=TEST_DATA_DIR, batch_rows=3)  # a finished import is left alone
    done = await ProfileImport.get(id=row.id)
    assert (done.status, done.rows_read, done.profiles_created, done.rows_rejected) == (
        ImportStatus.SUCCEEDED,
        10,
        10,
        0,
    )
    assert await Profile.filter(sandbox_id=row.sandbox_id).count() == 10


async def test_two_runs_at_once_import_each_row_once(server: RunningServer, sandbox: SandboxKeys) -> None:
    body = "identity.Email\n" + "".join(f"c{i}@example.com\n" for i in range(40))
    row = await _pending_import(sandbox, body)
    await asyncio.gather(
        run_import(row.id, data_dir=TEST_DATA_DIR, batch_rows=5),
        run_import(row.id, data_dir=TEST_DATA_DIR, batch_rows=5),
    )
    done = await ProfileImport.get(id=row.id)
    assert (done.status, done.rows_read, done.profiles_created, done.profiles_unchanged) == (
        ImportStatus.SUCCEEDED,
        40,
        40,
        0,
    )


async def test_progress_subscription_follows_an_import_to_its_end(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys
) -> None:
    body = "identity.Email\n" + "".join(f"s{i}@example.com\n" for i in range(3000))
    row = await _pending_import(sandbox, body)
    global_id = await _global_id(gql, sandbox, row.id)
    query = "subscription($id: ID!) { profileImportProgress(id: $id) { status rowsRead created } }"
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {sandbox.admin}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": query, "variables": {"id": global_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        first = json.loads(await ws.recv())
        assert first["payload"]["data"]["profileImportProgress"]["status"] == "PENDING"
        run = asyncio.create_task(
            run_import(row.id, data_dir=TEST_DATA_DIR, batch_rows=500, progress=_publisher(server, row))
        )
        seen = []
        async with asyncio.timeout(30):
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "complete":
                    break
                seen.append(message["payload"]["data"]["profileImportProgress"])
        await run
    assert seen[-1] == {"status": "SUCCEEDED", "rowsRead": 3000, "created": 3000}
    assert [s["rowsRead"] for s in seen] == sorted(s["rowsRead"] for s in seen)


def _publisher(server: RunningServer, row: ProfileImport):
    from redis.asyncio import Redis

    from jobs.events import publish
    from jobs.imports import progress_payload
    from models.audience.imports import progress_topic

    redis = Redis.from_url(server.settings.redis_url)

    async def report(current: ProfileImport) -> None:
        await publish(redis, current.sandbox_id, progress_topic(current.id), progress_payload(current))

    return report


async def _global_id(gql: GraphQLClient, keys: SandboxKeys, pk: int) -> str:
    data = await gql("query { profileImports(first: 100) { nodes { id } } }", key=keys.admin)
    ids = [node["id"] for node in data["profileImports"]["nodes"]]
    match = [gid for gid in ids if decode_id(gid, "ProfileImport") == pk]
    assert match
    return match[0]


async def test_imports_do_not_cross_sandboxes(
    server: RunningServer, gql: GraphQLClient, sandbox: SandboxKeys, other_sandbox: SandboxKeys
) -> None:
    response = await upload(server, sandbox.admin, "identity.Email\nz@example.com\n")
    import_id = response.json()["id"]
    await finished(gql, sandbox.admin, import_id)
    assert (await gql(IMPORT, {"id": import_id}, key=other_sandbox.admin))["profileImport"] is None
    node = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": import_id}, key=other_sandbox.admin)
    assert node["node"] is None
    viewer = await gql(IMPORT, {"id": import_id}, key=sandbox.keys[Role.VIEWER])
    assert viewer["profileImport"]["status"] == "SUCCEEDED"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_cli_imports_a_file_in_process(
    server: RunningServer, database_url: str, sandbox: SandboxKeys, tmp_path: Path
) -> None:
    good = tmp_path / "people.csv"
    good.write_text("identity.Email,attr.city\ncli1@example.com,Lyon\nnope,Paris\ncli2@example.com,\n")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": server.settings.redis_url or "",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "WARNING",
    }
    done = await asyncio.to_thread(_cli, "import", "profiles", str(good), "--sandbox", sandbox.name, env=env)
    assert done.returncode == 0, done.stderr
    assert "SUCCEEDED: 3 rows read, 2 created, 0 updated, 0 unchanged, 1 rejected" in done.stdout
    assert "line 3: identity.Email: INVALID_EMAIL" in done.stdout
    assert await Profile.filter(sandbox_id=await sandbox_id(sandbox)).count() == 2

    bad = tmp_path / "bad.csv"
    bad.write_text("email\nx@example.com\n")
    refused = await asyncio.to_thread(_cli, "import", "profiles", str(bad), "--sandbox", sandbox.name, env=env)
    assert refused.returncode == 1 and "'email'" in refused.stderr
    unknown = await asyncio.to_thread(_cli, "import", "profiles", str(good), "--sandbox", "no-such", env=env)
    assert unknown.returncode == 1 and "no sandbox" in unknown.stderr
