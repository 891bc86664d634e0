"""Dashboard benchmarks: analytics over a million events, and page render time on a million-event database.

    .venv/bin/python -m bench.bench_dashboard                       # both parts, 1,000,000 events
    .venv/bin/python -m bench.bench_dashboard --only analytics --events 1000000
    .venv/bin/python -m bench.bench_dashboard --only pages --db /tmp/bench-1M.db

analytics: builds synthetic frames in memory (1M feedback events on 250k slates of 6 models, 20% of them
interleaved, each event knowing who placed its item; 200k preference labels) and times the dashboard-style
aggregates of `annotation.analytics` (daily activity with distinct users, per-model click/like rates with
Wilson intervals, interleaving credit and sign tests, per-annotator choice distribution, pairwise win-rate
matrix, Bradley-Terry with a 100-round bootstrap). Target: all of them together under 2 s.

pages: fills a SQLite database with `annotation.synthetic.populate` (1M feedback events and everything around
them; reused when the file already holds them), then runs every dashboard page headless with Streamlit's
`AppTest` (the script's full run: settings, cached query, filters, figures). The first page pays the uncached
query; every page is then timed with a warm cache. Also timed: the uncached `load_frames` and the cached
query alone (`st.cache_data` hit). Targets: page render < 3 s, cached query < 0.5 s.

Prints one JSON line per figure; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"analytics_total_s": 2.0, "page_s": 3.0, "cached_query_s": 0.5}
PAGES = ("Overview", "Recommenders", "Generation", "Annotators", "Data")


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def synthetic_frames(n_events: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Frames shaped like the store's, with vectorised random content (no database)."""
    rng = np.random.default_rng(seed)
    n_imp = max(1, n_events // 4)
    models = np.array(["ease", "bpr", "lightgcn", "itemknn", "pop", "vbpr"])
    start = pd.Timestamp("2026-01-01")
    imp_model = models[rng.integers(0, len(models), n_imp)]
    interleaved = rng.random(n_imp) < 0.2
    model_b = np.where(interleaved, np.where(imp_model == "pop", "ease", "pop"), None)
    imp_items = rng.integers(1, 1683, (n_imp, 10)).astype(str)
    impressions = pd.DataFrame({
        "impression_id": np.arange(n_imp), "user_id": rng.integers(1, 944, n_imp).astype(str),
        "model": imp_model, "model_b": model_b, "item_ids": list(imp_items),
        "n_items": 10, "created_at": start + pd.to_timedelta(rng.integers(0, 30 * 86400, n_imp), unit="s"),
    })
    which = rng.integers(0, n_imp, n_events)
    kinds = rng.choice(["click", "like", "skip", "rating"], n_events, p=[0.6, 0.2, 0.15, 0.05])
    position = rng.integers(0, 10, n_events)
    team = np.where(rng.random(n_events) < 0.5, imp_model[which], model_b[which])  # who placed it, if interleaved
    feedback = pd.DataFrame({
        "impression_id": which, "user_id": impressions["user_id"].to_numpy()[which],
        "contributor": np.where(interleaved[which], team, None),
        "item_id": imp_items[which, position], "kind": kinds,
        "created_at": impressions["created_at"].to_numpy()[which] + pd.to_timedelta(rng.integers(1, 600, n_events),
                                                                                      unit="s"),
    })
    n_labels = max(1, n_events // 5)
    gens = np.array(["sd-turbo", "sdxl", "fallback", "flux"])
    a, b = rng.integers(0, 4, n_labels), rng.integers(0, 4, n_labels)
    b = np.where(a == b, (b + 1) % 4, b)
    labels = pd.DataFrame({
        "a": gens[a], "b": gens[b], "winner": rng.choice(["A", "B", "tie", "skip"], n_labels, p=[0.45, 0.4, 0.1, 0.05]),
        "annotator": rng.choice([f"ann{i}" for i in range(8)], n_labels),
        "created_at": start + pd.to_timedelta(rng.integers(0, 30 * 86400, n_labels), unit="s"),
    })
    return {"impressions": impressions, "feedback": feedback, "labels": labels}


def bench_analytics(n_events: int) -> bool:
    from annotation import analytics as an

    t = time.perf_counter()
    frames = synthetic_frames(n_events)
    emit(bench="dashboard.analytics.build", events=n_events, seconds=round(time.perf_counter() - t, 2))
    imp, fb, labels = frames["impressions"], frames["feedback"], frames["labels"]
    single, inter = imp[imp["model_b"].isna()], imp[imp["model_b"].notna()]
    steps = {
        "activity_over_time": lambda: an.activity_over_time(
            {"feedback": fb["created_at"], "slates": imp["created_at"]},
            distinct={"users": pd.DataFrame({"time": fb["created_at"], "id": fb["user_id"]})}),
        "model_rates": lambda: an.model_rates(single, fb),
        "interleaving": lambda: an.interleaving_summary(an.interleaving_credit(inter, fb)),
        "choice_distribution": lambda: an.choice_distribution(labels.rename(columns={"winner": "label"})),
        "win_rate_matrix": lambda: an.win_rate_matrix(labels),
        "bootstrap_bradley_terry_100": lambda: an.bootstrap_bradley_terry(labels, rounds=100),
    }
    import scipy.stats  # noqa: F401  (imports are paid once per process, not per aggregate)

    an.wilson_interval([1], [2])  # imports (statsmodels, scipy) outside the timings
    an.bradley_terry(labels.head(100))
    total = cpu_total = 0.0
    for name, step in steps.items():
        t, c = time.perf_counter(), time.process_time()
        step()
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        total += seconds
        cpu_total += cpu
        emit(bench=f"dashboard.analytics.{name}", events=n_events, seconds=round(seconds, 3), cpu_s=round(cpu, 3))
    ok = total < TARGETS["analytics_total_s"]
    # cpu_s: this process's CPU time, less exposed than wall time to other jobs on a shared machine
    emit(bench="dashboard.analytics.total", events=n_events, seconds=round(total, 3), cpu_s=round(cpu_total, 3),
         target_s=TARGETS["analytics_total_s"], ok=ok, load=_load())
    return ok


def ensure_db(path: Path, n_events: int) -> str:
    from sqlalchemy import func, select

    from annotation.db import make_engine, upgrade
    from annotation.models import FeedbackEvent
    from annotation.synthetic import populate

    url = f"sqlite:///{path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(FeedbackEvent)).scalar_one()
    if have < n_events * 0.95:
        t = time.perf_counter()
        counts = populate(engine, n_events=n_events - have, seed=0)
        emit(bench="dashboard.pages.populate", seconds=round(time.perf_counter() - t, 1), rows=counts)
    with engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(FeedbackEvent)).scalar_one()
    emit(bench="dashboard.pages.db", url=url, feedback_events=int(have))
    engine.dispose()
    return url


def bench_pages(db: Path, n_events: int, repeats: int) -> bool:
    os.environ["DATABASE_URL"] = url = ensure_db(db, n_events)
    os.environ.pop("VITRINE_DASHBOARD_PASSWORD", None)
    os.environ["VITRINE_DASHBOARD_OPEN"] = "1"
    from streamlit.testing.v1 import AppTest

    from annotation.db import make_engine
    from app.dashboard.data import load_frames

    engine = make_engine(url)
    t = time.perf_counter()
    load_frames(engine)
    emit(bench="dashboard.pages.load_frames_uncached", seconds=round(time.perf_counter() - t, 2), load=_load())
    engine.dispose()

    script = str(ROOT / "app" / "dashboard.py")

    def run(page: str) -> float:
        at = AppTest.from_file(script, default_timeout=600)
        at.query_params["page"] = page
        t = time.perf_counter()
        at.run()
        seconds = time.perf_counter() - t
        if at.exception:
            raise RuntimeError(f"page {page} raised: {at.exception[0].value}")
        return seconds

    emit(bench="dashboard.pages.first_page_cold_cache", page=PAGES[0], seconds=round(run(PAGES[0]), 2), load=_load())
    ok = True
    for page in PAGES:
        times = [run(page) for _ in range(repeats)]
        median = float(np.median(times))
        page_ok = median < TARGETS["page_s"]
        ok &= page_ok
        emit(bench="dashboard.pages.render_warm_cache", page=page, median_s=round(median, 2),
             runs=[round(x, 2) for x in times], target_s=TARGETS["page_s"], ok=page_ok, load=_load())

    # The cached query alone: what `st.cache_data` costs on a hit (unpickling a million rows).
    sys.path.insert(0, str(ROOT))
    import streamlit as st

    @st.cache_data(ttl=60)
    def cached(u: str):
        return load_frames(make_engine(u))

    cached(url)
    hits = []
    for _ in range(max(3, repeats)):
        t = time.perf_counter()
        cached(url)
        hits.append(time.perf_counter() - t)
    median = float(np.median(hits))
    hit_ok = median < TARGETS["cached_query_s"]
    emit(bench="dashboard.pages.cached_query_hit", median_s=round(median, 3), runs=[round(x, 3) for x in hits],
         target_s=TARGETS["cached_query_s"], ok=hit_ok, load=_load())
    return ok and hit_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["analytics", "pages"], default=None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=ROOT / ".vitrine" / "bench-dashboard.db",
                        help="SQLite file for the pages benchmark (filled once, then reused)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.events < 1000:
        parser.error(f"--events must be at least 1000, got {args.events}")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    ok = True
    if args.only in (None, "analytics"):
        ok &= bench_analytics(args.events)
    if args.only in (None, "pages"):
        ok &= bench_pages(args.db, args.events, args.repeats)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
