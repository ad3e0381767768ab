"""A campaign's content experiment as stored (the `experiment` JSON of the campaign): its shape validation and the
content a treatment sends. The assignment and the closed sets: experiment_rules.py."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from models.campaigns.experiment_rules import (
    MAX_HOLDOUT_SHARE,
    MAX_TREATMENT_KEY,
    MAX_TREATMENTS,
    MAX_WEIGHT,
    MIN_TREATMENTS,
    ExperimentFallback,
    ExperimentMetric,
    ExperimentMode,
)
from models.campaigns.values import FieldProblem, _text_problems, content_problems

PATH = "input.experiment"
TREATMENT_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_TEST_DURATION_SECONDS = 30 * 24 * 3600


def new_experiment_key() -> str:
    """The salt of the sticky assignment, fixed when the experiment is first set (a duplicate gets its own)."""
    return secrets.token_hex(8)


def with_key(experiment: Mapping[str, Any] | None, previous: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The experiment to store: an edit keeps the key of the experiment it replaces, so assignments stay put."""
    if experiment is None:
        return None
    key = (previous or {}).get("key") or new_experiment_key()
    return {**experiment, "key": key}


def experiment_problems(experiment: Mapping[str, Any] | None) -> list[FieldProblem]:
    """The shape of an experiment about to be stored; field paths name the treatment
    (`input.experiment.treatments[2].content.email.subject`)."""
    if experiment is None:
        return []
    problems: list[FieldProblem] = []
    treatments = experiment.get("treatments") or []
    if not MIN_TREATMENTS <= len(treatments) <= MAX_TREATMENTS:
        problems.append(
            FieldProblem(
                f"{PATH}.treatments", "OUT_OF_RANGE", f"between {MIN_TREATMENTS} and {MAX_TREATMENTS} treatments"
            )
        )
    seen: set[str] = set()
    for i, treatment in enumerate(treatments):
        path = f"{PATH}.treatments[{i}]"
        key = treatment.get("key")
        key_problems = _text_problems(key, f"{path}.key", limit=MAX_TREATMENT_KEY, required=True)
        if not key_problems and not TREATMENT_KEY_RE.match(key):
            key_problems = [FieldProblem(f"{path}.key", "INVALID_CHARACTER", "letters, digits, _ and - only")]
        if not key_problems and key in seen:
            key_problems = [FieldProblem(f"{path}.key", "TAKEN", f"another treatment has the key {key!r}")]
        seen.add(key)
        problems += key_problems
        problems += _text_problems(treatment.get("name"), f"{path}.name", limit=200)
        weight = treatment.get("weight")
        if not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
            problems.append(FieldProblem(f"{path}.weight", "OUT_OF_RANGE", f"between 1 and {MAX_WEIGHT}"))
        problems += content_problems(treatment.get("content"), f"{path}.content")
    holdout = experiment.get("holdoutShare") or 0.0
    if not 0.0 <= holdout <= MAX_HOLDOUT_SHARE:
        problems.append(FieldProblem(f"{PATH}.holdoutShare", "OUT_OF_RANGE", f"between 0 and {MAX_HOLDOUT_SHARE}"))
    if experiment.get("metric") not in ExperimentMetric.__members__:
        problems.append(FieldProblem(f"{PATH}.metric", "INVALID", "an ExperimentMetric"))
    if experiment.get("fallback") not in ExperimentFallback.__members__:
        problems.append(FieldProblem(f"{PATH}.fallback", "INVALID", "an ExperimentFallback"))
    if experiment.get("mode") == ExperimentMode.TEST_THEN_WINNER.value:
        test = experiment.get("testShare")
        if test is None:
            problems.append(FieldProblem(f"{PATH}.testShare", "REQUIRED", "is required in TEST_THEN_WINNER mode"))
        elif not 0.0 < test < 1.0 - holdout:
            problems.append(
                FieldProblem(f"{PATH}.testShare", "OUT_OF_RANGE", "above 0, and below 1 minus the holdout share")
            )
        duration = experiment.get("testDurationSeconds")
        if duration is None:
            problems.append(FieldProblem(f"{PATH}.testDuration", "REQUIRED", "is required in TEST_THEN_WINNER mode"))
        elif not 60 <= duration <= MAX_TEST_DURATION_SECONDS:
            problems.append(FieldProblem(f"{PATH}.testDuration", "OUT_OF_RANGE", "between 1 minute and 30 days"))
    elif experiment.get("mode") != ExperimentMode.SPLIT.value:
        problems.append(FieldProblem(f"{PATH}.mode", "INVALID", "an ExperimentMode"))
    return problems


def treatment_content(experiment: Mapping[str, Any] | None, key: str | None) -> dict[str, Any] | None:
    """The content of treatment `key` (None: no such treatment, or no experiment)."""
    for treatment in (experiment or {}).get("treatments") or []:
        if treatment["key"] == key:
            return treatment.get("content") or {}
    return None
