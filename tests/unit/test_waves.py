"""Waves (models.campaigns.waves) as tables: validation, who is in which wave, when each may start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.campaigns.waves import WaveCode, Waves, WaveSizing, validate_waves, wave_ends, wave_starts

T0 = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("waves", "problems"),
    [
        (Waves(2, interval_minutes=30), []),
        (Waves(10, WaveSizing.PERCENT, (10,) * 10, interval_minutes=60), []),
        (Waves(4, WaveSizing.COUNT, (1, 2, 3, 4), start_times=tuple(T0 + timedelta(hours=h) for h in range(4))), []),
        (Waves(1, interval_minutes=30), [("count", WaveCode.OUT_OF_RANGE)]),
        (Waves(11, interval_minutes=30), [("count", WaveCode.OUT_OF_RANGE)]),
        (Waves(2, interval_minutes=29), [("intervalMinutes", WaveCode.OUT_OF_RANGE)]),
        (Waves(2), [("intervalMinutes", WaveCode.INVALID)]),  # neither
        (Waves(2, interval_minutes=30, start_times=(T0, T0)), [("intervalMinutes", WaveCode.INVALID)]),  # both
        (Waves(2, start_times=(T0,)), [("startTimes", WaveCode.INVALID)]),
        (Waves(2, start_times=(T0, T0)), [("startTimes", WaveCode.INVALID)]),  # not ascending
        (Waves(2, start_times=(T0, datetime(2027, 6, 2))), [("startTimes", WaveCode.INVALID)]),  # naive
        (Waves(2, WaveSizing.EQUAL, (50, 50), interval_minutes=30), [("sizes", WaveCode.INVALID)]),
        (Waves(3, WaveSizing.PERCENT, (50, 50), interval_minutes=30), [("sizes", WaveCode.INVALID)]),
        (Waves(2, WaveSizing.PERCENT, (50, 40), interval_minutes=30), [("sizes", WaveCode.INVALID)]),
        (Waves(2, WaveSizing.PERCENT, (100, 0), interval_minutes=30), [("sizes", WaveCode.OUT_OF_RANGE)]),
        (Waves(2, WaveSizing.COUNT, (5, 0), interval_minutes=30), [("sizes", WaveCode.OUT_OF_RANGE)]),
    ],
)
def test_validation(waves: Waves, problems: list) -> None:
    assert [(p.field, p.code) for p in validate_waves(waves)] == problems


@pytest.mark.parametrize(
    ("waves", "total", "ends"),
    [
        (Waves(4, WaveSizing.PERCENT, (10, 20, 30, 40)), 10, [1, 3, 6, 10]),
        (Waves(4, WaveSizing.PERCENT, (10, 20, 30, 40)), 1000, [100, 300, 600, 1000]),
        (Waves(4, WaveSizing.PERCENT, (10, 20, 30, 40)), 7, [0, 2, 4, 7]),  # floors; the last takes the rest
        (Waves(3), 10, [4, 7, 10]),  # EQUAL: the first waves take the remainder
        (Waves(3), 2, [1, 2, 2]),
        (Waves(3, WaveSizing.COUNT, (2, 2, 2)), 10, [2, 4, 10]),  # the last takes whoever is left
        (Waves(3, WaveSizing.COUNT, (2, 2, 2)), 3, [2, 3, 3]),
        (Waves(2), 0, [0, 0]),
    ],
)
def test_who_is_in_which_wave(waves: Waves, total: int, ends: list[int]) -> None:
    assert wave_ends(waves, total) == ends


def test_wave_starts() -> None:
    assert wave_starts(Waves(3, interval_minutes=45), T0) == [
        T0,
        T0 + timedelta(minutes=45),
        T0 + timedelta(minutes=90),
    ]
    given = (T0 + timedelta(hours=1), T0 + timedelta(hours=5))
    assert wave_starts(Waves(2, start_times=given), T0) == list(given)
