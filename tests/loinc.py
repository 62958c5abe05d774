"""LOINC codes and answer weights written out here, independently of the code's constants.

Taken from the published LOINC panels (loinc.org): PHQ-9 44249-1, GAD-7 69737-5, the answer
list LL358-3 (frequency, weights 0-3) and the answers No (LA32-8, 0) and Yes (LA33-6, 1). The
C-SSRS screener codes are the provisional ones of public form exports
(docs/clinical-rules.md); they are pinned here so that an accidental change shows. Every item,
total and panel code also carries a valid LOINC check digit (:func:`check_digit`, LOINC's
published mod-10 rule), checked in tests/clinical/test_scoring.py.
"""

from __future__ import annotations

SYSTEM = "http://loinc.org"

PHQ9_PANEL = "44249-1"
PHQ9_TOTAL = "44261-6"
PHQ9_ITEMS = (
    "44250-9",  # 1 little interest or pleasure in doing things
    "44255-8",  # 2 feeling down, depressed, or hopeless
    "44259-0",  # 3 trouble falling or staying asleep, or sleeping too much
    "44254-1",  # 4 feeling tired or having little energy
    "44251-7",  # 5 poor appetite or overeating
    "44258-2",  # 6 feeling bad about yourself
    "44252-5",  # 7 trouble concentrating on things
    "44253-3",  # 8 moving or speaking slowly, or fidgety or restless
    "44260-8",  # 9 thoughts that you would be better off dead, or of hurting yourself
)

GAD7_PANEL = "69737-5"
GAD7_TOTAL = "70274-6"
GAD7_ITEMS = (
    "69725-0",  # 1 feeling nervous, anxious, or on edge
    "68509-9",  # 2 not being able to stop or control worrying
    "69733-4",  # 3 worrying too much about different things
    "69734-2",  # 4 trouble relaxing
    "69735-9",  # 5 being so restless that it is hard to sit still
    "69689-8",  # 6 becoming easily annoyed or irritable
    "69736-7",  # 7 feeling afraid, as if something awful might happen
)

CSSRS_PANEL = "93373-9"
CSSRS_ITEMS = ("93246-7", "93247-5", "93248-3", "93249-1", "93250-9", "93267-3", "93269-9")

FREQUENCY_WEIGHT = {  # LL358-3
    "LA6568-5": 0,  # not at all
    "LA6569-3": 1,  # several days
    "LA6570-1": 2,  # more than half the days
    "LA6571-9": 3,  # nearly every day
}
FREQUENCY_CODES = tuple(FREQUENCY_WEIGHT)
MORE_DAYS_THAN_NOT = "LA18938-3"
"""LOINC's own GAD-7 form answers item 2 with "more days than not": weighs 2."""
YES_NO_WEIGHT = {"LA32-8": 0, "LA33-6": 1}  # no, yes

ITEMS = {"phq9": PHQ9_ITEMS, "gad7": GAD7_ITEMS, "cssrs": CSSRS_ITEMS}
TOTALS = {"phq9": PHQ9_TOTAL, "gad7": GAD7_TOTAL, "cssrs": None}
PANELS = {"phq9": PHQ9_PANEL, "gad7": GAD7_PANEL, "cssrs": CSSRS_PANEL}


def answer_weight(instrument: str, position: int, code: str) -> int | None:
    """The weight of an answer code on one item (0-based position), by the tables above."""
    if instrument == "cssrs":
        return YES_NO_WEIGHT.get(code)
    if instrument == "gad7" and position == 1 and code == MORE_DAYS_THAN_NOT:
        return 2
    return FREQUENCY_WEIGHT.get(code)


def check_digit(number: str) -> int:
    """LOINC's mod-10 check digit of a code's number part: the digits in odd places counted
    from the right, read as a number and doubled, after the digits in even places; the check
    digit brings the sum of all those digits up to a multiple of ten."""
    odd = number[::-1][0::2][::-1]
    even = number[::-1][1::2][::-1]
    digits = even + str(int(odd) * 2)
    return -sum(int(d) for d in digits) % 10
