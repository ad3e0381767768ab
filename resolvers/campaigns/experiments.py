"""A campaign's content experiment in GraphQL: its types (enums: enums.py, inputs: inputs.py)."""

from __future__ import annotations

from typing import Any, Self

import strawberry

from models.campaigns.experiment_rules import ExperimentFallback as ExperimentFallbackEnum
from models.campaigns.experiment_rules import ExperimentMetric as ExperimentMetricEnum
from models.campaigns.experiment_rules import ExperimentMode as ExperimentModeEnum
from resolvers.campaigns.enums import ExperimentFallback, ExperimentMetric, ExperimentMode
from resolvers.campaigns.types import CampaignContent


@strawberry.type(description="One treatment of an experiment.")
class Treatment:
    key: str = strawberry.field(description="Stable key; deliveries record it.")
    name: str = strawberry.field(description="Name.")
    weight: int = strawberry.field(description="Relative share of the recipients.")
    control: bool = strawberry.field(description="Whether this is the control (the first treatment).")
    content: CampaignContent = strawberry.field(description="The message of this treatment.")


@strawberry.type(description="A campaign's content experiment.")
class Experiment:
    treatments: list[Treatment] = strawberry.field(description="The treatments; the first is the control.")
    holdout_share: float = strawberry.field(description="Share of the audience sent nothing.")
    metric: ExperimentMetric = strawberry.field(description="The primary metric.")
    mode: ExperimentMode = strawberry.field(description="How it sends.")
    test_share: float | None = strawberry.field(description="TEST_THEN_WINNER: share of the audience in the test.")
    test_duration_seconds: int | None = strawberry.field(description="TEST_THEN_WINNER: how long the test runs.")
    fallback: ExperimentFallback = strawberry.field(description="What the rest gets when no treatment wins.")
    winner: str | None = strawberry.field(description="The key of the chosen winner, once chosen.")

    @classmethod
    def from_stored(cls, stored: dict[str, Any] | None) -> Self | None:
        if not stored:
            return None
        return cls(
            treatments=[
                Treatment(
                    key=t["key"],
                    name=t.get("name") or "",
                    weight=int(t["weight"]),
                    control=i == 0,
                    content=CampaignContent.from_stored(t.get("content") or {}),
                )
                for i, t in enumerate(stored.get("treatments") or [])
            ],
            holdout_share=float(stored.get("holdoutShare") or 0.0),
            metric=ExperimentMetricEnum(stored["metric"]),
            mode=ExperimentModeEnum(stored["mode"]),
            test_share=stored.get("testShare"),
            test_duration_seconds=stored.get("testDurationSeconds"),
            fallback=ExperimentFallbackEnum(stored.get("fallback") or "CONTROL"),
            winner=(stored.get("winner") or {}).get("treatment"),
        )
