"""Outbound webhooks: endpoints an ADMIN registers, and one delivery row per event and endpoint, made from the
outbox (fanout.py) and sent by the worker (jobs/webhooks.py)."""
