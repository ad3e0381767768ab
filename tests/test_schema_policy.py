"""The schema change policy: the repository's schema passes it, and each way of marking a change is judged."""

from __future__ import annotations

import subprocess
import sys

from api.schema_policy import ROOT, check

RELEASE = """
type Query {
  campaign(id: ID!, legacy: Boolean @deprecated(reason: "unused")): Campaign
  old: String @deprecated(reason: "use campaign")
  kept: String
  status: Status
}
type Campaign { id: ID! name: String }
enum Status { DRAFT LIVE ARCHIVED @deprecated(reason: "gone") }
"""


def _without(sdl: str, *parts: str) -> str:
    for part in parts:
        assert part in sdl
        sdl = sdl.replace(part, "", 1)
    return sdl


def test_the_repository_schema_passes_the_policy() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "api.schema_policy"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_removing_what_the_release_deprecated_passes() -> None:
    current = _without(
        RELEASE,
        '  old: String @deprecated(reason: "use campaign")\n',
        ' ARCHIVED @deprecated(reason: "gone")',
        ', legacy: Boolean @deprecated(reason: "unused")',
    )
    assert check(RELEASE, current, "") == []


def test_an_unmarked_breaking_change_fails_and_names_it() -> None:
    current = _without(RELEASE, "  kept: String\n")
    problems = check(RELEASE, current, "")
    assert len(problems) == 1 and "FIELD_REMOVED: Field Query.kept was removed." in problems[0]

    retyped = RELEASE.replace("type Campaign { id: ID! name: String }", "type Campaign { id: ID! name: Int }")
    assert "FIELD_CHANGED_KIND" in check(RELEASE, retyped, "")[0]


def test_a_listed_change_with_a_reason_passes_and_a_stale_or_unexplained_entry_fails() -> None:
    current = _without(RELEASE, "  kept: String\n")
    listed = '[[change]]\ndescription = "Field Query.kept was removed."\nreason = "Nobody ever read it."\n'
    assert check(RELEASE, current, listed) == []

    stale = check(RELEASE, RELEASE, listed)
    assert stale == [
        "schema.allowed-changes.toml: no breaking change matches 'Field Query.kept was removed.'; remove the entry"
    ]
    unexplained = '[[change]]\ndescription = "Field Query.kept was removed."\n'
    problems = check(RELEASE, current, unexplained)
    assert any("needs a description and a reason" in p for p in problems)
    assert any("Field Query.kept was removed." in p and p.startswith("breaking change") for p in problems)


def test_additions_are_not_breaking() -> None:
    current = RELEASE.replace("  kept: String\n", "  kept: String\n  added(first: Int): [String!]\n")
    assert check(RELEASE, current, "") == []
