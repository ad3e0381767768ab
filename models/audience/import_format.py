"""The files a profile import reads: CSV with a header row, or NDJSON; each record turned into ProfileChanges.

Pure (no Tortoise, no Strawberry): reading a stored file record by record, with the byte offset after each
record so an interrupted import resumes exactly where its last committed batch ended.

CSV columns (the header names them; cells left empty change nothing):

| column | meaning |
|---|---|
| `identity.<code>` | an identity in namespace `<code>` (e.g. `identity.Email`, `identity.Phone`, `identity.CRMID`) |
| `attr.<path>` or `attr.<path>:<type>` | the attribute at the dotted path (`attr.person.name.firstName`), |
|   | typed `string` (default), `number`, `integer`, `boolean` (`true/false/1/0/yes/no`) or `json` |
|   | (any JSON value; `null` removes the attribute) |
| `consent.email`, `consent.sms`, `consent.push` | marketing consent: `y`, `n` or `unknown` |
| `timeZone` | IANA time zone |
| `testProfile` | `true/false/1/0/yes/no` |

A header with an unknown, duplicated or malformed column refuses the whole file before anything is written
(a typo in a column name would otherwise drop that column's data from every row). Each NDJSON line is one
object shaped like a `profilesUpsert` input item (`identities`, `attributes`, `consent`, `timeZone`,
`testProfile`); an unknown key refuses that line only.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any

import orjson

from models.audience.entities import Consent, ContactChannel
from models.audience.profile_writes import KEEP
from models.audience.profiles import IdentityValue, ProfileChanges
from models.audience.values import MAX_ATTRIBUTE_DEPTH, MAX_ATTRIBUTE_KEY_LENGTH

# One CSV record or NDJSON line; longer ones are refused (and skipped) without being held in memory.
MAX_RECORD_BYTES = 1024 * 1024
MAX_COLUMNS = 200
BOM = b"\xef\xbb\xbf"


class ImportFormat(StrEnum):
    CSV = "CSV"
    NDJSON = "NDJSON"


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one record was refused: the column (CSV) or JSON path (NDJSON), a stable code, a message."""

    field: str
    code: str
    message: str


@dataclass(slots=True)
class Record:
    """One record of the file: the line it starts on, the offset just after it, and its content."""

    line: int
    end_offset: int
    end_line: int
    values: Any = None  # list[str] (CSV) or the decoded JSON (NDJSON)
    problem: RowProblem | None = None


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str  # identity | attr | consent | timeZone | testProfile
    namespace: str = ""
    path: tuple[str, ...] = ()
    value_type: str = "string"
    channel: ContactChannel | None = None


