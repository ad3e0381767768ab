"""The transactional outbox (DESIGN §4): events are rows written with their change; a relay publishes them.

async with in_transaction() as conn:
    ...the change...
    await outbox.emit(CampaignStatusChanged(...), sandbox_id=row.sandbox_id, conn=conn)
outbox.committed()  # optional: this process's relay publishes now rather than at its next poll
"""

from models.outbox.model import OutboxEvent
from models.outbox.payloads import CampaignStatusChanged, Payload, PayloadError, RunProgress
from models.outbox.store import committed, emit

__all__ = ["CampaignStatusChanged", "OutboxEvent", "Payload", "PayloadError", "RunProgress", "committed", "emit"]
