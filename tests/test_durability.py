"""A 201 is a promise: acknowledged assessments survive the server being killed (SIGKILL).

Several clients stream PHQ-9 submissions at a real server process on a SQLite file; the
server is killed mid-stream, without any chance to flush or shut down, and started again on
the same file. Every request encodes its own sequence number in its items, so each stored
assessment can be traced back to exactly one request.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import PG_URL
from .migrated import migrated_sqlite
from .processes import ServiceProcess, http_client, http_post, issue_token, service_env, wait_for

CLIENTS = 6
ACKED_BEFORE_KILL = 150
MAX_SEQ = 4**8  # eight items of 0..3 carry the sequence number; item 9 carries seq % 2


def items_for(seq: int) -> list[int]:
    digits = [(seq // 4**i) % 4 for i in range(8)]
    return [*digits, seq % 2]


def seq_of(items: list[int]) -> int:
    return sum(v * 4**i for i, v in enumerate(items[:8]))


@dataclass
class Stream:
    """What the clients sent and what the server acknowledged, shared by the client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    next_seq: int = 0
    sent: set[int] = field(default_factory=set)
    acked: dict[int, tuple[str, int]] = field(default_factory=dict)  # seq -> (id, total)
    unexpected: list[str] = field(default_factory=list)

    def take(self) -> int | None:
        with self.lock:
            if self.stop.is_set() or self.next_seq >= MAX_SEQ:
                return None
            seq = self.next_seq
            self.next_seq += 1
            self.sent.add(seq)  # before the request leaves: in flight from here on
            return seq


def client_loop(base: str, headers: dict[str, str], patient_id: str, stream: Stream) -> None:
    with http_client(base_url=base, headers=headers, timeout=20) as http:
        while (seq := stream.take()) is not None:
            body: dict[str, Any] = {
                "instrument": "phq9",
                "items": items_for(seq),
                "administered_at": "2026-03-02T15:04:05Z",
            }
            try:
                resp = http.post(f"/v1/patients/{patient_id}/assessments", json=body)
            except httpx.TransportError:
                return  # the server is gone: this request stays "in flight", outcome unknown
            if resp.status_code != 201:
                with stream.lock:
                    stream.unexpected.append(f"{resp.status_code} {resp.text[:200]}")
                return
            created = resp.json()
            with stream.lock:
                stream.acked[seq] = (created["id"], created["total"])


@pytest.mark.skipif(bool(PG_URL), reason="SQLite durability (the group-commit writer)")
def test_every_acknowledged_assessment_survives_sigkill(tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "kap.db")
    env = service_env(url)
    server = ServiceProcess(env, tmp_path)
    headers = {"Authorization": f"Bearer {issue_token(url, 'clinic')}"}
    stream = Stream()
    threads: list[threading.Thread] = []
    try:
        resp = http_post(
            f"{server.base}/v1/patients", json={"external_id": "p-1"}, headers=headers, timeout=20
        )
        assert resp.status_code == 201, resp.text
        patient_id = resp.json()["id"]
        threads = [
            threading.Thread(target=client_loop, args=(server.base, headers, patient_id, stream))
            for _ in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        wait_for(
            lambda: len(stream.acked) >= ACKED_BEFORE_KILL or stream.unexpected,
            timeout=60,
            what=f"{ACKED_BEFORE_KILL} acknowledged submissions",
            step=0.005,
        )
        server.stop(signal.SIGKILL)  # mid-stream: the clients are still sending
    finally:
        stream.stop.set()
        server.stop(signal.SIGKILL)
        for t in threads:
            t.join(timeout=30)
    assert not stream.unexpected, stream.unexpected
    assert server.proc.returncode == -signal.SIGKILL
    acked = dict(stream.acked)
    assert len(acked) >= ACKED_BEFORE_KILL
    assert len(stream.sent) > len(acked), "no request was in flight at the kill"

    server = ServiceProcess(env, tmp_path)
    try:
        with http_client(base_url=server.base, headers=headers, timeout=20) as http:
            # every acknowledged id reads back, with its total and its alert (item 9 >= 1)
            for seq, (assessment_id, total) in acked.items():
                got = http.get(f"/v1/assessments/{assessment_id}")
                assert got.status_code == 200, (seq, got.text)
                body = got.json()
                assert body["total"] == total == sum(items_for(seq))
                assert body["items"] == items_for(seq)
                assert len(body["alerts"]) == (1 if seq % 2 else 0)

            stored: list[dict[str, Any]] = []
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"limit": 500}
                if cursor:
                    params["cursor"] = cursor
                page = http.get(f"/v1/patients/{patient_id}/assessments", params=params)
                assert page.status_code == 200, page.text
                stored += page.json()["data"]
                cursor = page.json()["next_cursor"]
                if cursor is None:
                    break
    finally:
        server.stop()

    stored_seqs = [seq_of(a["items"]) for a in stored]
    assert len(stored_seqs) == len(set(stored_seqs)), "a request was stored twice"
    assert set(stored_seqs) <= stream.sent, "an assessment nobody sent"
    assert {acked[s][0] for s in acked} <= {a["id"] for a in stored}, "an acknowledged one is lost"
    # beyond the acknowledged ones, only requests in flight when the server died
    assert len(acked) <= len(stored) <= len(stream.sent)
