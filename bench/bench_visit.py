"""What learning within a visit costs a page: the second page's ranking with and without the visit's skips.

    python -m bench.bench_visit                                          # ml-100k, the app's default model
    python -m bench.bench_visit --dataset .vitrine/synth/1m --models-dir DIR --users 200   # 1M: sparse-ease-text

For `--users` dataset users (seeded): the first page is their top 10; the second page is ranked as the app ranks
it (`recommend_with_feedback` with the first page excluded and two of its items liked), once as the model alone
and once with the other eight as skipped (`recommenders.visit`). Printed as JSON lines: the model's fit (or
load, with `--models-dir`) seconds, the visit index's build seconds and the RSS it adds, and p50 / p95 / p99 ms
of both second pages. Threads: torch 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _emit(**row) -> None:
    print(json.dumps(row, default=str), flush=True)


def _percentiles(ms: list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_visit", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".vitrine")
    parser.add_argument("--model", default=None, help="default: what the catalogue's size calls for, with the "
                        "parameters the app gives it")
    parser.add_argument("--models-dir", type=Path, default=None, help="load MODEL from here when saved, else fit "
                        "and save it there")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    from app.serving.startup import sized_default
    from recommenders.data import load_dataset
    from recommenders.features import item_features
    from recommenders.models import FEATURE_MODELS, load_model
    from recommenders.training import train_model

    torch.set_num_threads(1)
    ds = load_dataset(args.dataset, args.data_dir)
    name = args.model
    features = None
    if name is None or name in FEATURE_MODELS:
        features = item_features(ds, args.data_dir / "features")
    sized, params = sized_default(ds, features or {}, [])  # what the app serves for this catalogue, and how
    if name is None:
        name = sized
    params = params if name == sized else {}
    saved = args.models_dir / name if args.models_dir else None
    t0 = time.perf_counter()
    if saved is not None and (saved / "params.json").is_file():
        model, how = load_model(saved), "loaded"
    else:
        model, how = train_model(ds, name, features=features, **params), "fitted"
        if saved is not None:
            model.save(saved)
    _emit(dataset=args.dataset, model=name, items=len(model.item_ids), users=len(model.user_ids),
          **{f"{how}_s": round(time.perf_counter() - t0, 2)}, rss_mb=round(_rss_mb(), 1))
    before = _rss_mb()
    t0 = time.perf_counter()
    model.visit_index()
    _emit(visit_index_s=round(time.perf_counter() - t0, 3), rss_before_mb=round(before, 1),
          rss_after_mb=round(_rss_mb(), 1))
    rng = np.random.default_rng(args.seed)
    users = rng.choice(len(model.user_ids), size=min(args.users, len(model.user_ids)), replace=False)
    plain, visit = [], []
    for u in users:
        uid = model.user_ids[int(u)]
        first, _ = model.recommend(uid, 10)
        liked, skipped = first[:2], first[2:]
        t0 = time.perf_counter()
        model.recommend_with_feedback(uid, liked=liked, k=10, exclude=first)
        plain.append(1000 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        model.recommend_with_feedback(uid, liked=liked, k=10, exclude=first, skipped=skipped)
        visit.append(1000 * (time.perf_counter() - t0))
    _emit(second_page="model alone", calls=len(plain), **_percentiles(plain))
    _emit(second_page="with the visit's skips", calls=len(visit), **_percentiles(visit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
