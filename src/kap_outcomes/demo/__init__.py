"""A synthetic demonstration clinic (``kap-outcomes demo``)."""
