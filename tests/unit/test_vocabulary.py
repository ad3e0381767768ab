"""The closed sets stay closed: every code a validator writes is a FieldErrorCode, every reason an adapter reports
is a DeliveryReason, and values stored by other versions read as UNKNOWN instead of failing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from jobs.channels.base import FailureCode
from models.campaigns.schedule import ScheduleCode
from models.field_errors import FieldErrorCode
from models.ledger.figures import delivery_figures
from models.ledger.vocabulary import EXCLUSION_REASONS, DeliveryReason

ROOT = Path(__file__).resolve().parents[2]
# Constructors that carry a field error code, positionally or as `code=`.
PROBLEMS = {"FieldProblem", "FieldError", "ValueProblem", "RuleProblem", "Problem", "RowProblem", "_invalid"}


def codes_in_source() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in ("models", "resolvers", "api", "jobs"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                candidates: list[ast.expr] = []
                if (
                    isinstance(node, ast.Return)
                    and isinstance(node.value, ast.Tuple)
                    and path.name == "egress_rules.py"
                ):
                    candidates = node.value.elts[:1]  # host_problem's (code, message)
                elif isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    if name in PROBLEMS:
                        candidates = [*node.args, *(k.value for k in node.keywords if k.arg == "code")]
                    elif name == "add" and len(node.args) == 3:  # the preset checker's add(key, code, message)
                        candidates = node.args[1:2]
                for arg in candidates:
                    if isinstance(arg, ast.Constant) and re.fullmatch(r"[A-Z][A-Z_]+", str(arg.value)):
                        found[arg.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return found


def test_every_code_a_validator_writes_is_a_field_error_code() -> None:
    found = codes_in_source()
    assert len(found) > 30  # the scan sees the validators
    assert {c: where for c, where in found.items() if c not in FieldErrorCode.__members__} == {}
    assert {c.value for c in ScheduleCode} <= set(FieldErrorCode.__members__)


def test_every_adapter_failure_code_is_a_delivery_reason() -> None:
    assert {c.value for c in FailureCode} <= set(DeliveryReason.__members__)
    assert set(EXCLUSION_REASONS) <= set(DeliveryReason)


def test_values_of_other_versions_read_as_unknown() -> None:
    assert DeliveryReason.of("NOT_CONTACTABLE") is DeliveryReason.UNKNOWN
    assert DeliveryReason.of("NO_CONSENT") is DeliveryReason.NO_CONSENT
    assert DeliveryReason.of(None) is None
    assert FieldErrorCode.of("SOMETHING_OLD") is FieldErrorCode.UNKNOWN


def test_one_fold_gives_every_counter() -> None:
    def g(status: str, n: int, reason: str | None = None, bounce: str | None = None) -> dict[str, object]:
        return {"status": status, "reason": reason, "bounce_type": bounce, "n": n}

    figures = delivery_figures(
        [
            g("EXCLUDED", 2, "NO_CONSENT"),
            g("SENT", 3),
            g("DELIVERED", 4),
            g("BOUNCED", 1, "HARD_BOUNCE", "HARD"),
            g("FAILED", 1, "HARD_BOUNCE"),
            g("FAILED", 2, "TEMPLATE_ERROR"),
            g("QUEUED", 5, "TEMPORARY"),
            g("QUEUED", 1),
            g("CANCELLED", 1),
        ]
    )
    assert (figures.audience, figures.excluded, figures.targeted) == (20, 2, 18)
    assert (figures.sent, figures.delivered, figures.bounces, figures.errors, figures.failed) == (9, 7, 2, 2, 4)
    assert (figures.pending, figures.retrying, figures.cancelled) == (6, 5, 1)
    assert figures.error_count("TEMPORARY") == 5 and figures.error_count("HARD_BOUNCE") == 2
