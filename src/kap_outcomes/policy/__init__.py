"""The organisation's clinical policy: every threshold of sections 3-5, versioned."""
