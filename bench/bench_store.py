"""Store benchmarks: ingest rates and dashboard-style aggregates over 1,000,000 synthetic events.

    python -m bench.bench_store                          # SQLite, plus PostgreSQL when VITRINE_TEST_PG_URL is set
    scripts/with_postgres.sh .venv/bin/python -m bench.bench_store
    python -m bench.bench_store --engines sqlite --events 20000 --aggregate-events 100000   # quicker

Measures, per engine:
  single_txn     one writer, one feedback event per transaction (store.record_feedback), events/s
  batched        one writer, store.record_feedback_batch of --batch events per transaction, events/s
  concurrent     8 writer processes, one event per transaction, total events/s (all committed rows checked)
  populate       annotation.synthetic.populate of --aggregate-events events (bulk load), events/s
  aggregates     on that DB: feedback counts per day x kind (SQL), click-through per model (SQL),
                 feedback_frame + interactions_frame loads, seconds each and in total
Targets (docs): batched ingest > 20,000 events/s on SQLite; aggregates over 1M events < 2 s.
Prints one JSON object per measurement.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

N_USERS, N_ITEMS = 943, 1682


def _emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def _fresh_url(engine: str, workdir: Path, pg_url: str | None, tag: str) -> str:
    from annotation.db import upgrade

    if engine == "sqlite":
        url = f"sqlite:///{workdir / f'{tag}.db'}"
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        name = f"vitrine_bench_{tag}_{uuid.uuid4().hex[:6]}"
        admin = make_url(pg_url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


def _drop(engine: str, url: str) -> None:
    if engine != "postgresql":
        return
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


def _catalog(Session) -> None:
    import pandas as pd

    from annotation import store

    with Session() as s, s.begin():
        store.sync_items(s, pd.DataFrame({"item_id": [str(i) for i in range(1, N_ITEMS + 1)],
                                          "title": [f"Item {i}" for i in range(1, N_ITEMS + 1)]}))
        for user in range(1, N_USERS + 1):
            store.ensure_user(s, str(user))


def _events(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    kinds = ("click", "like", "dislike", "skip")
    return [{"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "user_id": str(rng.randint(1, N_USERS)),
             "item_id": str(rng.randint(1, N_ITEMS)), "kind": rng.choice(kinds)} for _ in range(n)]


def _worker(url: str, events: list[dict], start_at: float, queue) -> None:
    """One writer process: one event per transaction; reports (events, seconds)."""
    from annotation import store
    from annotation.db import make_engine, make_session_factory

    engine = make_engine(url)
    Session = make_session_factory(engine)
    while time.time() < start_at:
        time.sleep(0.005)
    t0 = time.perf_counter()
    for event in events:
        with Session() as s, s.begin():
            store.record_feedback(s, **event)
    queue.put((len(events), t0, time.perf_counter()))
    engine.dispose()


def bench_engine(engine_name: str, url_of, args) -> None:
    common = {"engine": engine_name}
    if not args.skip_ingest:
        _ingest(engine_name, url_of, args, common)
    _aggregates(engine_name, url_of, args, common)


def _ingest(engine_name: str, url_of, args, common: dict) -> None:
    from sqlalchemy import func, select

    from annotation import store
    from annotation.db import make_engine, make_session_factory
    from annotation.models import FeedbackEvent

    # 1. single writer, one event per transaction
    url = url_of("ingest")
    engine = make_engine(url)
    Session = make_session_factory(engine)
    _catalog(Session)
    events = _events(args.events, seed=1)
    t0 = time.perf_counter()
    for event in events:
        with Session() as s, s.begin():
            store.record_feedback(s, **event)
    elapsed = time.perf_counter() - t0
    _emit(**common, bench="single_txn", events=len(events), seconds=round(elapsed, 3),
          events_per_s=round(len(events) / elapsed))
    # 2. single writer, batched
    events = _events(args.batched_events, seed=2)
    t0 = time.perf_counter()
    for start in range(0, len(events), args.batch):
        with Session() as s, s.begin():
            store.record_feedback_batch(s, events[start : start + args.batch])
    elapsed = time.perf_counter() - t0
    _emit(**common, bench="batched", batch=args.batch, events=len(events), seconds=round(elapsed, 3),
          events_per_s=round(len(events) / elapsed))
    # 3. concurrent writers (processes), one event per transaction
    per = args.events // args.writers
    chunks = [_events(per, seed=100 + w) for w in range(args.writers)]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 3.0 + 0.5 * args.writers  # let every process import and connect first
    procs = [ctx.Process(target=_worker, args=(url, chunk, start_at, queue)) for chunk in chunks]
    for p in procs:
        p.start()
    results = [queue.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    begin, end = min(r[1] for r in results), max(r[2] for r in results)
    total = sum(r[0] for r in results)
    with Session() as s:
        stored = s.scalar(select(func.count()).select_from(FeedbackEvent))
    expected = args.events + args.batched_events + per * args.writers
    _emit(**common, bench="concurrent", writers=args.writers, events=total, seconds=round(end - begin, 3),
          events_per_s=round(total / (end - begin)), rows_ok=stored == expected)
    engine.dispose()
    _drop(engine_name, url)


def _aggregates(engine_name: str, url_of, args, common: dict) -> None:
    from annotation import store
    from annotation.db import make_engine, make_session_factory
    from annotation.synthetic import populate

    # 4. aggregates over N synthetic events

    url = url_of("aggregates")
    engine = make_engine(url)
    t0 = time.perf_counter()
    counts = populate(engine, args.aggregate_events, seed=0)
    elapsed = time.perf_counter() - t0
    _emit(**common, bench="populate", events=counts["feedback_events"], impressions=counts["impressions"],
          seconds=round(elapsed, 2), events_per_s=round(counts["feedback_events"] / elapsed))
    if engine_name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    Read = make_session_factory(engine, read_only=True)
    timings = {}
    for name, fn in [
        ("daily_counts", lambda s: store.feedback_counts(s, by="day")),
        ("model_ctr", lambda s: store.model_feedback_rates(s)),
        ("daily_counts_last_7d", lambda s: store.feedback_counts(s, by="day", since=_days_ago(s, 7))),
        ("feedback_frame", lambda s: store.feedback_frame(s)),
        ("interactions_frame", lambda s: store.interactions_frame(s)),
    ]:
        with Read() as s:
            t0 = time.perf_counter()
            frame = fn(s)
            timings[name] = (round(time.perf_counter() - t0, 3), len(frame))
    sql_total = sum(timings[k][0] for k in ("daily_counts", "model_ctr"))
    _emit(**common, bench="aggregates", events=counts["feedback_events"],
          seconds={k: v[0] for k, v in timings.items()}, rows={k: v[1] for k, v in timings.items()},
          sql_aggregates_total_s=round(sql_total, 3))
    engine.dispose()
    _drop(engine_name, url)


def _days_ago(session, days: int):
    import datetime as dt

    from sqlalchemy import func, select

    from annotation.models import FeedbackEvent

    latest = session.scalar(select(func.max(FeedbackEvent.created_at)))
    return latest - dt.timedelta(days=days)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_store", description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default=None, help="comma list of sqlite,postgresql (default: both if PG is set)")
    parser.add_argument("--pg-url", default=os.environ.get("VITRINE_TEST_PG_URL"))
    parser.add_argument("--events", type=int, default=4_000, help="events for the single and concurrent runs")
    parser.add_argument("--batched-events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--aggregate-events", type=int, default=1_000_000)
    parser.add_argument("--skip-ingest", action="store_true", help="only the bulk load and the aggregates")
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    engines = args.engines.split(",") if args.engines else ["sqlite"] + (["postgresql"] if args.pg_url else [])
    if "postgresql" in engines and not args.pg_url:
        parser.error("--engines postgresql needs --pg-url or VITRINE_TEST_PG_URL (run under scripts/with_postgres.sh)")
    _emit(bench="machine", python=platform.python_version(), cpus=os.cpu_count(),
          load_avg=[round(x, 2) for x in os.getloadavg()])
    workdir = Path(tempfile.mkdtemp(prefix="vitrine-bench-store-"))
    try:
        for engine_name in engines:
            bench_engine(engine_name, lambda tag, e=engine_name: _fresh_url(e, workdir, args.pg_url, tag), args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _emit(bench="machine_after", load_avg=[round(x, 2) for x in os.getloadavg()])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
