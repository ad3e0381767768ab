"""Content experiments, the pure part: the closed sets (metric, mode, fallback), the sticky assignment of a
profile to the holdout or a treatment, and the expected size of each arm. Pure: no tortoise, no strawberry.

The assignment is a function of (experiment key, profile id) only: a retry, a resumed snapshot and every run of
a recurring campaign put a profile in the same arm, and no table of assignments is needed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MIN_TREATMENTS = 2
MAX_TREATMENTS = 8
MAX_WEIGHT = 1000
MAX_HOLDOUT_SHARE = 0.5
MAX_TREATMENT_KEY = 32
# 2**64: the first 8 bytes of a SHA-256 read as an unsigned integer, divided by this, is uniform on [0, 1).
_SCALE = float(2**64)


class ExperimentMetric(StrEnum):
    UNIQUE_OPENS = "UNIQUE_OPENS"
    UNIQUE_CLICKS = "UNIQUE_CLICKS"
    CLICK_TO_OPEN = "CLICK_TO_OPEN"
    UNSUBSCRIBES = "UNSUBSCRIBES"


METRIC_DESCRIPTIONS: dict[ExperimentMetric, str] = {
    ExperimentMetric.UNIQUE_OPENS: "Recipients who opened at least once, per recipient sent to.",
    ExperimentMetric.UNIQUE_CLICKS: "Recipients who clicked at least once, per recipient sent to.",
    ExperimentMetric.CLICK_TO_OPEN: "Recipients who clicked, per recipient who opened.",
    ExperimentMetric.UNSUBSCRIBES: "Recipients who unsubscribed, per recipient sent to (lower is better).",
}

# The metric where a lower rate wins.
LOWER_IS_BETTER = frozenset({ExperimentMetric.UNSUBSCRIBES})


class ExperimentMode(StrEnum):
    SPLIT = "SPLIT"
    TEST_THEN_WINNER = "TEST_THEN_WINNER"


MODE_DESCRIPTIONS: dict[ExperimentMode, str] = {
    ExperimentMode.SPLIT: "Every recipient outside the holdout gets one treatment, by weight.",
    ExperimentMode.TEST_THEN_WINNER: "A test share of the audience is split first; after the test duration the "
    "winner (or the fallback) goes to the rest in a second run.",
}


class ExperimentFallback(StrEnum):
    CONTROL = "CONTROL"
    BEST_SO_FAR = "BEST_SO_FAR"


FALLBACK_DESCRIPTIONS: dict[ExperimentFallback, str] = {
    ExperimentFallback.CONTROL: "No treatment is significantly better: the rest gets the control (the first).",
    ExperimentFallback.BEST_SO_FAR: "No treatment is significantly better: the rest gets the best observed rate.",
}


class Arm(StrEnum):
    """Where the assignment puts a profile (besides which treatment)."""

    HOLDOUT = "HOLDOUT"  # gets nothing, counted as EXCLUDED with reason HOLDOUT
    TEST = "TEST"  # gets its treatment now (every recipient in SPLIT mode)
    REST = "REST"  # TEST_THEN_WINNER only: waits for the winner


@dataclass(frozen=True, slots=True)
class Assignment:
    arm: Arm
    treatment: str  # the treatment key the profile would get (sticky even for the holdout and the rest)


def unit(key: str, profile_id: int, purpose: str) -> float:
    """A number uniform on [0, 1), fixed by (key, purpose, profile id): SHA-256 of `key:purpose:profile_id`,
    its first 8 bytes big-endian, divided by 2**64."""
    digest = hashlib.sha256(f"{key}:{purpose}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def pick_by_weight(u: float, keys: Sequence[str], weights: Sequence[int]) -> str:
    """The first key whose cumulative weight share exceeds u."""
    total = sum(weights)
    running = 0
    for key, weight in zip(keys, weights, strict=True):
        running += weight
        if u * total < running:
            return key
    return keys[-1]


def assign(
    key: str,
    profile_id: int,
    treatments: Sequence[str],
    weights: Sequence[int],
    holdout_share: float,
    test_share: float | None = None,
) -> Assignment:
    """The profile's arm and treatment. Two independent draws: `arm` (holdout below `holdout_share`, then the test
    share of the audience, then the rest) and `treatment` (by weight): a profile keeps its treatment whatever the
    holdout or test share, and the holdout is a random sample of every treatment alike."""
    u = unit(key, profile_id, "arm")
    treatment = pick_by_weight(unit(key, profile_id, "treatment"), treatments, weights)
    if u < holdout_share:
        return Assignment(Arm.HOLDOUT, treatment)
    if test_share is not None and u >= holdout_share + test_share:
        return Assignment(Arm.REST, treatment)
    return Assignment(Arm.TEST, treatment)


def assign_stored(experiment: Mapping[str, Any], profile_id: int) -> Assignment:
    """`assign` with the parameters of a stored experiment (the campaign's `experiment` JSON)."""
    treatments = experiment["treatments"]
    return assign(
        experiment["key"],
        profile_id,
        [t["key"] for t in treatments],
        [int(t["weight"]) for t in treatments],
        float(experiment.get("holdoutShare") or 0.0),
        test_share_of(experiment),
    )


def test_share_of(experiment: Mapping[str, Any]) -> float | None:
    if experiment.get("mode") == ExperimentMode.TEST_THEN_WINNER.value:
        return float(experiment.get("testShare") or 0.0)
    return None


@dataclass(frozen=True, slots=True)
class ArmSize:
    treatment: str | None  # None: the holdout, or the rest waiting for the winner
    arm: Arm
    expected: float


def expected_sizes(experiment: Mapping[str, Any], to_send: int) -> list[ArmSize]:
    """The expected number of recipients per treatment, in the holdout and (TEST_THEN_WINNER) in the rest, out of
    `to_send` profiles the snapshot would send to: each profile's arm and treatment are independent draws."""
    holdout = float(experiment.get("holdoutShare") or 0.0)
    test = test_share_of(experiment)
    sent_share = (1.0 - holdout) if test is None else min(test, 1.0 - holdout)
    treatments = experiment["treatments"]
    total = sum(int(t["weight"]) for t in treatments) or 1
    sizes = [ArmSize(t["key"], Arm.TEST, to_send * sent_share * int(t["weight"]) / total) for t in treatments]
    sizes.append(ArmSize(None, Arm.HOLDOUT, to_send * holdout))
    if test is not None:
        sizes.append(ArmSize(None, Arm.REST, to_send * max(0.0, 1.0 - holdout - test)))
    return sizes
