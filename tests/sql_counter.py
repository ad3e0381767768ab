"""Counts SQL statements sent through Tortoise, for "a page costs a constant number of statements" tests."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterator
from contextvars import ContextVar

from tortoise.backends.base.client import BaseDBAsyncClient

_METHODS = ("execute_query", "execute_query_dict", "execute_insert", "execute_many")
_inside: ContextVar[bool] = ContextVar("inside_counted_call", default=False)


def _in_background_task() -> bool:
    """The outbox relay polls in its own task of the same process: its statements are not the request's."""
    task = asyncio.current_task()
    return task is not None and task.get_name() == "outbox-relay"


def _all_client_classes() -> list[type]:
    found, pending = [], [BaseDBAsyncClient]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


@contextlib.contextmanager
def count_sql() -> Iterator[list[str]]:
    """Yields the list of statements executed inside the block (nested client calls counted once)."""
    statements: list[str] = []
    originals: list[tuple[type, str, object]] = []

    def wrap(method):
        @functools.wraps(method)
        async def counted(self, query, *args, **kwargs):
            if _inside.get() or _in_background_task():
                return await method(self, query, *args, **kwargs)
            statements.append(query)
            token = _inside.set(True)
            try:
                return await method(self, query, *args, **kwargs)
            finally:
                _inside.reset(token)

        return counted

    for cls in _all_client_classes():
        for name in _METHODS:
            if name in cls.__dict__:
                originals.append((cls, name, cls.__dict__[name]))
                setattr(cls, name, wrap(cls.__dict__[name]))
    try:
        yield statements
    finally:
        for cls, name, original in reversed(originals):
            setattr(cls, name, original)
