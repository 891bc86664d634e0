"""The background worker's cost with best-of-N: per item, and the size and duration of its write transactions.

    PYTHONPATH=. .venv/bin/python -m bench.bench_bestofn_worker

Tiny test dataset (tests/app fixtures), fallback generators, SQLite; 8 users x 10 items without a learner (one
cover and one caption per item, as before best-of-N), then 8 other users x 10 items with the app's learner.
"""
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "app"))
import torch; torch.set_num_threads(1)

from vitrine_app_fixtures import make_services
svc = make_services(Path(tempfile.mkdtemp()))
learner = svc.assets.learner
durs = []
real = svc.assets.record
def timed(assets):
    t = time.perf_counter(); out = real(assets); durs.append((len(assets), time.perf_counter() - t)); return out
svc.assets.record = timed
for label, lr, users in (("N=1 (before: no learner)", None, svc.catalog.user_ids[:8]), (f"N={learner.n}", learner, svc.catalog.user_ids[8:])):
    svc.assets.learner = lr; durs.clear(); t0 = time.perf_counter(); n = 0
    for u in users:
        items = [i for i, _ in svc.ranking.rank("ease", u, 10)]
        svc.assets.worker.generate_later(u, items, svc.catalog.profile(u)); svc.assets.worker.wait_for(u, items, 60); n += len(items)
    wall = time.perf_counter() - t0
    ms = sorted(1000 * d for _, d in durs)
    print(f"{label}: {n} items, worker {1000*wall/n:.1f} ms/item; writes {len(ms)}, assets/write max {max(k for k,_ in durs)}, write ms p50 {statistics.median(ms):.0f} max {ms[-1]:.0f}")
svc.close()
