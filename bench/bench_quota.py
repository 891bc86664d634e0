"""The asset quota's cost (issue 14): one `Assets.enforce_quota` pass over a blob store of N recorded covers.

    PYTHONPATH=. .venv/bin/python -m bench.bench_quota [--covers 2000]

Tiny test dataset (tests/app fixtures), fallback covers, SQLite. It records N covers (items x seeds, generic, no
label pairs), then times: the scan of the store (`AssetStore.stored`), a pass under the quota (nothing to evict:
what the worker pays after a batch once QUOTA_EVERY_S passed), and a pass that evicts half of the bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--covers", type=int, default=2000)
    args = parser.parse_args(argv)
    tests = Path(__file__).resolve().parents[1] / "tests"
    sys.path[:0] = [str(tests / "app"), str(tests)]  # the app tests' fixtures and the helpers they import
    from vitrine_app_fixtures import make_services

    svc = make_services(Path(tempfile.mkdtemp(prefix="bench-quota-")), best_of_n=1, asset_quota_mb=0.0)
    try:
        items = svc.catalog.item_ids if hasattr(svc.catalog, "item_ids") else list(svc.catalog.dataset.items["item_id"])
        start = time.perf_counter()
        made, seed = 0, 1
        while made < args.covers:
            for item in items:
                svc.assets.covers_for(item, None, n=8, seed=seed)
                made += 8
                if made >= args.covers:
                    break
            seed += 8
        make_s = time.perf_counter() - start
        store = svc.assets.covers.store
        start = time.perf_counter()
        held = store.stored()
        scan_s = time.perf_counter() - start
        total = sum(a.size for a in held.values())
        svc.assets.quota.quota_bytes = total + 1
        start = time.perf_counter()
        svc.assets.quota.enforce()
        under_s = time.perf_counter() - start
        svc.assets.quota.quota_bytes = total // 2
        start = time.perf_counter()
        freed = svc.assets.quota.enforce()
        evict_s = time.perf_counter() - start
        print(json.dumps({"bench": "quota", "assets": len(held), "bytes": total, "make_s": round(make_s, 1),
                          "scan_ms": round(1000 * scan_s, 1), "pass_under_quota_ms": round(1000 * under_s, 1),
                          "pass_evicting_half_ms": round(1000 * evict_s, 1), "evicted": svc.assets.quota.evicted,
                          "freed_bytes": freed}))
    finally:
        svc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
