"""Where the time of batched feedback ingest goes, window by window as the table grows.

    python -m bench.profile_ingest --engine sqlite --events 200000
    VITRINE_PG_OPTS="-c shared_preload_libraries=pg_stat_statements" \\
        scripts/with_postgres.sh .venv/bin/python -m bench.profile_ingest --engine postgresql --events 200000
    scripts/with_postgres.sh .venv/bin/python -m bench.profile_ingest --engine both --events 200000

Writes `store.record_feedback_batch` batches of --batch events into a fresh database (the catalogue of
bench.bench_store) and prints one JSON line per --window events: the window's events/s, the table's size, and the
client-side time per batch of each SQL statement (timed around the driver call, so round trips are included).
On PostgreSQL it also prints whether autovacuum has analyzed the table yet, and at the end the top statements of
pg_stat_statements (when the server preloads it) and the plan of a replay lookup of 500 event ids.

`--engine both` writes each batch to SQLite, then the same batch to PostgreSQL, so that load from other jobs hits
both alike, and prints per window each engine's events/s, their ratio, and the CPU time per batch: this process's
for each engine, and for PostgreSQL also the server's (every process of the cluster, from /proc). On a quiet
machine a batch costs about the sum of its CPU times (client and server take turns), which makes the CPU figures
the load-independent comparison.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _key(statement: str) -> str:
    return " ".join(statement.split())[:60]


def _cluster_cpu_s(postmaster: int) -> float:
    """CPU seconds (user + system) of a PostgreSQL cluster: the postmaster and every child of it, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(entry) == postmaster or int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def _both(args) -> int:
    """Interleaved batches to SQLite and PostgreSQL (see the module docstring)."""
    from annotation import store
    from annotation.db import make_engine, make_session_factory
    from bench.bench_store import _catalog, _drop, _events, _fresh_url

    workdir = Path(tempfile.mkdtemp(prefix="vitrine-profile-ingest-"))
    urls = {name: _fresh_url(name, workdir, args.pg_url, "both") for name in ("sqlite", "postgresql")}
    engines = {name: make_engine(url) for name, url in urls.items()}
    sessions = {name: make_session_factory(engine) for name, engine in engines.items()}
    for Session in sessions.values():
        _catalog(Session)
    with engines["postgresql"].connect() as conn:
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    events = _events(args.events, seed=2)
    zero = {"wall": 0.0, "cpu": 0.0, "server": 0.0}
    window = {name: dict(zero) for name in sessions}
    for start in range(0, len(events), args.batch):
        batch = events[start : start + args.batch]
        for name, Session in sessions.items():
            server0 = _cluster_cpu_s(postmaster) if name == "postgresql" else 0.0
            wall0, cpu0 = time.perf_counter(), time.process_time()
            with Session() as s, s.begin():
                store.record_feedback_batch(s, batch)
            window[name]["wall"] += time.perf_counter() - wall0
            window[name]["cpu"] += time.process_time() - cpu0
            if name == "postgresql":
                window[name]["server"] += _cluster_cpu_s(postmaster) - server0
        done = start + args.batch
        if done % args.window == 0 or done >= len(events):
            n = args.window / args.batch
            rate = {name: round(args.window / w["wall"]) for name, w in window.items()}
            print(json.dumps({
                "rows": done, "events_per_s": rate, "ratio_pg_over_sqlite": round(rate["postgresql"] / rate["sqlite"], 3),
                "cpu_ms_per_batch": {"sqlite": round(window["sqlite"]["cpu"] * 1000 / n, 1),
                                     "postgresql_client": round(window["postgresql"]["cpu"] * 1000 / n, 1),
                                     "postgresql_server": round(window["postgresql"]["server"] * 1000 / n, 1)},
                "load_avg": round(os.getloadavg()[0], 2)}), flush=True)
            window = {name: dict(zero) for name in sessions}
    for name, engine in engines.items():
        engine.dispose()
        _drop(name, urls[name])
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from sqlalchemy import event

    from annotation import store
    from annotation.db import make_engine, make_session_factory
    from bench.bench_store import _catalog, _drop, _events, _fresh_url

    parser = argparse.ArgumentParser(prog="python -m bench.profile_ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("VITRINE_TEST_PG_URL"))
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--window", type=int, default=20_000)
    args = parser.parse_args(argv)
    if args.engine != "sqlite" and not args.pg_url:
        parser.error(f"--engine {args.engine} needs --pg-url or VITRINE_TEST_PG_URL (run under scripts/with_postgres.sh)")
    if args.engine == "both":
        return _both(args)
    workdir = Path(tempfile.mkdtemp(prefix="vitrine-profile-ingest-"))
    url = _fresh_url(args.engine, workdir, args.pg_url, "profile")
    engine = make_engine(url)
    Session = make_session_factory(engine)
    _catalog(Session)
    stats: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info["profile_t0"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        entry = stats[_key(statement)]
        entry[0] += 1
        entry[1] += time.perf_counter() - conn.info.pop("profile_t0")

    postgres = args.engine == "postgresql"
    if postgres:
        with engine.connect() as conn:
            preloaded = conn.exec_driver_sql("SHOW shared_preload_libraries").scalar()
            if "pg_stat_statements" in preloaded:
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.exec_driver_sql("SELECT pg_stat_statements_reset()")
                conn.commit()
    events = _events(args.events, seed=2)
    t_window = time.perf_counter()
    for start in range(0, len(events), args.batch):
        with Session() as s, s.begin():
            store.record_feedback_batch(s, events[start : start + args.batch])
        done = start + args.batch
        if done % args.window == 0 or done >= len(events):
            now = time.perf_counter()
            n_batches = args.window / args.batch
            line = {"rows": done, "events_per_s": round(args.window / (now - t_window)),
                    "ms_per_batch": {k: round(v[1] * 1000 / n_batches, 1)
                                     for k, v in sorted(stats.items(), key=lambda kv: -kv[1][1])[:5]},
                    "load_avg": round(os.getloadavg()[0], 2)}
            if postgres:
                with engine.connect() as conn:
                    analyzed, reltuples = conn.exec_driver_sql(
                        "SELECT s.last_autoanalyze IS NOT NULL, c.reltuples::bigint FROM pg_stat_user_tables s "
                        "JOIN pg_class c ON c.oid = s.relid WHERE s.relname = 'feedback_events'").one()
                line |= {"autoanalyzed": analyzed, "reltuples": reltuples}
            print(json.dumps(line), flush=True)
            stats.clear()
            t_window = time.perf_counter()
    if postgres:
        probe = [e["event_id"] for e in _events(500, seed=99)]
        with engine.connect() as conn:
            if "pg_stat_statements" in preloaded:
                top = conn.exec_driver_sql(
                    "SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3), rows, "
                    "left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_statements "
                    "ORDER BY total_exec_time DESC LIMIT 6").all()
                for row in top:
                    print(json.dumps({"pg_stat_statements": {"calls": row[0], "total_ms": float(row[1]),
                                                             "mean_ms": float(row[2]), "rows": row[3],
                                                             "query": row[4]}}))
            marks = ", ".join(["%s"] * len(probe))
            plan = conn.exec_driver_sql(
                f"EXPLAIN ANALYZE SELECT event_id, user_id, item_id, kind, value FROM feedback_events "
                f"WHERE event_id IN ({marks})", tuple(probe)).scalars().all()
            print(json.dumps({"replay_lookup_plan": [plan[0][:120]] + [p for p in plan if "Execution" in p or
                                                                       "Removed" in p]}))
    engine.dispose()
    _drop(args.engine, url)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
