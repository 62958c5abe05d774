"""CPU per PHQ-9 ingest over real HTTP, split by process: the app, its database's server
backends, PostgreSQL's own background processes, and the load generator (``wrk``), against the
database-free baseline (``bench.baseline``) under the same load.

CPU seconds are read from ``/proc/<pid>/stat`` (user + system, every thread) before and after
each ``wrk`` round, and divided by the requests that round completed: a figure that depends far
less on how busy the machine is than requests per second do.

    python -m bench.pg_cpu --database-url postgresql+psycopg://postgres@127.0.0.1:5432/kap_x
        [--variant main=/tmp/main-src] [--rounds 6] [--seconds 5] [--connections 16]

``--database-url`` must name an empty database the caller may drop and create (one per
variant is made from it by suffixing ``_<variant>``); without it every variant runs on a fresh
SQLite file. ``--variant NAME=SRC`` adds a server whose code is imported from ``SRC`` (a ``src``
directory, e.g. from ``git archive``) instead of this checkout's; the checkout itself is the
variant ``here``. All servers and the baseline run side by side and take turns, the order
rotated every round, so a busy moment of the machine hits them all alike.

The ceiling it prints: on this machine's cores the load generator, the app and the database
share the CPU, so at most ``cores / (app + backends + wrk)`` requests per second fit, and a
single-threaded app (one event loop, one GIL) at most ``1 / app``; ``..._loop_only`` is the
same with only the event loop's thread counted for the app, as if the threads that talk to
the database (and run the use cases, on PostgreSQL) cost nothing. With ``py-spy`` installed
the app's CPU is also split by thread (``thread <name>_us``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.ingest import BODY, LUA, cli_token, free_port, stop, wait_up

TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system, every thread) of one process; 0 once it is gone."""
    return cpu_of_path(Path(f"/proc/{pid}/stat"))


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


@dataclass
class Target:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    database_url: str | None = None
    rounds: list[dict[str, float]] = field(default_factory=list)
    thread_names: dict[int, str] = field(default_factory=dict)


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid``, by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        out[int(task.name)] = cpu_of_path(task / "stat")
    return out


def cpu_of_path(stat: Path) -> float:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def name_threads(target: Target) -> None:
    """Python's names of the app's threads, by thread id, from ``py-spy dump`` (if installed):
    Python 3.11 does not give its threads' names to the system."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return
    dump = subprocess.run(
        [spy, "dump", "--pid", str(target.proc.pid)], capture_output=True, text=True
    ).stdout
    for tid, name in re.findall(r'Thread (\d+) \([^)]*\): "([^"]*)"', dump):
        target.thread_names[int(tid)] = re.sub(r"[ _-]?\d+$", "", name)


def server_pids(database_url: str) -> tuple[list[int], list[int]]:
    """The backends serving ``database_url``'s database (this query's own excluded), and
    PostgreSQL's background processes (shared with every other database on the server)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT pid, datname = current_database(), backend_type FROM pg_stat_activity"
                    " WHERE pid <> pg_backend_pid()"
                )
            ).all()
    finally:
        engine.dispose()
    mine = [pid for pid, same, kind in rows if same and kind == "client backend"]
    background = [pid for pid, _same, kind in rows if kind != "client backend"]
    return mine, background


def snapshot(target: Target) -> dict[str, float]:
    app = sum(cpu_of(pid) for pid in tree(target.proc.pid))
    out = {"app": app, "backends": 0.0, "pg_background": 0.0}
    if target.thread_names:
        for tid, seconds in thread_cpu(target.proc.pid).items():
            key = f"thread {target.thread_names.get(tid, 'other')}"
            out[key] = out.get(key, 0.0) + seconds
    if target.database_url and target.database_url.startswith("postgresql"):
        mine, background = server_pids(target.database_url)
        out["backends"] = sum(cpu_of(pid) for pid in mine)
        out["pg_background"] = sum(cpu_of(pid) for pid in background)
    return out


def run_round(target: Target, script: Path, seconds: int, connections: int) -> dict[str, float]:
    before = snapshot(target)
    wrk = subprocess.Popen(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), target.url],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert wrk.stdout is not None
    out = wrk.stdout.read()
    _pid, status, usage = os.wait4(wrk.pid, 0)
    wrk.returncode = os.waitstatus_to_exitcode(status)
    after = snapshot(target)
    if wrk.returncode != 0 or "Non-2xx" in out:
        raise RuntimeError(f"{target.name}: wrk failed:\n{out}")
    match = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if not match:
        raise RuntimeError(out)
    requests = int(match.group(1))
    elapsed = float(match.group(2)) / (1000 if match.group(3) == "ms" else 1)
    per = 1e6 / requests
    figures = {"rps": requests / elapsed}
    for key in sorted(after):
        figures[f"{key}_us"] = (after[key] - before.get(key, 0.0)) * per
    figures["wrk_us"] = (usage.ru_utime + usage.ru_stime) * per
    return figures


