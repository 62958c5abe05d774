"""The three instruments: item counts, answer ranges and LOINC codes.

Source: clinical-rules.md section 1 and interop.md (LOINC).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType


class Instrument(StrEnum):
    PHQ9 = "phq9"
    GAD7 = "gad7"
    CSSRS = "cssrs"


ITEM_COUNT: Mapping[Instrument, int] = MappingProxyType(
    {Instrument.PHQ9: 9, Instrument.GAD7: 7, Instrument.CSSRS: 7}
)
"""PHQ-9 items 1-9 [Kroenke01], GAD-7 items 1-7 [Spitzer06], C-SSRS q1-q6, q6b."""

ITEM_MAX: Mapping[Instrument, int] = MappingProxyType(
    {Instrument.PHQ9: 3, Instrument.GAD7: 3, Instrument.CSSRS: 1}
)
"""Answers run 0..max: 0-3 frequency [Kroenke01, Spitzer06]; C-SSRS 0 = no, 1 = yes."""

FREQUENCY_LABELS: tuple[str, ...] = (
    "not at all",
    "several days",
    "more than half the days",
    "nearly every day",
)
"""Meaning of a PHQ-9 / GAD-7 answer 0..3 [Kroenke01]."""

PHQ9_ITEM9 = 8
"""0-based position of PHQ-9 item 9 (thoughts of being better off dead or of
self-harm), the safety item (clinical-rules.md section 2)."""

CSSRS_POSITIONS: tuple[str, ...] = ("q1", "q2", "q3", "q4", "q5", "q6", "q6b")
"""Names of the seven C-SSRS screener answers, in order (clinical-rules.md 1.3)."""

ITEM_LOINC: Mapping[Instrument, tuple[str, ...]] = MappingProxyType(
    {
        Instrument.PHQ9: (
            "44250-9",
            "44255-8",
            "44259-0",
            "44254-1",
            "44251-7",
            "44258-2",
            "44252-5",
            "44253-3",
            "44260-8",
        ),
        # Item 6 is 69689-8 (irritable), item 7 is 69736-7 (afraid): interop.md.
        Instrument.GAD7: (
            "69725-0",
            "68509-9",
            "69733-4",
            "69734-2",
            "69735-9",
            "69689-8",
            "69736-7",
        ),
        # Provisional codes seen in public form exports (clinical-rules.md 1.3).
        Instrument.CSSRS: (
            "93246-7",
            "93247-5",
            "93248-3",
            "93249-1",
            "93250-9",
            "93267-3",
            "93269-9",
        ),
    }
)
"""Item LOINC codes in answer order (clinical-rules.md 1.1-1.3, interop.md)."""

TOTAL_LOINC: Mapping[Instrument, str | None] = MappingProxyType(
    {Instrument.PHQ9: "44261-6", Instrument.GAD7: "70274-6", Instrument.CSSRS: None}
)
"""Total-score LOINC codes; the C-SSRS screener has no total."""

PANEL_LOINC: Mapping[Instrument, str] = MappingProxyType(
    {
        Instrument.PHQ9: "44249-1",
        Instrument.GAD7: "69737-5",
        Instrument.CSSRS: "93373-9",
    }
)
"""Panel LOINC codes (clinical-rules.md 1.1-1.3)."""

DIFFICULTY_LOINC = "69722-7"
"""PHQ-9 difficulty question: stored, never scored [Kroenke01]."""


def item_problems(
    instrument: Instrument, items: Sequence[int | None]
) -> list[tuple[int | None, str]]:
    """Count and range problems of an answer list; empty means acceptable.

    Each problem is (0-based item index, or None for the list as a whole, detail).
    All answers are integers 0..max or null (not answered); anything else is a 422
    with a pointer to the offending item (clinical-rules.md section 1). Booleans are
    refused although Python treats them as ints. Details never echo the value sent.
    """
    problems: list[tuple[int | None, str]] = []
    expected = ITEM_COUNT[instrument]
    if len(items) != expected:
        problems.append(
            (
                None,
                f"{instrument.value} needs exactly {expected} items, got {len(items)}",
            )
        )
    top = ITEM_MAX[instrument]
    for index, value in enumerate(items):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append((index, "must be an integer or null"))
        elif not 0 <= value <= top:
            problems.append((index, f"must be between 0 and {top}"))
    return problems
