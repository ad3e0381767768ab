"""Sending a run in waves (issue 18). Pure: no clock is read, instants are passed in.

A campaign's `waves` splits each run's recipients (the rows to send, in profile order: the snapshot's order, so a
resumed run never reassigns anyone) into 2-10 waves:
- sizing EQUAL: as equal as can be (the first waves take the remainder); PERCENT: one share per wave, in whole
  percent adding up to 100 (wave k ends at floor(total * cumulative % / 100)); COUNT: one number of recipients per
  wave, the last wave also taking whoever is left beyond their sum.
- timing: `intervalMinutes` (at least 30) after the previous wave's start, or one `startTimes` instant per wave.
  Either way a wave starts only once the previous one is finished (no row of it queued or being sent): a wave
  whose time came while the previous one still sends waits for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

MIN_WAVES, MAX_WAVES = 2, 10
MIN_INTERVAL_MINUTES = 30


class WaveSizing(StrEnum):
    EQUAL = "EQUAL"
    PERCENT = "PERCENT"
    COUNT = "COUNT"


class WaveCode(StrEnum):
    OUT_OF_RANGE = "OUT_OF_RANGE"
    INVALID = "INVALID"


@dataclass(frozen=True, slots=True)
class WaveProblem:
    field: str  # relative to the waves input: "count", "sizes", "intervalMinutes", "startTimes"
    code: WaveCode
    message: str


@dataclass(frozen=True, slots=True)
class Waves:
    count: int
    sizing: WaveSizing = WaveSizing.EQUAL
    sizes: tuple[int, ...] = ()  # PERCENT: whole percents; COUNT: recipients; one per wave
    interval_minutes: int | None = None
    start_times: tuple[datetime, ...] = ()  # aware, one per wave


def validate_waves(waves: Waves) -> list[WaveProblem]:
    problems: list[WaveProblem] = []

    def add(field: str, code: WaveCode, message: str) -> None:
        problems.append(WaveProblem(field, code, message))

    if not MIN_WAVES <= waves.count <= MAX_WAVES:
        add("count", WaveCode.OUT_OF_RANGE, f"from {MIN_WAVES} to {MAX_WAVES} waves")
        return problems
    sizing = WaveSizing(waves.sizing)
    if sizing is WaveSizing.EQUAL:
        if waves.sizes:
            add("sizes", WaveCode.INVALID, "EQUAL waves take no sizes")
    elif len(waves.sizes) != waves.count:
        add("sizes", WaveCode.INVALID, f"one size per wave: {waves.count} numbers")
    elif any(size < 1 for size in waves.sizes):
        add("sizes", WaveCode.OUT_OF_RANGE, "every wave has at least 1")
    elif sizing is WaveSizing.PERCENT and sum(waves.sizes) != 100:
        add("sizes", WaveCode.INVALID, f"percents add up to 100, not {sum(waves.sizes)}")
    if (waves.interval_minutes is None) == (not waves.start_times):
        add("intervalMinutes", WaveCode.INVALID, "give either intervalMinutes or startTimes")
    elif waves.interval_minutes is not None and waves.interval_minutes < MIN_INTERVAL_MINUTES:
        add("intervalMinutes", WaveCode.OUT_OF_RANGE, f"at least {MIN_INTERVAL_MINUTES} minutes between waves")
    elif waves.start_times:
        if len(waves.start_times) != waves.count:
            add("startTimes", WaveCode.INVALID, f"one start time per wave: {waves.count} instants")
        elif any(t.utcoffset() is None for t in waves.start_times):
            add("startTimes", WaveCode.INVALID, "a date and time must carry its UTC offset")
        elif any(b <= a for a, b in zip(waves.start_times, waves.start_times[1:], strict=False)):
            add("startTimes", WaveCode.INVALID, "start times ascend")
    return problems


def wave_ends(waves: Waves, total: int) -> list[int]:
    """The rank (1-based, in profile order) of the last recipient of each wave among `total`; the last is total."""
    count = waves.count
    sizing = WaveSizing(waves.sizing)
    ends: list[int] = []
    if sizing is WaveSizing.EQUAL:
        base, extra = divmod(total, count)
        running = 0
        for k in range(count):
            running += base + (1 if k < extra else 0)
            ends.append(running)
    elif sizing is WaveSizing.PERCENT:
        cumulative = 0
        for percent in waves.sizes:
            cumulative += percent
            ends.append(total * cumulative // 100)
    else:
        cumulative = 0
        for size in waves.sizes:
            cumulative += size
            ends.append(min(cumulative, total))
    ends[-1] = total
    return ends


def wave_starts(waves: Waves, first: datetime) -> list[datetime]:
    """The earliest start of each wave (each also waits for the previous one to finish); `first` is the run's
    start, which an interval counts from."""
    if waves.start_times:
        return list(waves.start_times)
    interval = timedelta(minutes=waves.interval_minutes or MIN_INTERVAL_MINUTES)
    return [first + k * interval for k in range(waves.count)]


def waves_from_stored(stored: Mapping[str, Any] | None) -> Waves | None:
    if not stored:
        return None
    return Waves(
        count=int(stored.get("count") or 0),
        sizing=WaveSizing(stored.get("sizing") or WaveSizing.EQUAL),
        sizes=tuple(stored.get("sizes") or ()),
        interval_minutes=stored.get("intervalMinutes"),
        start_times=tuple(datetime.fromisoformat(t) for t in stored.get("startTimes") or ()),
    )
