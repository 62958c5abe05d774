from kap_outcomes.auth.models import Role


def test_phq9_round_trip(tenant):
    pid = tenant.patient()
    resp = tenant.post(
        f"/v1/patients/{pid}/assessments",
        {
            "instrument": "phq9",
            "items": [1, 2, 1, 0, 1, 2, 1, 0, 0],
            "administered_at": "2026-03-02T15:04:05Z",
        },
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["total"] == 8 and body["severity"] == "mild"
    got = tenant.get(f"/v1/assessments/{body['id']}", Role.admin)
    assert got.status_code == 200 and got.json()["total"] == 8
