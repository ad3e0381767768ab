"""The transactional outbox (DESIGN §4): events are rows written with their change; a relay publishes them.

    async with in_transaction() as conn:
        ...the change...
        await outbox.emit(CampaignStatusChanged(...), sandbox_id=row.sandbox_id, conn=conn)
    outbox.committed()  # optional: this process's relay publishes now rather than at its next poll

Names are loaded on first use, so `models.outbox.payloads` stays importable without Tortoise (a pure module).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.outbox.model import OutboxEvent
    from models.outbox.payloads import CampaignStatusChanged, Payload, PayloadError, RunProgress
    from models.outbox.store import committed, emit

_HOMES = {
    "OutboxEvent": "models.outbox.model",
    "CampaignStatusChanged": "models.outbox.payloads",
    "Payload": "models.outbox.payloads",
    "PayloadError": "models.outbox.payloads",
    "RunProgress": "models.outbox.payloads",
    "committed": "models.outbox.store",
    "emit": "models.outbox.store",
}
__all__ = [
    "CampaignStatusChanged",
    "OutboxEvent",
    "Payload",
    "PayloadError",
    "RunProgress",
    "committed",
    "emit",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'models.outbox' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