class FileRefused(Exception):
    """The file as a whole cannot be imported (bad header, unknown namespace, empty file)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(slots=True)
class RowChanges:
    """A record turned into a profile change, with the column naming each identity (for error messages)."""

    changes: Any  # models.profiles.ProfileChanges
    identity_fields: list[str] = field(default_factory=list)


# ---- reading records ----------------------------------------------------------------------------------


class _RecordTooLong(Exception):
    pass


class _Lines:
    """Physical lines of a binary file from an offset; counts bytes and refuses over-long records."""

    def __init__(self, stream: IO[bytes], offset: int, line: int) -> None:
        self.stream = stream
        self.offset = offset
        self.line = line
        self.record_line = line + 1
        self.record_bytes = 0
        self.bad_encoding = False
        if offset == 0:
            head = stream.read(len(BOM))
            if head == BOM:
                self.offset = len(BOM)
            else:
                stream.seek(0)

    def start_record(self) -> None:
        self.record_line = self.line + 1
        self.record_bytes = 0
        self.bad_encoding = False

    def next_bytes(self) -> bytes:
        raw = self.stream.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            raise StopIteration
        self.offset += len(raw)
        self.line += 1
        self.record_bytes += len(raw)
        if self.record_bytes > MAX_RECORD_BYTES:
            while not raw.endswith(b"\n"):  # skip the rest of this line without keeping it
                raw = self.stream.readline(MAX_RECORD_BYTES)
                if not raw:
                    break
                self.offset += len(raw)
            raise _RecordTooLong
        return raw

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self.next_bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.bad_encoding = True
            return raw.decode("utf-8", errors="replace")


_TOO_LONG = RowProblem("", "TOO_LONG", f"a record may take at most {MAX_RECORD_BYTES} bytes")
_BAD_ENCODING = RowProblem("", "INVALID_ENCODING", "the record is not valid UTF-8")


def read_csv(stream: IO[bytes], offset: int = 0, line: int = 0) -> Iterator[Record]:
    """CSV records from `offset` (0: the header comes first). Blank lines are skipped."""
    lines = _Lines(stream, offset, line)
    reader = csv.reader(lines)
    while True:
        lines.start_record()
        try:
            values = next(reader)
        except StopIteration:
            return
        except _RecordTooLong:
            yield Record(lines.record_line, lines.offset, lines.line, problem=_TOO_LONG)
            reader = csv.reader(lines)  # a fresh parser: the refused record's state is dropped
            continue
        except csv.Error as exc:
            # The csv module refuses fields over its limit (131,072 characters): a clear per-row refusal.
            code = "TOO_LONG" if "field limit" in str(exc) else "MALFORMED_ROW"
            yield Record(lines.record_line, lines.offset, lines.line, problem=RowProblem("", code, str(exc)))
            reader = csv.reader(lines)
            continue
        if not values:
            continue
        problem = _BAD_ENCODING if lines.bad_encoding else None
        yield Record(lines.record_line, lines.offset, lines.line, values=values, problem=problem)


def read_ndjson(stream: IO[bytes], offset: int = 0, line: int = 0) -> Iterator[Record]:
    """One JSON value per line from `offset`. Blank lines are skipped."""
    lines = _Lines(stream, offset, line)
    while True:
        lines.start_record()
        try:
            raw = lines.next_bytes()
        except StopIteration:
            return
        except _RecordTooLong:
            yield Record(lines.record_line, lines.offset, lines.line, problem=_TOO_LONG)
            continue
        if not raw.strip():
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            problem = RowProblem("", "INVALID_JSON", str(exc))
            yield Record(lines.record_line, lines.offset, lines.line, problem=problem)
            continue
        yield Record(lines.record_line, lines.offset, lines.line, values=value)


# ---- CSV header and cells -----------------------------------------------------------------------------

_TYPES = ("string", "number", "integer", "boolean", "json")
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n"}
_INTEGER_RE = re.compile(r"^[+-]?\d+$")


def parse_header(names: list[str], namespace_codes: set[str]) -> list[Column]:
    """The columns of a CSV header; FileRefused lists every problem found."""
    problems: list[str] = []
    columns: list[Column] = []
    if len(names) > MAX_COLUMNS:
        raise FileRefused([f"at most {MAX_COLUMNS} columns"])
    seen: set[str] = set()
    for position, raw in enumerate(names, start=1):
        name = raw.strip()
        if name in seen:
            problems.append(f"column {position} ({name!r}) is given twice")
            continue
        seen.add(name)
        try:
            columns.append(_column(name, namespace_codes))
        except ValueError as exc:
            problems.append(f"column {position} ({name[:100]!r}): {exc}")
    paths = sorted(c.path for c in columns if c.kind == "attr")
    for shorter, longer in itertools.pairwise(paths):  # a prefix sorts right before its extensions
        if longer[: len(shorter)] == shorter:
            problems.append(f"attribute {'.'.join(shorter)!r} cannot hold both a value and {'.'.join(longer)!r}")
    if not problems and not any(c.kind == "identity" for c in columns):
        problems.append("no identity.<namespace> column: every profile needs an identity")
    if problems:
        raise FileRefused(problems)
    return columns


def _column(name: str, namespace_codes: set[str]) -> Column:
    if name == "timeZone":
        return Column(name, "timeZone")
    if name == "testProfile":
        return Column(name, "testProfile")
    kind, _, rest = name.partition(".")
    if kind == "identity":
        if rest not in namespace_codes:
            raise ValueError(f"no identity namespace {rest!r} in this sandbox")
        return Column(name, "identity", namespace=rest)
    if kind == "consent":
        channels = {c.value.lower(): c for c in ContactChannel}
        if rest not in channels:
            raise ValueError("consent columns are consent.email, consent.sms and consent.push")
        return Column(name, "consent", channel=channels[rest])
    if kind == "attr":
        path_text, _, value_type = rest.partition(":")
        value_type = value_type or "string"
        if value_type not in _TYPES:
            raise ValueError(f"unknown type {value_type!r}; use one of {', '.join(_TYPES)}")
        path = tuple(path_text.split("."))
        if not all(0 < len(key) <= MAX_ATTRIBUTE_KEY_LENGTH for key in path):
            raise ValueError(f"attribute path parts must be 1 to {MAX_ATTRIBUTE_KEY_LENGTH} characters")
        if len(path) > MAX_ATTRIBUTE_DEPTH - 1:
            raise ValueError(f"attribute paths may have at most {MAX_ATTRIBUTE_DEPTH - 1} parts")
        return Column(name, "attr", path=path, value_type=value_type)
    raise ValueError(
        "unknown column; use identity.<namespace>, attr.<path>[:type], consent.<channel>, timeZone or testProfile"
    )


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("not a boolean (true/false, 1/0, yes/no)")


def _cell_value(column: Column, text: str) -> Any:
    if column.value_type == "string":
        return text
    if column.value_type == "boolean":
        return _boolean(text)
    if column.value_type == "integer":
        if not _INTEGER_RE.match(text.strip()):
            raise ValueError("not an integer")
        return int(text)
    if column.value_type == "number":
        stripped = text.strip()
        if _INTEGER_RE.match(stripped):
            return int(stripped)
        number = float(stripped)  # ValueError when not a number
        if not math.isfinite(number):
            raise ValueError("numbers must be finite")
        return number
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def csv_row_changes(columns: list[Column], values: list[str]) -> RowChanges | list[RowProblem]:
    """A CSV record as a profile change, or the problems of its cells."""
    if len(values) != len(columns):
        return [RowProblem("", "MALFORMED_ROW", f"expected {len(columns)} fields, found {len(values)}")]
    problems: list[RowProblem] = []
    identities: list[IdentityValue] = []
    identity_fields: list[str] = []
    attributes: dict[str, Any] | None = None
    consent: dict[ContactChannel, Consent] = {}
    time_zone: Any = KEEP
    test_profile: Any = KEEP
    for column, text in zip(columns, values, strict=True):
        if text == "":
            continue
        kind = column.kind
        if kind == "identity":
            identities.append(IdentityValue(column.namespace, text))
            identity_fields.append(column.name)
        elif kind == "attr":
            try:
                value = _cell_value(column, text)
            except ValueError as exc:
                problems.append(RowProblem(column.name, "INVALID_VALUE", str(exc)))
                continue
            if attributes is None:
                attributes = {}
            target = attributes
            for key in column.path[:-1]:
                target = target.setdefault(key, {})
            target[column.path[-1]] = value
        elif kind == "consent":
            try:
                consent[column.channel] = Consent(text.strip().lower())  # type: ignore[index]
            except ValueError:
                problems.append(RowProblem(column.name, "INVALID_VALUE", "consent is y, n or unknown"))
        elif kind == "timeZone":
            time_zone = text.strip()
        else:
            try:
                test_profile = _boolean(text)
            except ValueError as exc:
                problems.append(RowProblem(column.name, "INVALID_VALUE", str(exc)))
    if problems:
        return problems
    changes = ProfileChanges(
        identities=identities,
        attributes=KEEP if attributes is None else attributes,
        consent=consent,
        time_zone=time_zone,
        test_profile=test_profile,
    )
    return RowChanges(changes, identity_fields)


# ---- NDJSON objects -----------------------------------------------------------------------------------

_NDJSON_KEYS = {"identities", "attributes", "consent", "timeZone", "testProfile"}


def ndjson_changes(value: Any) -> RowChanges | list[RowProblem]:
    """An NDJSON object (the shape of a `profilesUpsert` input item) as a profile change."""
    if not isinstance(value, dict):
        return [RowProblem("", "NOT_AN_OBJECT", "each line must be a JSON object")]
    problems = [
        RowProblem(str(key)[:100], "UNKNOWN_FIELD", f"allowed: {', '.join(sorted(_NDJSON_KEYS))}")
        for key in value
        if key not in _NDJSON_KEYS
    ]
    identities: list[IdentityValue] = []
    given = value.get("identities")
    if not isinstance(given, list):
        problems.append(RowProblem("identities", "REQUIRED", "a list of {namespace, value} objects"))
    else:
        for i, item in enumerate(given):
            if (
                isinstance(item, dict)
                and set(item) == {"namespace", "value"}
                and isinstance(item["namespace"], str)
                and isinstance(item["value"], str)
            ):
                identities.append(IdentityValue(item["namespace"], item["value"]))
            else:
                problems.append(RowProblem(f"identities[{i}]", "INVALID_VALUE", "an object {namespace, value}"))
    consent: dict[ContactChannel, Consent] = {}
    given_consent = value.get("consent")
    if given_consent is not None:
        if not isinstance(given_consent, dict):
            problems.append(RowProblem("consent", "INVALID_VALUE", "an object {email, sms, push}"))
        else:
            channels = {c.value.lower(): c for c in ContactChannel}
            for key, text in given_consent.items():
                if key not in channels:
                    problems.append(RowProblem(f"consent.{str(key)[:100]}", "UNKNOWN_FIELD", "email, sms or push"))
                elif text is not None:
                    try:
                        consent[channels[key]] = Consent(str(text).lower())
                    except ValueError:
                        problems.append(RowProblem(f"consent.{key}", "INVALID_VALUE", "Y, N or UNKNOWN"))
    time_zone = value.get("timeZone", KEEP)
    if time_zone is not KEEP and time_zone is not None and not isinstance(time_zone, str):
        problems.append(RowProblem("timeZone", "INVALID_VALUE", "a string"))
    test_profile = value.get("testProfile")
    if test_profile is not None and not isinstance(test_profile, bool):
        problems.append(RowProblem("testProfile", "INVALID_VALUE", "true or false"))
    if problems:
        return problems
    changes = ProfileChanges(
        identities=identities,
        attributes=value.get("attributes", KEEP),
        consent=consent,
        time_zone=time_zone,
        test_profile=KEEP if test_profile is None else test_profile,
    )
    return RowChanges(changes, [f"identities[{i}]" for i in range(len(identities))])
