"""What it costs a running app to serve a grown catalog (`app.serving.growth`): a bring-your-own catalog of N books is
served with `ease-text` (+ `ease`), M new books are appended to its folder (as `python -m recommenders add-items`
does), and the upkeep's `Growth.refresh` serves them: new rows encoded with the packaged MiniLM, `ease-text`
refitted over the grown catalog, the store synced, the snapshot swapped. Also: ranking latency before and after,
and whether the new books of a user's liked genre are ranked within that genre (cold start by their text).

    .venv/bin/python -m bench.bench_growth --items 2000 --users 300 --new 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_growth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--new", type=int, default=200)
    parser.add_argument("--slates", type=int, default=50, help="slates timed before and after")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from app.serving.services import build_services
    from app.settings import Settings
    from recommenders.catalog import append_items, write_synthetic_catalog

    root = Path(tempfile.mkdtemp(prefix="vt-growth-"))
    folder = write_synthetic_catalog(root / "books", "book", n_items=args.items, n_users=args.users, seed=1,
                                     images=False)
    data = root / "data"
    settings = Settings(data_dir=data, database_url=f"sqlite:///{data / 'vitrine.db'}", dataset=str(folder),
                        model="ease-text", extra_models=("ease",), cover_model=None, caption_model=None,
                        image_model=None, admin_open=True, best_of_n=1, auto_pairs_max=0)
    start = time.perf_counter()
    svc = build_services(settings, say=lambda msg: None)
    built_s = time.perf_counter() - start
    svc.upkeep.stop()
    users = svc.catalog.user_ids[: args.slates]

    def slates() -> list[float]:
        out = []
        for user in users:
            t = time.perf_counter()
            svc.ranking.rank("ease-text", user, 10)
            out.append((time.perf_counter() - t) * 1000)
        return out

    before = slates()
    new = write_synthetic_catalog(root / "new", "book", n_items=args.new, start=args.items, seed=2,
                                  interactions=False, images=False)
    t = time.perf_counter()
    append_items(folder, new)
    appended_s = time.perf_counter() - t
    t = time.perf_counter()
    done = svc.growth.refresh()
    refresh_s = time.perf_counter() - t
    after = slates()
    added = set(done["added"])
    # user u likes genre u % 4 (write_synthetic_catalog). Cold start done right puts the new books of u's genre
    # among u's genre, not among the others: the share of them ranked inside the top |unseen books of u's genre|
    # (1.0: every one of them above every book of another genre; about 0.25 for a random order)
    genre_of = {i: g[0] for i, g in zip(svc.catalog.dataset.items["item_id"], svc.catalog.dataset.items["genres"])}
    shares, top10 = [], []
    for user in users:
        liked = genre_of[svc.catalog.liked_ids(user)[0]]
        ranked = [i for i, _ in svc.ranking.rank("ease-text", user, len(genre_of))]
        mine = [i for i in ranked if genre_of[i] == liked]
        new_mine = {i for i in mine if i in added}
        shares.append(len(new_mine & set(ranked[:len(mine)])) / len(new_mine))
        top10.append(sum(1 for i in ranked[:10] if i in added) / 10)
    svc.close()
    result = {
        "bench": "app.serving.growth", "items": args.items, "users": args.users, "new": args.new,
        "startup_s": round(built_s, 2), "append_items_s": round(appended_s, 3), "refresh_s": round(refresh_s, 2),
        "ranked_now": done["ranked_now"], "at_next_retrain": done["at_next_retrain"],
        "rank_ms_before": {"p50": round(statistics.median(before), 2), "max": round(max(before), 2)},
        "rank_ms_after": {"p50": round(statistics.median(after), 2), "max": round(max(after), 2)},
        "new_of_liked_genre_ranked_within_it": round(statistics.mean(shares), 3),
        "new_share_of_top10": round(statistics.mean(top10), 3),
        "new_share_of_catalog": round(args.new / (args.items + args.new), 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
