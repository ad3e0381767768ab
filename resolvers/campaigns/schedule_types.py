"""When a campaign runs and how each run is split in waves: `Campaign.schedule` and `Campaign.waves`, read from
the stored JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

import strawberry

from resolvers.campaigns.enums import DeliverAt, Frequency, PassedTime, WaveSizing, Weekday


@strawberry.type(description="When a campaign runs.")
class CampaignSchedule:
    start_at: datetime | None = strawberry.field(description="First run; null = at activation.")
    end_at: datetime | None = strawberry.field(description="No run after this; null = after one run.")
    frequency: Frequency = strawberry.field(description="How often.")
    time_of_day: str | None = strawberry.field(description="Local `HH:MM` of recurring runs.")
    days_of_week: list[Weekday] = strawberry.field(description="WEEKLY: the days.")
    days_of_month: list[int] = strawberry.field(description="MONTHLY: the days.")
    time_zone: str = strawberry.field(description="IANA time zone.")
    deliver_at: DeliverAt = strawberry.field(description="Whose clock the schedule is read on.")
    on_passed_time: PassedTime = strawberry.field(
        description="With PROFILE_TIME_ZONE: recipients whose local time had passed when the run started."
    )

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Self:
        def when(key: str) -> datetime | None:
            return datetime.fromisoformat(stored[key]) if stored.get(key) else None

        return cls(
            start_at=when("startAt"),
            end_at=when("endAt"),
            frequency=stored.get("frequency") or "ONCE",
            time_of_day=stored.get("timeOfDay"),
            days_of_week=[Weekday(d) for d in stored.get("daysOfWeek") or []],
            days_of_month=list(stored.get("daysOfMonth") or []),
            time_zone=stored.get("timeZone") or "UTC",
            deliver_at=DeliverAt(stored.get("deliverAt") or DeliverAt.CAMPAIGN_TIME_ZONE.value),
            on_passed_time=PassedTime(stored.get("onPassedTime") or PassedTime.SEND_NOW.value),
        )


@strawberry.type(description="How each run of a campaign is sent in waves.")
class CampaignWaves:
    count: int = strawberry.field(description="Number of waves, 2 to 10.")
    sizing: WaveSizing = strawberry.field(description="How recipients are split.")
    sizes: list[int] = strawberry.field(description="PERCENT: each wave's percent; COUNT: each wave's recipients.")
    interval_minutes: int | None = strawberry.field(description="Minutes from one wave's start to the next's.")
    start_times: list[datetime] = strawberry.field(description="One start per wave (instead of an interval).")

    @classmethod
    def from_stored(cls, stored: dict[str, Any] | None) -> Self | None:
        if not stored:
            return None
        return cls(
            count=stored["count"],
            sizing=WaveSizing(stored.get("sizing") or "EQUAL"),
            sizes=list(stored.get("sizes") or []),
            interval_minutes=stored.get("intervalMinutes"),
            start_times=[datetime.fromisoformat(t) for t in stored.get("startTimes") or []],
        )
