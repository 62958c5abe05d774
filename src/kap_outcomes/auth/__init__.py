"""Organisations, bearer tokens, roles and the current principal."""
