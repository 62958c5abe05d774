"""The words the dashboard shows for the API's codes (the codes stay visible beside them).

Every code of the clinical rules is worded: by default the code itself with spaces for its
underscores, a capital first for a badge; other words only where the code says too little.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from kap_outcomes.clinical.booster import BoosterStatus
from kap_outcomes.clinical.instruments import Instrument
from kap_outcomes.clinical.scoring import Risk, Severity
from kap_outcomes.clinical.trend import TrendLabel
from kap_outcomes.signals.models import SafetyLevel


def _words(codes: Iterable[str], *, badge: bool = False, **instead: str) -> dict[str, str]:
    """Each code's words: ``instead``'s where it names some, else the code with spaces for
    underscores (capitalised on a badge)."""
    worded = {}
    for code in map(str, codes):
        plain = code.replace("_", " ")
        worded[code] = instead.get(code, plain.capitalize() if badge else plain)
    return worded


STATUS = _words(
    get_args(BoosterStatus),
    badge=True,
    consider_booster="Consider a booster",
    pending="Awaiting a PHQ-9 since the last dose",
)
LEVEL = _words(get_args(SafetyLevel.__value__), badge=True)
SEVERITY = _words(Severity)
RISK = _words(Risk)
TREND = _words(get_args(TrendLabel), insufficient_data="not enough scores yet")
INSTRUMENT = _words(Instrument, phq9="PHQ-9", gad7="GAD-7", cssrs="C-SSRS screener")
