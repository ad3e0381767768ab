"""Delivery at each recipient's local time (issue 18). Pure: no clock is read, instants are passed in.

With `deliverAt: PROFILE_TIME_ZONE` a run's fire time is read as a wall-clock time on a date in the campaign's
time zone (09:00 on 8 March in New York), and each recipient's ledger row is due at that wall-clock time on that
date in the recipient's own zone (their profile's `timeZone`; the campaign's when it has none or an unknown one).

- Daylight saving as in models.campaigns.schedule: a wall time that does not exist that day moves forward by
  the gap (02:30 in a 02:00→03:00 gap is due at 03:30), one that occurs twice is due at its first occurrence.
- The first zone to reach a wall time is UTC+14 (Kiritimati): a run for local time starts `run_start` —
  that wall time in UTC+14 — up to 26 h before its fire time (campaign at UTC-12), and stays open until its
  last row is due. Every row is then due at or after the run's start: none has "passed".
- `onPassedTime`: a row due before the run's reference instant (`passed_before`: the later of the run's start
  and the campaign's activation — a campaign activated at 10:00 New York time for "now" has passed 10:00 in
  Paris) is due at once (SEND_NOW) or at the same wall time the next day in its zone (NEXT_DAY).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from models.campaigns.schedule import DeliverAt, PassedTime, wall_time_to_utc, zone

__all__ = ["DeliverAt", "PassedTime", "due_by_zone", "local_due", "passed_before", "run_start"]

# The easternmost offset in the tz database (Pacific/Kiritimati): the first wall clock to reach any time.
EARLIEST_OFFSET = timedelta(hours=14)


def run_start(fire: datetime, campaign_zone: ZoneInfo) -> datetime:
    """The first instant any zone's clock shows the fire time's wall time on its date (in UTC+14)."""
    local = fire.astimezone(campaign_zone)
    return datetime.combine(local.date(), local.time().replace(tzinfo=None), tzinfo=UTC) - EARLIEST_OFFSET


def passed_before(fire: datetime, campaign_zone: ZoneInfo, activated_at: datetime | None) -> datetime:
    """The instant before which a row's due time has passed: the run's start, or the activation if later."""
    start = run_start(fire, campaign_zone)
    return max(start, activated_at) if activated_at is not None else start


def local_due(
    fire: datetime,
    campaign_zone: ZoneInfo,
    profile_zone: ZoneInfo | None,
    *,
    passed: datetime,
    on_passed: PassedTime,
) -> datetime:
    """When a recipient in `profile_zone` (None: the campaign's) gets the message of the run firing at `fire`:
    the fire time's wall time, on its date in the campaign's zone, in the recipient's zone; a time before
    `passed` is `passed` itself (SEND_NOW) or the next day's wall time (NEXT_DAY). Aware UTC."""
    local = fire.astimezone(campaign_zone)
    wall, day = local.time().replace(tzinfo=None), local.date()
    tz = profile_zone or campaign_zone
    due = wall_time_to_utc(day, wall, tz)
    if due >= passed:
        return due
    if PassedTime(on_passed) is PassedTime.SEND_NOW:
        return passed
    return wall_time_to_utc(day + timedelta(days=1), wall, tz)


def due_by_zone(
    fire: datetime,
    campaign_zone: ZoneInfo,
    zone_names: Iterable[str | None],
    *,
    passed: datetime,
    on_passed: PassedTime,
) -> dict[str | None, datetime]:
    """The due instant of each profile time-zone name (None, an unknown name: the campaign's zone)."""
    return {
        name: local_due(fire, campaign_zone, zone(name) if name else None, passed=passed, on_passed=on_passed)
        for name in zone_names
    }