def fresh_database(database_url: str, name: str) -> str:
    url = make_url(database_url)
    database = f"{url.database}_{name}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        admin.dispose()
    return url.set(database=database).render_as_string(hide_password=False)


def start_server(
    name: str, src: str | None, database_url: str | None, work: Path, workers: int
) -> tuple[Target, str]:
    env = {
        **os.environ,
        "KAP_DATABASE_URL": database_url or f"sqlite:///{work / f'{name}.db'}",
        "KAP_RATE_LIMIT_PER_MINUTE": str(10**9),
    }
    if src:
        env["PYTHONPATH"] = src
    exe = [sys.executable, "-m", "kap_outcomes.cli"]
    if database_url:
        subprocess.run([*exe, "db", "upgrade"], env=env, check=True, capture_output=True)
    token = cli_token(exe, env, "clinician")
    port = free_port()
    proc = subprocess.Popen(
        [*exe, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_up(f"{base}/healthz")
    patient = httpx.post(
        f"{base}/v1/patients",
        json={"external_id": "bench-1"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["id"]
    url = f"{base}/v1/patients/{patient}/assessments"
    return Target(name, url, proc, env["KAP_DATABASE_URL"]), token


def summary(target: Target) -> dict[str, float]:
    keys = {key for r in target.rounds for key in r}
    return {
        key: round(statistics.median(r.get(key, 0.0) for r in target.rounds), 1)
        for key in sorted(keys)
    }


def ceiling(real: dict[str, float], base: dict[str, float], cores: int) -> dict[str, float]:
    """Requests per second that fit in the CPU, for each app, and their ratio."""
    real_total = real["app_us"] + real["backends_us"] + real["pg_background_us"] + real["wrk_us"]
    base_total = base["app_us"] + base["wrk_us"]
    real_fit = min(cores * 1e6 / real_total, 1e6 / real["app_us"])
    base_fit = min(cores * 1e6 / base_total, 1e6 / base["app_us"])
    out = {
        "real_cpu_us_total": round(real_total, 1),
        "real_rps_cpu_bound": round(real_fit),
        "baseline_rps_cpu_bound": round(base_fit),
        "ratio_cpu_bound": round(real_fit / base_fit, 3),
    }
    loop = real.get("thread MainThread_us")
    if loop:  # if every thread but the event loop's cost nothing (the database threads)
        rest = loop + real["backends_us"] + real["pg_background_us"] + real["wrk_us"]
        out["ratio_cpu_bound_loop_only"] = round(min(cores * 1e6 / rest, 1e6 / loop) / base_fit, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: SQLite)")
    parser.add_argument("--variant", action="append", default=[], help="NAME=SRC directory")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="kap-pg-cpu-"))
    variants: list[tuple[str, str | None]] = [("here", None)]
    variants += [(v.split("=", 1)[0], v.split("=", 1)[1]) for v in args.variant]
    targets: list[Target] = []
    port = free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "bench.baseline:app", "--port", str(port)]
    quiet = ["--no-access-log", "--no-server-header", "--log-level", "warning"]
    base_proc = subprocess.Popen(
        [*uvicorn, *quiet, "--workers", str(args.workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_up(f"http://127.0.0.1:{port}/docs")
        body = json.dumps(BODY)
        token = ""
        for name, src in variants:
            url = fresh_database(args.database_url, name) if args.database_url else None
            target, token = start_server(name, src, url, work, args.workers)
            (work / f"{name}.lua").write_text(LUA.format(body=body, token=token))
            targets.append(target)
        path = targets[0].url.split("/v1/", 1)[1]
        baseline = Target("baseline", f"http://127.0.0.1:{port}/v1/{path}", base_proc)
        (work / "baseline.lua").write_text(LUA.format(body=body, token=token))
        everyone = [baseline, *targets]
        for target in everyone:  # warm up
            run_round(target, work / f"{target.name}.lua", 2, args.connections)
            name_threads(target)
        for i in range(args.rounds):
            shift = i % len(everyone)
            for target in everyone[shift:] + everyone[:shift]:
                figures = run_round(
                    target, work / f"{target.name}.lua", args.seconds, args.connections
                )
                target.rounds.append(figures)
                shown = ", ".join(f"{k} {v:,.0f}" for k, v in figures.items())
                print(f"round {i + 1} {target.name}: {shown}", file=sys.stderr, flush=True)
        base = summary(baseline)
        result: dict[str, object] = {"baseline": base}
        for target in targets:
            real = summary(target)
            result[target.name] = {
                **real,
                "rps_ratio": round(real["rps"] / base["rps"], 3),
                **ceiling(real, base, os.cpu_count() or 1),
            }
        result["database"] = "postgresql" if args.database_url else "sqlite"
        result["rounds"], result["seconds"] = args.rounds, args.seconds
        print(json.dumps(result, indent=2))
    finally:
        stop([base_proc, *(t.proc for t in targets)])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
