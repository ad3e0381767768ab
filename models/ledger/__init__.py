"""The delivery ledger: the Delivery model and every SQL statement on deliveries (snapshot, claim, outcomes,
cancel, counts, report aggregates)."""
