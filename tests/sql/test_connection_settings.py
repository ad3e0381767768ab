"""The session settings Herald's PostgreSQL pools open their connections with (api/settings.connection_config)."""

from __future__ import annotations

import pytest
from tortoise import connections

from tests.conftest import TEST_DB, GraphQLClient

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="PostgreSQL's JIT")


async def test_statements_are_not_jit_compiled(gql: GraphQLClient) -> None:
    # A plan costed above jit_above_cost (the trigger acceptance's statement) compiled at every call: the tail
    # of the acceptance latency at 200 triggers/s.
    rows = await connections.get("default").execute_query_dict("SHOW jit")
    assert rows == [{"jit": "off"}]
