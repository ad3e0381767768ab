"""The schema change policy (docs/api.md): schema.graphql against the previous release's schema.release.graphql.

A breaking change (graphql-core's breaking change types) passes only when it is marked:
- the removal of a field, input field, argument or enum value that is `@deprecated` in schema.release.graphql
  (deprecated in one release, removed in a later one);
- any other breaking change listed in schema.allowed-changes.toml, with graphql-core's description of it and
  a reason, reviewed like code. An entry no change matches fails too, so the list stays true.
At a release, schema.graphql is copied to schema.release.graphql and the list is emptied.

Run: python -m api.schema_policy (in .ci/run and tests/test_schema_policy.py).
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from graphql import BreakingChangeType, GraphQLSchema, build_schema, find_schema_changes
from graphql.type import is_enum_type, is_input_object_type, is_interface_type, is_object_type

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "schema.release.graphql"
CURRENT = ROOT / "schema.graphql"
ALLOWED = ROOT / "schema.allowed-changes.toml"

# graphql-core's descriptions of the removals a deprecation can announce.
_FIELD = re.compile(r"^Field (\w+)\.(\w+) was removed\.$")
_ENUM_VALUE = re.compile(r"^Enum value (\w+)\.(\w+) was removed\.$")
_ARGUMENT = re.compile(r"^Argument (\w+)\.(\w+)\((\w+):\) was removed\.$")


@dataclass(frozen=True, slots=True)
class Change:
    type: str
    description: str


def breaking_changes(old: GraphQLSchema, new: GraphQLSchema) -> list[Change]:
    # find_breaking_changes is deprecated since graphql-core 3.3 in favour of this, filtered the same way.
    return [
        Change(change.type.name, change.description)
        for change in find_schema_changes(old, new)
        if isinstance(change.type, BreakingChangeType)
    ]


def was_deprecated(old: GraphQLSchema, description: str) -> bool:
    """Whether the element this change removes carried @deprecated in the old schema."""
    if match := _FIELD.match(description):
        owner = old.get_type(match[1])
        if is_object_type(owner) or is_interface_type(owner) or is_input_object_type(owner):
            field = owner.fields.get(match[2])  # type: ignore[union-attr]
            return field is not None and field.deprecation_reason is not None
    elif match := _ENUM_VALUE.match(description):
        owner = old.get_type(match[1])
        if is_enum_type(owner):
            value = owner.values.get(match[2])  # type: ignore[union-attr]
            return value is not None and value.deprecation_reason is not None
    elif match := _ARGUMENT.match(description):
        owner = old.get_type(match[1])
        if is_object_type(owner) or is_interface_type(owner):
            field = owner.fields.get(match[2])  # type: ignore[union-attr]
            argument = field.args.get(match[3]) if field else None
            return argument is not None and argument.deprecation_reason is not None
    return False


def load_allowed(text: str) -> tuple[dict[str, str], list[str]]:
    """Allowed descriptions → reasons, and the problems of the file itself."""
    problems: list[str] = []
    allowed: dict[str, str] = {}
    for index, entry in enumerate(tomllib.loads(text).get("change", [])):
        description = str(entry.get("description", "")).strip()
        reason = str(entry.get("reason", "")).strip()
        if not description or not reason:
            problems.append(f"schema.allowed-changes.toml: change #{index + 1} needs a description and a reason")
            continue
        allowed[description] = reason
    return allowed, problems


def check(release_sdl: str, current_sdl: str, allowed_toml: str) -> list[str]:
    """The policy's verdict: one line per problem; empty when the schema may ship."""
    old, new = build_schema(release_sdl), build_schema(current_sdl)
    allowed, problems = load_allowed(allowed_toml)
    used: set[str] = set()
    for change in breaking_changes(old, new):
        if change.description in allowed:
            used.add(change.description)
        elif not was_deprecated(old, change.description):
            problems.append(
                f"breaking change {change.type}: {change.description} Deprecate it for a release first, or list "
                "it in schema.allowed-changes.toml with a reason."
            )
    problems.extend(
        f"schema.allowed-changes.toml: no breaking change matches {description!r}; remove the entry"
        for description in allowed.keys() - used
    )
    return problems


def main() -> int:
    allowed = ALLOWED.read_text() if ALLOWED.exists() else ""
    problems = check(RELEASE.read_text(), CURRENT.read_text(), allowed)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print("schema policy: no unmarked breaking change against schema.release.graphql")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
