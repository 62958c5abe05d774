"""``kap-outcomes demo``: a synthetic clinic, seeded through the same use cases as the API.

Every record is made by the service functions the routers call (patients, courses, sessions,
assessments, their corrections, alert acknowledgements and resolutions), as a clinician token
of the organisation made for the purpose ("demo seeder"): scoring, safety alerts, events and
the caseload's summaries follow exactly as they would over HTTP. No SQL is written here.

Deterministic: the same ``seed``, ``today`` and patient count give the same clinic (external
ids, dates, answers, doses, alerts); only the ids (UUIDv7) and the recording times differ.
Every date lies before ``today`` at 00:00 UTC (the real date when not given), so a form's time
is never in the future; "due" and "days since" are then judged against the real clock.

The patients cycle through courses that show each booster status of clinical-rules.md
section 5 (not applicable for each of its reasons, in induction, pending, stable, watch for
each of its reasons, consider booster, a booster given after a relapse), with GAD-7 beside
every PHQ-9, C-SSRS screeners at every level, open, acknowledged and resolved alerts, a
prorated form, an amended one and PHQ-9s that are due.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import partial

from sqlalchemy import Connection

from kap_outcomes.alerts import service as alerts_service
from kap_outcomes.alerts.models import AlertAction
from kap_outcomes.assessments import corrections
from kap_outcomes.assessments import service as assessments_service
from kap_outcomes.assessments.models import AssessmentAmend, AssessmentCreate, AssessmentPublic
from kap_outcomes.auth.models import Role
from kap_outcomes.auth.service import Principal, ensure_organisation, issue_token
from kap_outcomes.care import service as care_service
from kap_outcomes.care.models import CourseCreate, SessionCreate
from kap_outcomes.db import Database
from kap_outcomes.patients import service as patients_service
from kap_outcomes.patients.models import PatientCreate

INDUCTION_DAYS = (2, 4, 7, 9, 11, 14)
"""Six induction doses over about two weeks, counted from the course's first day."""


class NotEmpty(Exception):
    """The organisation already holds patients: the demo never mixes into real work."""


@dataclass(frozen=True)
class Archetype:
    """One kind of course: PHQ-9 totals by day after the course starts (the first is the
    baseline, taken on day 0 before any dose), and the doses given."""

    name: str
    phq9: tuple[tuple[int, int], ...]
    doses: tuple[int, ...] = INDUCTION_DAYS
    boosters: tuple[int, ...] = ()
    last_gap: int = 2
    """Days from the last score (or dose) to today."""


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("consider_booster", ((0, 22), (16, 6), (23, 7), (30, 13), (36, 14))),
    Archetype("watch_unconfirmed", ((0, 22), (16, 6), (23, 7), (30, 13))),
    Archetype("watch_rise", ((0, 22), (16, 6), (23, 7), (30, 11))),
    Archetype("stable", ((0, 21), (16, 8), (23, 7), (30, 6), (37, 7))),
    Archetype(
        "booster_then_stable",
        ((0, 20), (16, 5), (23, 6), (30, 12), (36, 14), (42, 7), (49, 6)),
        boosters=(38,),
    ),
    Archetype("pending", ((0, 19),), last_gap=2),
    Archetype("in_induction", ((0, 18),), doses=(2, 4, 7), last_gap=1),
    Archetype("no_response", ((0, 20), (16, 17), (23, 16), (30, 18))),
    Archetype("below_threshold", ((0, 8), (16, 5), (23, 4))),
    Archetype("no_dosing", ((0, 12), (7, 11)), doses=()),
    Archetype("stable_due", ((0, 23), (16, 9), (23, 8), (30, 7)), last_gap=11),
    Archetype("watch_worsening", ((0, 21), (16, 3), (23, 4), (30, 6), (37, 7), (44, 9))),
    Archetype("watch_half_lost", ((0, 10), (16, 3), (23, 5), (30, 7))),
    Archetype("no_baseline", ((16, 9), (23, 8))),
)


