"""One writer per status (STYLE: Zulip's `do_*`): only models/campaigns/transitions.py writes the status of
campaigns and runs, only the ledger package that of deliveries. This parses the source tree and names every
other write it finds: ORM `.update(status=…)` / `.create(status=…)`, `x.status = …`, and SQL text that
updates (or inserts) `status` of those tables."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("api", "resolvers", "jobs", "models")
MODELS = {"Campaign": "campaign", "CampaignRun": "campaign_run", "Delivery": "delivery"}
# table -> modules (paths relative to the root, as prefixes) allowed to write its status.
WRITERS = {
    "campaign": ("models/campaigns/transitions.py",),
    "campaign_run": ("models/campaigns/transitions.py",),
    "delivery": ("models/ledger/",),
}
_TABLE = r'"?(campaign_run|campaign|delivery)"?'
SQL_UPDATE = re.compile(rf"\bUPDATE\s+{_TABLE}\s+SET\b(?:(?!\bWHERE\b).)*\bstatus\s*=", re.I | re.S)
# `UPDATE delivery SET {sets}, …`: columns the text does not show may include status.
SQL_OPAQUE_SET = re.compile(rf"\bUPDATE\s+{_TABLE}\s+SET\s+(?:[^?]*?,\s*)?\?(?!\s*=)", re.I | re.S)
SQL_INSERT = re.compile(rf"\bINSERT\s+INTO\s+{_TABLE}\s*\([^)]*\bstatus\b", re.I | re.S)


def _model_names(tree: ast.Module) -> dict[str, str]:
    """Local name → table, for the models this module imports (aliases included) and querysets of them."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("models"):
            for alias in node.names:
                if alias.name in MODELS:
                    names[alias.asname or alias.name] = MODELS[alias.name]
    # Querysets kept in a variable: `query = CampaignRun.filter(...)`, later `query.update(...)`.
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _base_name(node.value) in names:
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id not in names:
                    names[target.id] = names[_base_name(node.value)]
    return names


def _base_name(node: ast.AST) -> str | None:
    """`Campaign` of `Campaign.filter(...).using_db(conn).update`."""
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "?" for v in node.values)
    return None


def _has_status_key(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "status" for k in node.keys)


def _status_dicts(tree: ast.Module) -> set[str]:
    """Names bound to a dict literal with a "status" key (`values = {**changes, "status": target}`)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and _has_status_key(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
    return names


def _writes_status(call: ast.Call, status_dicts: set[str]) -> bool:
    for keyword in call.keywords:
        if keyword.arg == "status":
            return True
        if keyword.arg is None:  # **{"status": …} or **values holding "status"
            value = keyword.value
            if _has_status_key(value) or (isinstance(value, ast.Name) and value.id in status_dicts):
                return True
    return False


def status_writes(source: str) -> list[tuple[int, str, str]]:
    """(line, table, what) for every status write in `source`."""
    tree = ast.parse(source)
    models, status_dicts = _model_names(tree), _status_dicts(tree)
    # The literal parts of an f-string are read as part of it, not a second time alone.
    in_fstrings = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    found = []
    for node in ast.walk(tree):
        if id(node) in in_fstrings:
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, base = node.func.attr, _base_name(node.func)
            if method in ("update", "create", "update_or_create", "get_or_create") and base in models:
                if _writes_status(node, status_dicts):
                    found.append((node.lineno, models[base], f"{base}….{method}(status=…)"))
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and models:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == "status"
                    and not (isinstance(target.value, ast.Name) and target.value.id == "self")
                ):
                    for table in sorted(set(models.values())):
                        found.append((node.lineno, table, "….status = …"))
        text = _text(node)
        if text is not None:
            for pattern in (SQL_UPDATE, SQL_OPAQUE_SET, SQL_INSERT):
                for match in pattern.finditer(text):
                    found.append((node.lineno, match.group(1).lower(), f"SQL {match.group(0)[:40]!r}…"))
    return found


def violations(path: str, source: str) -> list[str]:
    return [
        f"{path}:{line}: {what} writes {table}.status"
        for line, table, what in status_writes(source)
        if not path.startswith(WRITERS[table])
    ]


def test_only_the_transition_modules_write_status() -> None:
    found, allowed = [], set()
    for package in SCANNED:
        for file in sorted((ROOT / package).rglob("*.py")):
            path = file.relative_to(ROOT).as_posix()
            source = file.read_text()
            found += violations(path, source)
            allowed |= {(path, table) for _, table, _ in status_writes(source) if path.startswith(WRITERS[table])}
    assert found == []
    # The scan sees the writers themselves (it is not blind to how they write).
    assert {table for _, table in allowed} == {"campaign", "campaign_run", "delivery"}
    assert {path for path, _ in allowed} >= {"models/campaigns/transitions.py", "models/ledger/claims.py"}


def test_the_checker_catches_planted_writes() -> None:
    planted = """
from models.campaigns.campaign import Campaign, CampaignRun as RunModel
from models.ledger.delivery import Delivery

async def sneaky(conn, run, row):
    query = RunModel.filter(id=run.id)
    await query.using_db(conn).update(status="CANCELLED", finished_at=None)
    values = {**run, "status": "LIVE"}
    await Campaign.filter(id=1).update(**values)
    await Delivery.create(status="SENT", run_id=1)
    row.status = "LIVE"
    await row.save()
    await conn.execute_query(f"UPDATE delivery SET attempts = 0, status = '{x}' WHERE run_id = {y}")
    await conn.execute_query("update campaign_run set lease_until = NULL, status = 'FAILED' where id = 1")
    await conn.execute_query(f"UPDATE delivery SET {sets}, updated_at = {now} WHERE id = {i}")
"""
    tables = sorted((line, table) for line, table, _ in status_writes(planted))
    assert tables == [
        (7, "campaign_run"),
        (9, "campaign"),
        (10, "delivery"),
        (11, "campaign"),
        (11, "campaign_run"),
        (11, "delivery"),
        (13, "delivery"),
        (14, "campaign_run"),
        (15, "delivery"),
    ]
    assert len(violations("jobs/sneaky.py", planted)) == 9
    # The same writes are allowed where they belong, and only there.
    assert sorted(v.split(" writes ")[1] for v in violations("models/ledger/x.py", planted)) == [
        "campaign.status", "campaign.status", "campaign_run.status", "campaign_run.status", "campaign_run.status",
    ]  # fmt: skip


def test_reads_and_other_columns_are_not_writes() -> None:
    clean = """
from models.campaigns.campaign import CampaignRun

async def fine(conn, run):
    await CampaignRun.filter(id=run.id, status="RUNNING").update(lease_until=None)
    rows = await CampaignRun.filter(status="PENDING")
    status = run.status
    await conn.execute_query("UPDATE campaign_run SET lease_until = NULL WHERE status = 'RUNNING'")
    await conn.execute_query("SELECT status FROM delivery WHERE status = 'SENT'")
"""
    assert status_writes(clean) == []
