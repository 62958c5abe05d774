"""CPU per webhook delivery: signed POSTs through ``egress.post`` (the worker's path: the
address check, the pooled connection, the capped read) to a receiver in a child process,
so that only the sender's CPU is counted.

    python -m bench.deliveries [--deliveries 1000] [--concurrency 8] [--rounds 5]

Prints the CPU microseconds of this process per delivery, per round and their median.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import statistics
import time
from datetime import UTC, datetime

from bench.receiver import ReceiverProcess

BODY = (
    '{"id":"01a22d47-0562-7fe1-9a56-13a1ec689c7a","type":"assessment.submitted",'
    '"resource":{"type":"assessments","id":"01a22d47-0562-7fe1-9a56-13a1ec689c7b"},"data":{}}'
)


async def run(url: str, deliveries: int, concurrency: int, rounds: int) -> list[float]:
    from kap_outcomes.webhooks import egress, signing

    policy = egress.EgressPolicy((ipaddress.ip_network("127.0.0.0/8"),))
    secret = signing.new_secret()
    slots = asyncio.Semaphore(concurrency)

    async def one(connections: egress.Connections, n: int) -> None:
        async with slots:
            headers = signing.headers(
                secrets_in_force=[secret], event_id=f"e{n}", at=datetime.now(UTC), body=BODY
            )
            answer = await egress.post(
                connections,
                url=url,
                body=BODY.encode(),
                headers=headers,
                policy=policy,
                timeout_s=10,
            )
            if not answer.succeeded:
                raise RuntimeError(answer.error)

    per_round = []
    async with egress.Connections() as connections:
        await asyncio.gather(*(one(connections, n) for n in range(100)))  # warm up
        for _ in range(rounds):
            started = time.process_time()
            await asyncio.gather(*(one(connections, n) for n in range(deliveries)))
            per_round.append((time.process_time() - started) / deliveries * 1e6)
    return per_round


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    receiver = ReceiverProcess()
    try:
        rounds = asyncio.run(run(receiver.url, args.deliveries, args.concurrency, args.rounds))
        received = receiver.count
    finally:
        receiver.close()
    print(
        json.dumps(
            {
                "cpu_us_per_delivery": round(statistics.median(rounds), 1),
                "rounds": [round(r, 1) for r in rounds],
                "received": received,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