@dataclass
class _Seeder:
    rng: random.Random
    seed: int
    principal: Principal
    anchor: datetime
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def phq9_items(self, total: int, item9: int = 0) -> list[int | None]:
        """Nine answers adding up to ``total`` with item 9 as given (0 unless asked)."""
        items = [0] * 8
        remaining = total - item9
        slots = list(range(8))
        while remaining > 0:
            i = self.rng.choice([s for s in slots if items[s] < 3])
            items[i] += 1
            remaining -= 1
        return [*items, item9]

    def gad7_items(self, total: int) -> list[int | None]:
        items = [0] * 7
        for _ in range(total):
            items[self.rng.choice([s for s in range(7) if items[s] < 3])] += 1
        return list(items)

    def submit(
        self,
        conn: Connection,
        patient_id: str,
        instrument: str,
        items: list[int | None],
        at: datetime,
    ) -> AssessmentPublic:
        created = assessments_service.submit_assessment(
            conn,
            principal=self.principal,
            patient_id=patient_id,
            data=AssessmentCreate.model_validate(
                {
                    "instrument": instrument,
                    "items": items,
                    "administered_at": at,
                    "source": "patient",
                }
            ),
        )
        self.count(f"{instrument} forms")
        self.count("alerts opened", len(created.alerts))
        return created


def _cssrs(risk: str) -> list[int | None]:
    """Screener answers (q1 … q6, q6b) giving the risk level (clinical-rules.md 1.3)."""
    return {
        "none": [0, 0, None, None, None, 0, None],
        "low": [1, 0, None, None, None, 0, None],
        "moderate": [1, 1, 1, 0, 0, 0, None],
        "high": [1, 1, 1, 1, 0, 0, None],
    }[risk]


def _seed_patient(conn: Connection, *, seeder: _Seeder, index: int) -> None:
    s = seeder
    arche = ARCHETYPES[index % len(ARCHETYPES)]
    last_day = max([d for d, _ in arche.phq9] + list(arche.doses) + list(arche.boosters))
    start = s.anchor - timedelta(days=last_day + arche.last_gap, hours=s.rng.randint(0, 8))
    start = start.replace(minute=0, second=0, microsecond=0)

    def at(day: int, hour: int = 0) -> datetime:
        return start + timedelta(days=day, hours=hour)

    external_id = f"DEMO-{s.seed}-{index + 1:04d}"
    if patients_service.list_patients(
        conn, principal=s.principal, external_id=external_id, cursor=None, limit=1
    ).data:
        s.count("patients already there (kept as they are)")
        return
    patient = patients_service.create_patient(
        conn, principal=s.principal, data=PatientCreate(external_id=external_id)
    )
    pid = patient.id
    s.count(f"course: {arche.name}")
    care_service.record_session(
        conn,
        principal=s.principal,
        patient_id=pid,
        data=SessionCreate.model_validate({"kind": "intake", "occurred_at": at(0, 1)}),
    )
    if arche.doses:
        care_service.open_course(
            conn,
            principal=s.principal,
            patient_id=pid,
            data=CourseCreate.model_validate({"started_at": at(0), "label": "ketamine course"}),
        )
    route = s.rng.choice(("iv", "im", "intranasal"))
    amount = {"iv": 35.0, "im": 50.0, "intranasal": 56.0}[route]
    for day in arche.doses:
        _dose(conn, s, pid, "dosing", at(day, 3), route, amount)
    for day in arche.boosters:
        _dose(conn, s, pid, "booster", at(day, 3), route, amount)
        s.count("boosters")

    final = len(arche.phq9) - 1
    for n, (day, total) in enumerate(arche.phq9):
        item9 = 0
        if n == final and index % 9 == 4 and total >= 2:
            item9 = 1  # an open review alert: ask the C-SSRS
        if n == final and index % 13 == 6 and total >= 3:
            item9 = 2  # urgent
        items = s.phq9_items(total, item9)
        if n == 1 and index % 10 == 3:
            items[0] = None  # item 1 left unanswered: the total is prorated
            s.count("prorated forms")
        form = s.submit(conn, pid, "phq9", items, at(day, 2))
        if n == 1 and index % 11 == 5:
            fixed = list(items)
            k = next(i for i in range(8) if (fixed[i] or 0) > 0)
            fixed[k] = (fixed[k] or 0) - 1
            corrections.amend_assessment(
                conn,
                principal=s.principal,
                assessment_id=form.id,
                if_match='"1"',
                data=AssessmentAmend.model_validate(
                    {"items": fixed, "reason": "patient corrected an answer at the visit"}
                ),
            )
            s.count("amended forms")
        gad = max(0, min(21, round(total * 0.7) + s.rng.randint(-1, 1)))
        s.submit(conn, pid, "gad7", s.gad7_items(gad), at(day, 2) + timedelta(minutes=5))

    _screeners(conn, s, pid, index, at(arche.phq9[-1][0], 2) + timedelta(minutes=10))


