"""Recording a patient's course through the API, with dates relative to the real clock.

An assessment may not lie in the future, so day 0 of every course is START days ago.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = 60  # the course's day 0 is this many days ago


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


# Whole seconds, fixed once: day offsets between scores are then exact.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=START)


def _day(day: float) -> str:
    return _iso(T0 + timedelta(days=day))


def _items(total: int, count: int, *, last: int = 0) -> list[int]:
    """Answers summing to `total`; the last item (PHQ-9 item 9) is `last`."""
    rest = total - last
    items = []
    for _ in range(count - 1):
        items.append(min(3, rest))
        rest -= items[-1]
    assert rest == 0, "total out of reach"
    return [*items, last]


class Clinic:
    """One patient of one organisation, recorded through the API."""

    def __init__(self, tenant, pid: str | None = None) -> None:
        self.tenant = tenant
        self.pid = pid or tenant.patient()

    def phq9(self, day: float, total: int, *, item9: int = 0) -> dict:
        return self._assess("phq9", _items(total, 9, last=item9), day)

    def gad7(self, day: float, total: int) -> dict:
        return self._assess("gad7", _items(total, 7), day)

    def _assess(self, instrument: str, items: list[int], day: float) -> dict:
        body = {"instrument": instrument, "items": items, "administered_at": _day(day)}
        resp = self.tenant.post(f"/v1/patients/{self.pid}/assessments", body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def dose(self, day: float, kind: str = "dosing") -> None:
        body = {"kind": kind, "occurred_at": _day(day), "dose": {"route": "iv", "amount_mg": 35}}
        resp = self.tenant.post(f"/v1/patients/{self.pid}/sessions", body)
        assert resp.status_code == 201, resp.text

    def signals(self, **kw) -> dict:
        resp = self.tenant.get(f"/v1/patients/{self.pid}/signals", **kw)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def status(self) -> tuple[str, list[str]]:
        booster = self.signals()["booster"]
        return booster["status"], [r["code"] for r in booster["reasons"]]

    def trend(self, instrument: str = "phq9") -> dict:
        resp = self.tenant.get(f"/v1/patients/{self.pid}/trends", params={"instrument": instrument})
        assert resp.status_code == 200, resp.text
        return resp.json()
