"""Retraining cost: one gated retrain of the served model family on ml-100k + 100,000 logged events.

    python -m bench.bench_loop                              # ease, 100k events
    python -m bench.bench_loop --models ease,ease-text      # ease-text needs the MiniLM text features (cached)

The events (seeded): users drawn from ml-100k's users, items by ml-100k popularity, kinds like 35%, click
35%, dislike 10%, rating 10% (1-5), skip 5%, dwell 5%, spread over 30 days; written with
store.record_feedback_batch into a fresh SQLite store (not timed as part of the retrain). Version 1 is
registered first (trained on the dataset alone, not timed). Then `app.learning.retrain.retrain` is timed end to end:
read the events, map them to signal, take the recent holdout, train the candidate on dataset + signal, fit
the recipe on the offline split and evaluate valid/test, evaluate both models on the holdout, save the
artifact and register. Target (issue 11): under 10 s for the EASE family on this machine.
Prints one JSON object per model: wall seconds and CPU seconds of this process (on a shared machine the
wall time includes waiting for a core).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

KINDS = (("like", 0.35), ("click", 0.35), ("dislike", 0.10), ("rating", 0.10), ("skip", 0.05), ("dwell", 0.05))


def synthetic_events(dataset, n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    ids = random.Random(seed)
    users = dataset.users["user_id"].astype(str).to_numpy()
    pop = dataset.interactions["item_id"].astype(str).value_counts()
    items, p = pop.index.to_numpy(), (pop / pop.sum()).to_numpy()
    kinds = rng.choice([k for k, _ in KINDS], size=n, p=[w for _, w in KINDS])
    start = dt.datetime(2026, 10, 1)
    seconds = np.sort(rng.integers(0, 30 * 86_400, size=n))
    out = []
    for n_, (u, i, kind, s) in enumerate(zip(rng.choice(users, n), rng.choice(items, n, p=p), kinds, seconds)):
        value = float(rng.integers(1, 6)) if kind == "rating" else float(rng.integers(1_000, 120_000)) \
            if kind == "dwell" else None
        out.append({"event_id": str(uuid.UUID(int=ids.getrandbits(128), version=4)), "user_id": str(u),
                    "item_id": str(i), "kind": str(kind), "value": value,
                    "at": start + dt.timedelta(seconds=int(s))})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_loop", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--models", default="ease")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "vitrine-bench-loop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from annotation import store
    from annotation.db import make_engine, make_session_factory, upgrade
    from app.learning import retrain as learning
    from recommenders.data import load_dataset

    dataset = load_dataset("ml-100k", args.data_dir)
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        features = None
        if name == "ease-text":
            from recommenders.features import item_features

            features = item_features(dataset, cache_dir=args.data_dir / "features")
        with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'loop.db'}"
            upgrade(url)
            engine = make_engine(url)
            Session = make_session_factory(engine)
            t0 = time.perf_counter()
            with Session() as s, s.begin():
                store.sync_items(s, dataset.items[["item_id", "title", "year", "genres"]])
                for u in dataset.users["user_id"].astype(str):
                    store.ensure_user(s, u, kind="dataset")
            events = synthetic_events(dataset, args.events, args.seed)
            for start in range(0, len(events), 20_000):
                with Session() as s, s.begin():
                    store.record_feedback_batch(s, events[start: start + 20_000])
            ingest_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            learning.bootstrap(Session, dataset, name, Path(tmp) / "artifacts", features=features)
            bootstrap_s = time.perf_counter() - t0
            t0, c0 = time.perf_counter(), time.process_time()
            result = learning.retrain(Session, dataset, name, Path(tmp) / "artifacts", features=features)
            total, cpu = time.perf_counter() - t0, time.process_time() - c0
            engine.dispose()
        print(json.dumps({"bench": "retrain", "model": name, "events": args.events, "seconds": round(total, 2), "cpu_s": round(cpu, 2),
                          "fit_s": round(result.seconds["fit"], 2), "evaluate_s": round(result.seconds["evaluate"], 2),
                          "promoted": result.promoted,
                          "reason": result.reason, "ingest_s": round(ingest_s, 1),
                          "bootstrap_s": round(bootstrap_s, 2), "target_s": 10,
                          "machine": f"{platform.machine()} {platform.processor() or ''}".strip()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
