"""Idempotency-Key: a retried create replays its first response instead of creating twice."""
