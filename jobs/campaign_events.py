"""Event topics about campaigns; their payloads (and the topics' home) are in models/outbox/payloads.py."""

from models.outbox.payloads import CAMPAIGN_RUN_PROGRESS_TOPIC, CAMPAIGN_STATUS_TOPIC

__all__ = ["CAMPAIGN_RUN_PROGRESS_TOPIC", "CAMPAIGN_STATUS_TOPIC"]
