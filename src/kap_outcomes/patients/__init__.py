"""Pseudonymous patients: an organisation's external id, never a name or birth date."""
