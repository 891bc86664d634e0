"""What the durable event sink costs the requests: /feedback (and /recommend) latency at 20 users acting once a
second, without a sink and with a 10 s sync to a local directory, in alternating rounds (A B A B ...).

    .venv/bin/python -m bench.bench_sync                          # 2 rounds of 60 s each way, ml-100k, fallbacks on
    .venv/bin/python -m bench.bench_sync --rounds 1 --seconds 30

Each run is `bench.bench_app`'s load run (`python -m app` served, N gradio_client users: /recommend, pause,
/feedback like, pause) on a fresh database (the model and feature caches are kept), the sink run with
VITRINE_SYNC_URL=<fresh dir> VITRINE_SYNC_EVERY=10. Prints one JSON line per run and a summary line: the p95s of
each arm and how many rows were shipped (shards in the sink).

    .venv/bin/python -m bench.bench_sync --cost-only             # in-process cost of one sync, no load

--cost-only: on a copy of the data dir's database (the last run's), the CPU and wall time of the first sync (a
new process resumes: reads every row, ships what the sink lacks), of a sync with nothing new, and of a sync of
the last 10 s of that run's traffic (its newest 1200 assets, 80 impressions, 80 feedback events).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.bench_app import bench_load


def _fresh_db(data_dir: Path) -> None:
    for path in data_dir.glob("vitrine.db*"):
        path.unlink()


def _shipped(sink: Path) -> dict[str, int]:
    import pyarrow.parquet as pq

    out: dict[str, int] = {}
    for shard in sink.glob("*/*.parquet"):
        out[shard.parent.name] = out.get(shard.parent.name, 0) + pq.read_metadata(shard).num_rows
    return out


def sync_cost(db_path: Path) -> dict:
    import time

    from annotation import sync
    from annotation.db import make_engine, make_session_factory

    work = Path(tempfile.mkdtemp(prefix="vitrine-bench-cost-"))
    try:
        shutil.copy(db_path, work / "copy.db")
        engine = make_engine(f"sqlite:///{work / 'copy.db'}")
        sessions, state, sink = make_session_factory(engine, read_only=True), sync.SyncState(), str(work / "sink")

        def timed() -> dict:
            wall, cpu = time.perf_counter(), time.process_time()
            shipped = sync.sync_once(sessions, sink, state).shipped
            return {"wall_ms": round((time.perf_counter() - wall) * 1000, 1),
                    "cpu_ms": round((time.process_time() - cpu) * 1000, 1), "rows": sum(shipped.values())}

        out = {"bench": "sync.cost.inprocess", "resume": timed(), "noop": [timed() for _ in range(5)]}
        for table, n in (("assets", 1200), ("impressions", 80), ("feedback", 80)):
            state.cursors[table].high -= n
        out["batch_10s"] = timed()
        engine.dispose()
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_sync", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("VITRINE_BENCH_DATA_DIR",
                                                                             "/tmp/vitrine-bench-app")))
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--every", type=int, default=10, help="VITRINE_SYNC_EVERY of the sink arm")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--cost-only", action="store_true", help="only the in-process cost of one sync (see above)")
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.cost_only:
        print(json.dumps(sync_cost(args.data_dir / "vitrine.db")), flush=True)
        return 0
    for name in ("VITRINE_SYNC_URL", "VITRINE_SYNC_EVERY", "DATABASE_URL", "SPACE_ID"):
        os.environ.pop(name, None)
    arms: dict[str, list[dict]] = {"no sink": [], "sink": []}
    failed = False
    for round_ in range(args.rounds):
        for arm in arms:
            _fresh_db(args.data_dir)
            sink = Path(tempfile.mkdtemp(prefix="vitrine-bench-sink-"))
            if arm == "sink":
                os.environ.update(VITRINE_SYNC_URL=str(sink), VITRINE_SYNC_EVERY=str(args.every))
            try:
                result = bench_load(args.data_dir, args.users, args.seconds, args.timeout)
            finally:
                os.environ.pop("VITRINE_SYNC_URL", None)
                os.environ.pop("VITRINE_SYNC_EVERY", None)
            result.update(bench="sync.cost", arm=arm, round=round_, sync_every_s=args.every if arm == "sink" else None,
                          shipped_rows=_shipped(sink) if arm == "sink" else None)
            shutil.rmtree(sink, ignore_errors=True)
            print(json.dumps(result), flush=True)
            arms[arm].append(result)
            failed |= result["errors"] > 0
    summary = {"bench": "sync.cost.summary", "users": args.users, "seconds": args.seconds, "rounds": args.rounds}
    for arm, runs in arms.items():
        summary[arm] = {"feedback_p95_ms": [r["feedback"]["p95_ms"] for r in runs],
                        "recommend_p95_ms": [r["recommend"]["p95_ms"] for r in runs],
                        "errors": sum(r["errors"] for r in runs)}
    print(json.dumps(summary), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
