"""The organisation's own settings (its time zone)."""
