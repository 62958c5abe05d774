"""Safety triggers, evaluated on every submission (clinical-rules.md section 2).

Safety is never suppressed by validity, trend or booster logic: a PHQ-9 with too many
missing items is still checked on item 9. Nothing here ever says "no risk".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from kap_outcomes.clinical.instruments import (
    CSSRS_POSITIONS,
    FREQUENCY_LABELS,
    PHQ9_ITEM9,
    Instrument,
)
from kap_outcomes.clinical.scoring import Risk, Score


class AlertLevel(StrEnum):
    REVIEW = "review"
    URGENT = "urgent"
    EMERGENCY = "emergency"


ALERT_LEVEL_RANK: Mapping[AlertLevel, int] = MappingProxyType(
    {AlertLevel.REVIEW: 1, AlertLevel.URGENT: 2, AlertLevel.EMERGENCY: 3}
)
"""Higher is more pressing; 0 is free for "none" (no open alert). The one order of alert
levels: every other order (the caseload's, the dashboard's) is derived from it."""

MOST_PRESSING_FIRST: tuple[AlertLevel, ...] = tuple(
    sorted(AlertLevel, key=ALERT_LEVEL_RANK.__getitem__, reverse=True)
)
"""Emergency, urgent, review: the order in which a clinician is shown alerts."""


class AlertKind(StrEnum):
    CSSRS_RISK = "cssrs_risk"
    PHQ9_ITEM9 = "phq9_item9"
    SAFETY_ITEM_MISSING = "safety_item_missing"


@dataclass(frozen=True, slots=True)
class AlertTrigger:
    level: AlertLevel
    kind: AlertKind
    suggested_action: str
    reason: str


def highest_level(levels: Iterable[AlertLevel]) -> AlertLevel | None:
    """The most pressing level, or None when there is none."""
    return max(levels, key=ALERT_LEVEL_RANK.__getitem__, default=None)


_CSSRS_ALERT: Mapping[Risk, tuple[AlertLevel, str]] = MappingProxyType(
    {
        Risk.HIGH: (
            AlertLevel.EMERGENCY,
            "safety precautions until a clinician evaluates",
        ),
        Risk.MODERATE: (AlertLevel.URGENT, "same-day risk assessment"),
        Risk.LOW: (AlertLevel.REVIEW, "review before the visit ends; safety plan"),
    }
)
"""C-SSRS high -> emergency [Columbia]; moderate -> urgent; low -> review (ENG,
from secondary triage sources; clinical-rules.md section 2)."""

ADMINISTER_CSSRS = "administer the C-SSRS now"
ASK_ITEM9 = "ask item 9"
ASK_CSSRS = "ask the C-SSRS screener's questions"


def evaluate_safety(
    instrument: Instrument, items: Sequence[int | None], score: Score
) -> list[AlertTrigger]:
    """Alerts this submission must open, most pressing first; [] when none.

    C-SSRS: by `score.risk` [Columbia]; a screener with no answer at all opens a review with
    kind `safety_item_missing` (ENG). PHQ-9 item 9 (published risk gradient
    [Simon13, Louzon16], ENG mapping to levels): >= 2 urgent, 1 review, not answered
    review with kind `safety_item_missing`. Item 9 = 0 opens nothing but is not
    reassurance [Louzon16]. GAD-7 has no safety item.
    """
    triggers: list[AlertTrigger] = []
    if instrument is Instrument.CSSRS:
        if score.risk is not None and score.risk in _CSSRS_ALERT:
            triggers.append(_cssrs_trigger(items, score.risk, score.flags))
        elif all(value is None for value in items):
            # ENG (clinical-rules.md section 8, safety first): nothing was screened, which is
            # not "no risk"; someone must ask the questions.
            triggers.append(
                AlertTrigger(
                    level=AlertLevel.REVIEW,
                    kind=AlertKind.SAFETY_ITEM_MISSING,
                    suggested_action=ASK_CSSRS,
                    reason="The C-SSRS screener was submitted with no answer at all.",
                )
            )
    elif instrument is Instrument.PHQ9:
        triggers += _item9_triggers(
            items[PHQ9_ITEM9],
            "PHQ-9 item 9 (thoughts of being better off dead or of self-harm) was not answered.",
        )
    return sorted(triggers, key=lambda t: ALERT_LEVEL_RANK[t.level], reverse=True)


def evaluate_total_safety(instrument: Instrument, item9: int | None) -> list[AlertTrigger]:
    """Alerts a total-only score must open (clinical-rules.md section 6, ENG): a total says
    nothing about item 9, so a PHQ-9 total without its item 9 opens a review of kind
    `safety_item_missing`, as an unanswered item 9 does; an item 9 sent with the total is
    judged as in `evaluate_safety`. A GAD-7 total opens nothing (no safety item)."""
    if instrument is not Instrument.PHQ9:
        return []
    return _item9_triggers(
        item9,
        "A PHQ-9 total arrived without item 9 (thoughts of being better off dead or of "
        "self-harm): safety cannot be judged from a total.",
    )


def _item9_triggers(item9: int | None, missing_reason: str) -> list[AlertTrigger]:
    """PHQ-9 item 9: >= 2 urgent, 1 review, unknown review `safety_item_missing`
    ([Simon13, Louzon16], ENG mapping to levels); 0 opens nothing."""
    if item9 is None:
        return [
            AlertTrigger(
                level=AlertLevel.REVIEW,
                kind=AlertKind.SAFETY_ITEM_MISSING,
                suggested_action=ASK_ITEM9,
                reason=missing_reason,
            )
        ]
    if item9 >= 1:
        return [
            AlertTrigger(
                level=AlertLevel.URGENT if item9 >= 2 else AlertLevel.REVIEW,
                kind=AlertKind.PHQ9_ITEM9,
                suggested_action=ADMINISTER_CSSRS,
                reason=(f"PHQ-9 item 9 answered {item9} ({FREQUENCY_LABELS[item9]})."),
            )
        ]
    return []


def _cssrs_trigger(items: Sequence[int | None], risk: Risk, flags: Sequence[str]) -> AlertTrigger:
    level, action = _CSSRS_ALERT[risk]
    yes = ", ".join(name for name, value in zip(CSSRS_POSITIONS, items, strict=True) if value == 1)
    reason = f"C-SSRS screener risk {risk.value}: answered yes to {yes}."
    if "cssrs_skip_logic_violation" in flags:
        reason += " Some answers break the screener's skip logic."
    return AlertTrigger(
        level=level,
        kind=AlertKind.CSSRS_RISK,
        suggested_action=action,
        reason=reason,
    )