def _dose(
    conn: Connection, s: _Seeder, pid: str, kind: str, when: datetime, route: str, amount: float
) -> None:
    care_service.record_session(
        conn,
        principal=s.principal,
        patient_id=pid,
        data=SessionCreate.model_validate(
            {"kind": kind, "occurred_at": when, "dose": {"route": route, "amount_mg": amount}}
        ),
    )
    s.count("doses")


def _screeners(conn: Connection, s: _Seeder, pid: str, index: int, when: datetime) -> None:
    """C-SSRS screeners at every level, their alerts open, acknowledged or resolved."""
    plan: dict[int, tuple[str, Callable[..., object] | None, str | None]] = {
        0: ("none", None, None),
        1: ("low", alerts_service.resolve, "safety plan reviewed at the visit"),
        2: ("moderate", alerts_service.acknowledge, "same-day risk assessment booked"),
        3: ("none", None, None),
        5: ("low", None, None),
        7: ("high", None, None),
    }
    step = plan.get(index % 17 if index % 17 in plan else -1)
    if step is None:
        return
    risk, action, note = step
    if risk == "high" and index >= 17:
        risk, action, note = "moderate", alerts_service.resolve, "seen the same day; plan agreed"
    created = s.submit(conn, pid, "cssrs", _cssrs(risk), when)
    if action is not None:
        for alert in created.alerts:
            action(conn, principal=s.principal, alert_id=alert.id, data=AlertAction(note=note))
            s.count(
                "alerts acknowledged" if action is alerts_service.acknowledge else "alerts resolved"
            )


def seed(
    db: Database,
    *,
    org: str,
    seed: int,
    patients: int,
    today: date | None,
    force: bool,
) -> list[str]:
    """Seed the clinic; one transaction per patient. Returns a summary, one line per fact."""
    day = today or datetime.now(UTC).date()
    anchor = datetime.combine(day, time(0, 0), tzinfo=UTC)

    def seeder(conn: Connection) -> Principal:
        organisation_id = ensure_organisation(conn, org)
        token_id, _ = issue_token(
            conn, organisation_id=organisation_id, role=Role.clinician, label="demo seeder"
        )
        principal = Principal(
            token_id=token_id, organisation_id=organisation_id, role=Role.clinician, patient_id=None
        )
        existing = patients_service.list_patients(
            conn, principal=principal, external_id=None, cursor=None, limit=1
        )
        if existing.data and not force:
            raise NotEmpty(
                f"organisation {org!r} already holds patients; the demo does not write into it "
                "(use --force to add to it anyway, or --org for another organisation)"
            )
        return principal

    principal = db.run_write(seeder)
    # deterministic synthetic data, not secrets: a seeded generator is the point
    state = _Seeder(rng=random.Random(seed), seed=seed, principal=principal, anchor=anchor)  # noqa: S311
    for index in range(patients):
        # one generator per patient: a patient's data never depends on the count before it
        state.rng = random.Random(f"{seed}:{index}")  # noqa: S311
        db.run_write(partial(_seed_patient, seeder=state, index=index))
    lines = [f"demo clinic {org!r}: {patients} synthetic patients (seed {seed}, today {day})"]
    lines += [f"  {what}: {n}" for what, n in sorted(state.counts.items())]
    return lines
