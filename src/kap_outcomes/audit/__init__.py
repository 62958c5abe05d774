"""The audit trail: who read or changed which patient's data, when, and with what outcome."""
