"""Planned execution is on only when wanted, on the pinned library versions, and without per-field extensions."""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path

import pytest
from strawberry.extensions import SchemaExtension

from api.settings import Settings
from resolvers.execution_context import HeraldExecutionContext
from resolvers.execution_support import TESTED_VERSIONS, installed_versions, version_mismatch
from resolvers.schema import SchemaOptions, build_schema

ROOT = Path(__file__).resolve().parents[2]


class Tracing(SchemaExtension):
    """Stands for a tracing extension: it wants to see every field resolved."""

    def resolve(self, _next, root, info, *args, **kwargs):
        return _next(root, info, *args, **kwargs)


class Timing(SchemaExtension):
    """An operation-level extension: no hook per field."""

    def on_operation(self):
        yield


def test_the_pins_in_pyproject_are_the_tested_versions() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {m[1]: m[2] for d in dependencies if (m := re.fullmatch(r"([\w-]+)==([\w.]+)", d.split(";")[0].strip()))}
    assert {name: pins.get(name) for name in TESTED_VERSIONS} == TESTED_VERSIONS


def test_the_installed_versions_are_the_tested_ones() -> None:
    # CI installs from pyproject.toml; a mismatch here means planned execution silently runs nowhere.
    assert version_mismatch() is None, installed_versions()


def test_on_by_default_and_off_by_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAPHQL_PLANNED_EXECUTION", raising=False)
    assert Settings().graphql_planned_execution is True
    monkeypatch.setenv("GRAPHQL_PLANNED_EXECUTION", "false")
    assert Settings().graphql_planned_execution is False
    planned = build_schema()
    plain = build_schema(SchemaOptions(planned_execution=False))
    assert planned.planned_execution and issubclass(planned.execution_context_class, HeraldExecutionContext)
    assert not plain.planned_execution and not issubclass(plain.execution_context_class, HeraldExecutionContext)


def test_other_library_versions_turn_it_off_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    other = {**TESTED_VERSIONS, "graphql-core": "3.4.0"}
    with caplog.at_level(logging.WARNING, logger="herald.graphql"):
        schema = build_schema(installed_versions=other)
    assert not schema.planned_execution
    assert not issubclass(schema.execution_context_class, HeraldExecutionContext)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "graphql-core 3.4.0 (tested: 3.3.2)" in warnings[0].getMessage()
    assert version_mismatch({"strawberry-graphql": TESTED_VERSIONS["strawberry-graphql"]}) == (
        f"graphql-core missing (tested: {TESTED_VERSIONS['graphql-core']})"
    )


def test_an_extension_with_a_hook_per_field_turns_it_off_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="herald.graphql"):
        traced = build_schema(extra_extensions=(Tracing,))
        timed = build_schema(extra_extensions=(lambda: Timing(),))
    assert not traced.planned_execution
    assert timed.planned_execution
    said = [r.getMessage() for r in caplog.records]
    assert said == ["planned GraphQL execution off: extension Tracing needs a hook per field"]


async def test_an_operation_answers_the_same_with_a_per_field_extension() -> None:
    query = "{ __schema { queryType { name } } }"
    traced = await build_schema(extra_extensions=(Tracing,)).execute(query)
    assert traced.errors is None and traced.data == {"__schema": {"queryType": {"name": "Query"}}}
