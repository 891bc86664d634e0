"""Batch generation on Ray against the in-process path, and the figures that bound a cluster run.

    .venv/bin/python -m bench.bench_batch                         # 500 generic covers, tiny models, CPU, 64 px art
    .venv/bin/python -m bench.bench_batch --kinds covers,captions --items 500
    scripts/with_postgres.sh .venv/bin/python -m bench.bench_batch --kinds ''   # only blob writes/s and inserts/s
    .venv/bin/python -m bench.bench_batch --cover-model DIR --cover-size 512 --device cuda --actors 8   # a GPU box

The same 500 items (a synthetic catalogue) go through `app.batch.make_assets` three ways, each into a fresh
database and blob store: in process (no Ray: one generator, the batches one after another), on a local Ray with
one actor (the same compute as in process: the overhead of Ray Data and its actor), and on a local Ray with
--actors actors (default 2: this machine's cores). Ray's start-up (`ray.init` of a local cluster) is timed apart
from the run; the run includes starting the actors and loading the model once per actor, as the in-process run
includes its one load. overhead = run(Ray, 1 actor) / run(in process) - 1.

Then what bounds a bigger run: per-actor throughput (items/s of one actor, from the 1-actor run), blob writes/s
(`BlobStore.put` of cover-sized JPEGs into a local directory store) and database inserts/s (`store.record_asset`
rows in transactions of --batch-size, SQLite and, when VITRINE_TEST_PG_URL is set, PostgreSQL). Prints one JSON
object per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path


def _emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def synthetic_catalogue(n_items: int, n_users: int = 50, seed: int = 0):
    """A catalogue of `n_items` items in 6 genres and `n_users` users who each like one genre."""
    import numpy as np
    import pandas as pd

    from recommenders.data import Dataset

    genres = ["Comedy", "Drama", "Horror", "Sci-Fi", "Western", "Musical"]
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({
        "item_id": [str(i) for i in range(1, n_items + 1)],
        "title": [f"{genres[i % 6]} Story {i}" for i in range(1, n_items + 1)],
        "text": [f"A {genres[i % 6].lower()} story, number {i}." for i in range(1, n_items + 1)],
        "genres": [[genres[i % 6]] for i in range(1, n_items + 1)],
        "year": pd.array([1950 + i % 70 for i in range(1, n_items + 1)], dtype="Int64"),
        "image": [None] * n_items,
    })
    users = pd.DataFrame({"user_id": [str(u) for u in range(1, n_users + 1)]})
    rows = []
    for u in range(1, n_users + 1):
        mine = [i for i in range(1, n_items + 1) if i % 6 == u % 6]
        for t, i in enumerate(rng.choice(mine, size=min(20, len(mine)), replace=False)):
            rows.append((str(u), str(i), 5.0, 1_000_000 + 100 * u + t))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Dataset("bench", items, users, interactions)


def _settings(root: Path, models: dict[str, str], device: str):
    from app.settings import Settings

    root.mkdir(parents=True, exist_ok=True)
    return Settings(data_dir=root, database_url=f"sqlite:///{root / 'vitrine.db'}", dataset="bench",
                    cover_model=models["sd"], caption_model=models["lm"], image_model=None, device=device)


def _blob_writes(root: Path, n: int) -> dict:
    import io

    from PIL import Image

    from generation.blobs import BlobStore

    store = BlobStore(root / "blobs")
    buf = io.BytesIO()
    Image.effect_noise((512, 768), 40).convert("RGB").save(buf, format="JPEG", quality=95, subsampling=0)
    data = buf.getvalue()  # a noisy 512x768 poster: an upper bound of a cover's size
    t0 = time.perf_counter()
    for i in range(n):
        store.put(f"covers/{i % 256:02x}/{uuid.uuid4().hex}.jpg", data)
    elapsed = time.perf_counter() - t0
    return {"writes": n, "bytes_each": len(data), "seconds": round(elapsed, 3), "writes_per_s": round(n / elapsed)}


def _db_inserts(url: str, dataset, n: int, batch: int) -> dict:
    from annotation import store
    from annotation.db import make_engine, make_session_factory, upgrade

    upgrade(url)
    engine = make_engine(url)
    Session = make_session_factory(engine)
    with Session() as s, s.begin():
        store.sync_items(s, dataset.items)
        store.ensure_user(s, "1")
    rows = [{"kind": "caption", "item_id": str(1 + i % len(dataset.items)), "user_id": "1", "generator": "bench",
             "fallback": False, "prompt": "p" * 200, "negative_prompt": "", "seed": 0, "params": {"alpha": 0.5},
             "text": "a caption " * 10, "content_hash": uuid.uuid4().hex * 2, "latency_ms": 1.0,
             "personalized": True, "event_id": str(uuid.uuid4())} for i in range(n)]
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        with Session() as s, s.begin():
            for row in rows[start : start + batch]:
                store.record_asset(s, row)
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return {"rows": n, "batch": batch, "seconds": round(elapsed, 3), "inserts_per_s": round(n / elapsed)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--kinds", default="covers", help="comma list of covers,captions")
    parser.add_argument("--actors", type=int, default=2, help="actors of the scale-out run (default 2)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cover-size", type=int, default=64, help="cover art pixels (the tiny model's 64)")
    parser.add_argument("--cover-model", default=None, help="a diffusers directory (default: the tiny test model)")
    parser.add_argument("--caption-model", default=None, help="an instruct LM directory (default: the tiny one)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (Ray actors hold a GPU each on cuda)")
    parser.add_argument("--blob-writes", type=int, default=2000)
    parser.add_argument("--db-rows", type=int, default=4000)
    parser.add_argument("--pg-url", default=os.environ.get("VITRINE_TEST_PG_URL"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from app.batch import RayOptions, make_assets
    from generation.testing import build_tiny_lm, build_tiny_sd

    _emit(bench="machine", python=platform.python_version(), cpus=os.cpu_count(),
          load_avg=[round(x, 2) for x in os.getloadavg()])
    work = Path(tempfile.mkdtemp(prefix="vitrine-bench-batch-"))
    try:
        models = {"sd": args.cover_model or str(build_tiny_sd(work / "sd")),
                  "lm": args.caption_model or str(build_tiny_lm(work / "lm"))}
        dataset = synthetic_catalogue(args.items)
        for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
            runs = {}
            for name, options in (("in_process", RayOptions(in_process=True)),
                                  ("ray_1_actor", RayOptions(actors=1, num_cpus=os.cpu_count())),
                                  (f"ray_{args.actors}_actors", RayOptions(actors=args.actors, num_cpus=os.cpu_count()))):
                settings = _settings(work / f"{kind}-{name}", models, args.device)
                summary = make_assets(settings, kind, "generic", dataset=dataset, batch_size=args.batch_size,
                                      cover_size=args.cover_size, options=options)
                assert summary["made"] == args.items, summary
                runs[name] = summary
                steady = (args.items - args.batch_size) / (summary["run_s"] - summary["first_batch_s"])
                summary["steady_items_per_s"] = steady
                _emit(bench=f"batch.{kind}.{name}", items=args.items, run_s=summary["run_s"],
                      ray_start_s=summary.get("ray_start_s"), first_batch_s=summary["first_batch_s"],
                      items_per_s=round(args.items / summary["run_s"], 2), steady_items_per_s=round(steady, 2),
                      actors=summary.get("actors", 1), cache_hits=summary["cache_hits"],
                      load_avg=round(os.getloadavg()[0], 2))
            base, one = runs["in_process"], runs["ray_1_actor"]
            many = runs[f"ray_{args.actors}_actors"]
            _emit(bench=f"batch.{kind}.ratio", actors=args.actors,
                  # after the first batch (actors up, models loaded): what a long run costs per item
                  steady_overhead_pct=round(100 * (base["steady_items_per_s"] / one["steady_items_per_s"] - 1), 1),
                  # the whole run, start-up of the actors and model loads included (ray.init not)
                  run_overhead_pct=round(100 * (one["run_s"] / base["run_s"] - 1), 1),
                  fixed_s={"ray_init": one.get("ray_start_s"),
                           "actor_up_extra": round(one["first_batch_s"] - base["first_batch_s"], 3)},
                  speedup_with_actors=round(base["run_s"] / many["run_s"], 2),
                  steady_speedup_with_actors=round(many["steady_items_per_s"] / base["steady_items_per_s"], 2),
                  per_actor_items_per_s=round(one["steady_items_per_s"], 2))
        _emit(bench="batch.blob_writes", **_blob_writes(work / "blob-bench", args.blob_writes))
        _emit(bench="batch.db_inserts.sqlite",
              **_db_inserts(f"sqlite:///{work / 'inserts.db'}", dataset, args.db_rows, args.batch_size))
        if args.pg_url:
            from sqlalchemy.engine import make_url

            import psycopg

            name = f"vitrine_bench_batch_{uuid.uuid4().hex[:6]}"
            admin = make_url(args.pg_url).set(drivername="postgresql", database="postgres")
            admin = admin.render_as_string(hide_password=False)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            try:
                url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
                _emit(bench="batch.db_inserts.postgresql", **_db_inserts(url, dataset, args.db_rows, args.batch_size))
            finally:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _emit(bench="machine_after", load_avg=[round(x, 2) for x in os.getloadavg()])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
