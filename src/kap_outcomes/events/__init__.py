"""The event log (transactional outbox), its live feed, and the in-process subscribers."""
