"""The statistics of a content experiment's results (docs/guide.md "Experiment statistics" states every formula so
they can be recomputed by hand). Pure: plain counts in, plain figures out. The normal distribution from the standard
library; the chi-squared test from scipy.stats, imported when first needed (it is 1.8 s of CPU at start-up, which every
`herald worker` would otherwise pay).

Per treatment i: n_i recipients, x_i of them counted by the metric, rate p_i = x_i / n_i.
- The rate's 95 % interval: Wilson score interval.
- The difference against the control c, d_i = p_i - p_c, with its 95 % Wald interval
  d_i ± z · sqrt(p_i(1 - p_i)/n_i + p_c(1 - p_c)/n_c); the relative lift d_i / p_c.
- The p-value of treatment i against the control: two-sided two-proportion z-test with the pooled rate.
- More than two treatments: a chi-squared test of homogeneity over all of them (no continuity correction), and
  the pairwise p-values adjusted by Holm's method.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE


@dataclass(frozen=True, slots=True)
class ArmCounts:
    key: str
    recipients: int  # n
    count: int  # x


@dataclass(frozen=True, slots=True)
class ArmFigures:
    key: str
    control: bool
    recipients: int
    count: int
    rate: float | None
    rate_low: float | None
    rate_high: float | None
    difference: float | None  # p_i - p_c (None for the control, or without recipients)
    difference_low: float | None
    difference_high: float | None
    relative_lift: float | None  # (p_i - p_c) / p_c
    p_value: float | None  # two-proportion z-test against the control
    adjusted_p_value: float | None  # Holm-adjusted over the comparisons (= p_value with two treatments)


@dataclass(frozen=True, slots=True)
class Comparison:
    arms: tuple[ArmFigures, ...]
    chi_squared: float | None  # more than two treatments: the omnibus statistic and its p-value
    chi_squared_p_value: float | None
    winner: str | None  # a treatment significantly better than every other compared, per `decide`


def z_value(confidence: float = CONFIDENCE) -> float:
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def wilson(x: int, n: int, z: float) -> tuple[float, float]:
    """(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of H0: p1 = p2, with the pooled rate (x1 + x2) / (n1 + n2)."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0.0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    # 2 * (1 - Phi(|z|)) as erfc: exact in the tail, where 1 - cdf would round to 0.
    return math.erfc(abs(z) / math.sqrt(2.0))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: sorted ascending, adj_(k) = max over j ≤ k of min(1, (m - j + 1) p_(j))."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def compare(arms: Sequence[ArmCounts], *, lower_is_better: bool = False) -> Comparison:
    """The figures of every treatment against the first (the control), and the statistical winner if any."""
    z = z_value()
    control = arms[0]
    pc = control.count / control.recipients if control.recipients else None
    raw: dict[str, float] = {}
    for arm in arms[1:]:
        if arm.recipients and control.recipients:
            raw[arm.key] = two_proportion_p(arm.count, arm.recipients, control.count, control.recipients)
    adjusted = dict(zip(raw, holm(list(raw.values())), strict=True))
    figures: list[ArmFigures] = []
    for i, arm in enumerate(arms):
        n, x = arm.recipients, arm.count
        p = x / n if n else None
        low, high = wilson(x, n, z) if n else (None, None)
        diff = diff_low = diff_high = lift = None
        if i > 0 and p is not None and pc is not None:
            diff = p - pc
            half = z * math.sqrt(p * (1 - p) / n + pc * (1 - pc) / control.recipients)
            diff_low, diff_high = diff - half, diff + half
            lift = diff / pc if pc else None
        figures.append(
            ArmFigures(
                arm.key,
                i == 0,
                n,
                x,
                p,
                low,
                high,
                diff,
                diff_low,
                diff_high,
                lift,
                raw.get(arm.key),
                adjusted.get(arm.key),
            )
        )
    chi = chi_p = None
    usable = [a for a in arms if a.recipients]
    if len(arms) > 2 and len(usable) > 1:
        table = [[a.count for a in usable], [a.recipients - a.count for a in usable]]
        if all(sum(row) > 0 for row in table):
            from scipy import stats  # late: see the module's docstring

            result = stats.chi2_contingency(table, correction=False)
            chi, chi_p = float(result.statistic), float(result.pvalue)
    return Comparison(tuple(figures), chi, chi_p, decide(figures, lower_is_better=lower_is_better))


def decide(figures: Sequence[ArmFigures], *, lower_is_better: bool = False) -> str | None:
    """The winner: of the treatments significantly better than the control (adjusted p < ALPHA), the best rate;
    else the control if every other treatment is significantly worse; else none (inconclusive)."""
    sign = -1.0 if lower_is_better else 1.0
    others = [f for f in figures if not f.control]
    better = [
        f for f in others if f.adjusted_p_value is not None and f.adjusted_p_value < ALPHA and sign * f.difference > 0
    ]
    if better:
        return max(better, key=lambda f: sign * f.difference).key  # type: ignore[operator]
    worse = [
        f for f in others if f.adjusted_p_value is not None and f.adjusted_p_value < ALPHA and sign * f.difference < 0
    ]
    if others and len(worse) == len(others):
        return figures[0].key
    return None


def best_so_far(figures: Sequence[ArmFigures], *, lower_is_better: bool = False) -> str:
    """The treatment with the best observed rate (ties: the earlier one; no rate counts as the worst)."""
    sign = -1.0 if lower_is_better else 1.0
    rated = [f for f in figures if f.rate is not None]
    if not rated:
        return figures[0].key
    return max(rated, key=lambda f: (sign * f.rate, -figures.index(f))).key  # type: ignore[operator]
