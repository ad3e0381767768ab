"""Content experiments, the pure parts: the sticky assignment, the expected arm sizes, the statistics (as tables,
checked against hand computations with statistics.NormalDist), the winner rule and the input shape."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path
from statistics import NormalDist

import pytest

from models.campaigns.experiment_rules import Arm, assign, expected_sizes, pick_by_weight, unit
from models.campaigns.experiment_stats import ArmCounts, compare, holm, two_proportion_p, wilson, z_value
from models.campaigns.experiments import experiment_problems

ROOT = Path(__file__).resolve().parents[2]


def test_assignment_is_a_function_of_key_and_profile() -> None:
    first = [assign("k1", pid, ["A", "B"], [1, 1], 0.1) for pid in range(2000)]
    again = [assign("k1", pid, ["A", "B"], [1, 1], 0.1) for pid in range(2000)]
    other_key = [assign("k2", pid, ["A", "B"], [1, 1], 0.1) for pid in range(2000)]
    assert first == again and first != other_key
    # A larger holdout moves profiles into it, never between treatments.
    larger = [assign("k1", pid, ["A", "B"], [1, 1], 0.3) for pid in range(2000)]
    assert all(a.treatment == b.treatment for a, b in zip(first, larger, strict=True))
    assert all(b.arm is Arm.HOLDOUT for a, b in zip(first, larger, strict=True) if a.arm is Arm.HOLDOUT)


def test_assignment_follows_shares_and_weights() -> None:
    arms = Counter()
    treatments = Counter()
    for pid in range(40_000):
        a = assign("key", pid, ["A", "B", "C"], [1, 2, 1], 0.1, test_share=0.3)
        arms[a.arm] += 1
        if a.arm is Arm.TEST:
            treatments[a.treatment] += 1
    # Binomial spreads are ~0.2-0.3 % here: 1 % bounds never flake for a fixed key.
    assert abs(arms[Arm.HOLDOUT] / 40_000 - 0.1) < 0.01
    assert abs(arms[Arm.TEST] / 40_000 - 0.3) < 0.01
    assert abs(arms[Arm.REST] / 40_000 - 0.6) < 0.01
    test = sum(treatments.values())
    assert abs(treatments["B"] / test - 0.5) < 0.02 and abs(treatments["A"] / test - 0.25) < 0.02


@pytest.mark.parametrize(
    ("u", "expected"), [(0.0, "A"), (0.2499, "A"), (0.25, "B"), (0.7499, "B"), (0.75, "C"), (0.9999, "C")]
)
def test_pick_by_weight_cuts_at_cumulative_shares(u: float, expected: str) -> None:
    assert pick_by_weight(u, ["A", "B", "C"], [1, 2, 1]) == expected


def test_unit_is_the_documented_hash() -> None:
    import hashlib

    digest = hashlib.sha256(b"abc:arm:42").digest()
    assert unit("abc", 42, "arm") == int.from_bytes(digest[:8], "big") / 2**64


def test_expected_sizes() -> None:
    experiment = {
        "mode": "TEST_THEN_WINNER",
        "holdoutShare": 0.1,
        "testShare": 0.2,
        "treatments": [{"key": "A", "weight": 1}, {"key": "B", "weight": 3}],
    }
    sizes = {(s.treatment, s.arm): s.expected for s in expected_sizes(experiment, 1000)}
    assert sizes == pytest.approx(
        {("A", Arm.TEST): 50.0, ("B", Arm.TEST): 150.0, (None, Arm.HOLDOUT): 100.0, (None, Arm.REST): 700.0}
    )


def test_statistics_equal_the_formulas() -> None:
    z = NormalDist().inv_cdf(0.975)
    result = compare([ArmCounts("A", 1000, 200), ArmCounts("B", 1000, 240)])
    control, b = result.arms
    p, n = 0.2, 1000
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (control.rate_low, control.rate_high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    pooled = 440 / 2000
    zed = 0.04 / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert b.p_value == pytest.approx(2 * (1 - NormalDist().cdf(zed)), abs=1e-12)
    assert b.adjusted_p_value == b.p_value and result.chi_squared is None
    wald = z * math.sqrt(0.24 * 0.76 / 1000 + 0.2 * 0.8 / 1000)
    assert (b.difference_low, b.difference_high) == pytest.approx((0.04 - wald, 0.04 + wald), abs=1e-12)
    assert b.relative_lift == pytest.approx(0.2)
    assert result.winner == "B"  # p ≈ 0.029


def test_more_arms_use_chi_squared_and_holm() -> None:
    arms = [ArmCounts("A", 2000, 400), ArmCounts("B", 2000, 470), ArmCounts("C", 2000, 410)]
    result = compare(arms)
    # Pearson's statistic by hand: sum (observed - expected)² / expected over the 2 x 3 table.
    total, hits = 6000, 1280
    chi = 0.0
    for a in arms:
        for observed, share in ((a.count, hits / total), (a.recipients - a.count, 1 - hits / total)):
            expected = a.recipients * share
            chi += (observed - expected) ** 2 / expected
    assert result.chi_squared == pytest.approx(chi, rel=1e-12)
    raw = {"B": two_proportion_p(470, 2000, 400, 2000), "C": two_proportion_p(410, 2000, 400, 2000)}
    first, second = sorted(raw, key=raw.__getitem__)
    expected = {first: min(1.0, 2 * raw[first])}
    expected[second] = max(expected[first], min(1.0, raw[second]))
    assert {a.key: a.adjusted_p_value for a in result.arms[1:]} == pytest.approx(expected, abs=1e-15)
    assert result.winner == "B"


def test_holm_table() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize(
    ("counts", "lower_is_better", "winner"),
    [
        ([("A", 1000, 200), ("B", 1000, 205)], False, None),  # no significant difference
        ([("A", 1000, 260), ("B", 1000, 200)], False, "A"),  # the control beats every other
        ([("A", 1000, 60), ("B", 1000, 20)], True, "B"),  # unsubscribes: lower wins
        ([("A", 1000, 60), ("B", 0, 0)], False, None),  # no recipients: nothing to compare
    ],
)
def test_winner_rule(counts: list[tuple[str, int, int]], lower_is_better: bool, winner: str | None) -> None:
    assert compare([ArmCounts(*c) for c in counts], lower_is_better=lower_is_better).winner == winner


def test_wilson_never_leaves_zero_one() -> None:
    low, high = wilson(0, 10, 1.96)
    assert low == pytest.approx(0.0, abs=1e-12) and 0 < high < 1


def test_input_shape_names_the_treatment_field() -> None:
    problems = experiment_problems(
        {
            "metric": "UNIQUE_OPENS",
            "mode": "SPLIT",
            "fallback": "CONTROL",
            "holdoutShare": 0.0,
            "treatments": [
                {"key": "A", "weight": 1, "content": {}},
                {"key": "B", "weight": 1, "content": {}},
                {"key": "C", "weight": 1, "content": {"email": {"subject": "x\x00"}}},
            ],
        }
    )
    assert [(p.field, p.code) for p in problems] == [
        ("input.experiment.treatments[2].content.email.subject", "INVALID_CHARACTER")
    ]


def test_a_worker_starts_without_scipy() -> None:
    """scipy.stats is 1.8 s of CPU to import: a worker (restarted after a crash, or one per test) does not pay it
    until an experiment's chi-squared test needs it."""
    code = "import sys, jobs.worker, api.app; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_the_normal_distribution_matches_scipy() -> None:
    from scipy import stats

    assert z_value(0.95) == pytest.approx(float(stats.norm.ppf(0.975)), rel=1e-12)
    for x1, n1, x2, n2 in ((100, 1000, 130, 1000), (10, 100_000, 900, 100_000), (5, 50, 5, 50)):
        pooled = (x1 + x2) / (n1 + n2)
        z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        expected = float(2.0 * stats.norm.sf(abs(z)))
        assert two_proportion_p(x1, n1, x2, n2) == pytest.approx(expected, rel=1e-9, abs=1e-300)
