"""Safety alerts: opened with the assessment that triggers them, never deleted."""
