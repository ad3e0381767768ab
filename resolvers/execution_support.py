"""Whether planned execution (resolvers/execution_context.py) may run: it replaces parts of graphql-core's
execution using private internals of graphql-core and strawberry, so it runs only on the versions it was
tested with (pinned in pyproject.toml), and not beside an extension that needs a hook per field."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from strawberry.extensions import SchemaExtension

# Keep equal to the pins in pyproject.toml; tests/graphql/test_execution_switch.py checks they agree.
TESTED_VERSIONS = {"strawberry-graphql": "0.341.2", "graphql-core": "3.3.2"}


def installed_versions() -> dict[str, str]:
    found = {}
    for name in TESTED_VERSIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def version_mismatch(installed: Mapping[str, str] | None = None) -> str | None:
    """Why the installed versions are not the tested ones (None when they are)."""
    installed = installed_versions() if installed is None else installed
    wrong = [
        f"{name} {installed.get(name, 'missing')} (tested: {tested})"
        for name, tested in TESTED_VERSIONS.items()
        if installed.get(name) != tested
    ]
    return ", ".join(wrong) or None


def _extension_class(extension: type[SchemaExtension] | SchemaExtension | Callable[[], Any]) -> type | None:
    if isinstance(extension, type):
        return extension
    if isinstance(extension, SchemaExtension):
        return type(extension)
    # A factory (build_schema passes lambdas): what it builds says what it is.
    return type(extension())


def per_field_extensions(extensions: Iterable[Any]) -> list[str]:
    """Names of the extensions that override `resolve`: strawberry runs those as graphql-core middleware, a
    call per field, which planned execution does not make."""
    names = []
    for extension in extensions:
        cls = _extension_class(extension)
        if cls is not None and issubclass(cls, SchemaExtension) and cls.resolve is not SchemaExtension.resolve:
            names.append(cls.__name__)
    return names
