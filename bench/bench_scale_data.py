"""The data side of real-size catalogues (issue 23): generate the synthetic catalogues, then measure loading them
cold and warm, their features, and the search indexes, each step in its own process so its peak RSS is its own.

    .venv/bin/python -m bench.bench_scale_data                      # 25k byo and 1M MMRec under .vitrine/synth
    .venv/bin/python -m bench.bench_scale_data --sizes 25k --dir /tmp/synth --reuse

Sizes: "8k" (MMRec layout, quality checks), "25k" (bring-your-own: items.csv + interactions.csv; text encoded
with the packaged MiniLM at start, as the app does), "1m" (MMRec layout: NAME.inter + precomputed 384-d text and
512-d image features). Per size:

- generate: `recommenders.synthetic.write_catalogue` (what `python -m recommenders synth --preset SIZE` runs);
- cold: load_dataset with an empty parsed-dataset cache + compute_features with an empty feature cache
  (1M: the precomputed files are checked, not encoded; 25k: 25k texts encoded by MiniLM, one thread);
- warm: the same again, caches filled (a restart on the same data);
- lookup: TitleIndex and IdIndex build time, title-search and id-suggestion latency over a fixed query list,
  and search by meaning (query encoder load, per-query latency with exact chunked scoring).

Every step prints one JSON line (seconds, peak RSS in MB of that step's process, sizes); the last line is a
summary. The generated folders (hundreds of MB to 4 GB) stay under --dir and are never committed.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / ".vitrine" / "synth"
LAYOUT = {"8k": "mmrec", "25k": "byo", "1m": "mmrec"}
TITLE_QUERIES = ["wool coat", "wo", "warm navy wool parka", "espresso", "Oakcrest", "kids board book",
                 "running shoe", "ool pa", "zzzz", "P0000123"]
MEANING_QUERIES = ["a warm wool coat for winter", "bedtime story for toddlers", "an espresso machine",
                   "waterproof hiking boots", "a gift for a coffee lover"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _pct(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# ---------------------------------------------------------------------------------------------------------
# steps (each runs in its own process: `python -m bench.bench_scale_data --step NAME --size S --dir D`)
# ---------------------------------------------------------------------------------------------------------
def step_generate(size: str, folder: Path, seed: int) -> dict:
    from recommenders.synthetic import PRESETS, SynthConfig, write_catalogue

    n_items, n_users, n_inter = PRESETS[size]
    config = SynthConfig(n_items=n_items, n_users=n_users, n_interactions=n_inter, layout=LAYOUT[size], seed=seed)
    t0 = time.perf_counter()
    summary = write_catalogue(config, folder, overwrite=True)
    bytes_on_disk = sum(p.stat().st_size for p in folder.iterdir())
    return {"seconds": round(time.perf_counter() - t0, 2), "structure_seconds": summary["generate_seconds"],
            "items": n_items, "users": n_users, "interactions": summary["interactions"],
            "cold_items": summary["cold_items"], "disk_mb": round(bytes_on_disk / 2**20, 1)}


def step_load(size: str, folder: Path, cache: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    from recommenders.data import load_dataset
    from recommenders.features import compute_features

    t0 = time.perf_counter()
    ds = load_dataset(folder, cache, cache_dir=cache / "datasets")
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    feats = compute_features(ds, cache / "features")
    t_feat = time.perf_counter() - t1
    return {"seconds": round(time.perf_counter() - t0, 2), "load_seconds": round(t_load, 2),
            "features_seconds": round(t_feat, 2), "items": len(ds.items), "users": len(ds.users),
            "interactions": len(ds.interactions), "features": {k: list(v.shape) for k, v in feats.arrays.items()},
            "sources": feats.sources, "missing": feats.missing}


def step_lookup(size: str, folder: Path, cache: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    from recommenders.data import load_dataset
    from recommenders.features import compute_features
    from recommenders.lookup import IdIndex, ItemSearch, MeaningIndex, TitleIndex, query_encoder

    ds = load_dataset(folder, cache, cache_dir=cache / "datasets")
    popularity = ds.interactions["item_id"].value_counts().reindex(ds.items["item_id"], fill_value=0).to_numpy()
    activity = ds.interactions["user_id"].value_counts().reindex(ds.users["user_id"], fill_value=0).to_numpy()
    t0 = time.perf_counter()
    titles = TitleIndex(ds.items["item_id"].to_numpy(), ds.items["title"].to_numpy(), popularity=popularity)
    t_titles = time.perf_counter() - t0
    t0 = time.perf_counter()
    users = IdIndex(ds.users["user_id"].to_numpy(), activity=activity)
    t_users = time.perf_counter() - t0
    title_ms: list[float] = []
    for _ in range(3):
        for q in TITLE_QUERIES:
            t = time.perf_counter()
            titles.search(q, 20)
            title_ms.append((time.perf_counter() - t) * 1000)
    prefixes = [str(u)[:n] for u in ds.users["user_id"].iloc[:: max(1, len(ds.users) // 20)] for n in (1, 3, 5)]
    suggest_ms: list[float] = []
    for p in prefixes:
        t = time.perf_counter()
        users.suggest(p, 10)
        suggest_ms.append((time.perf_counter() - t) * 1000)
    out = {"title_index_seconds": round(t_titles, 2), "user_index_seconds": round(t_users, 2),
           "title_vocabulary": titles.vocabulary_size, "title_search_ms_p50": round(_pct(title_ms, 50), 1),
           "title_search_ms_p95": round(_pct(title_ms, 95), 1), "title_search_ms_max": round(max(title_ms), 1),
           "suggest_ms_p50": round(_pct(suggest_ms, 50), 2), "suggest_ms_p95": round(_pct(suggest_ms, 95), 2)}
    feats = compute_features(ds, cache / "features")
    text = feats.arrays.get("text")
    t0 = time.perf_counter()
    encode, name, dim = query_encoder()
    out["query_encoder_seconds"] = round(time.perf_counter() - t0, 2)
    model = ds.feature_models.get("text", name if "text" not in ds.feature_files else "unknown")
    meaning = MeaningIndex(text, model, encode, name, dim)
    out["meaning_available"] = list(meaning.available)
    search = ItemSearch(titles, meaning)
    meaning_ms: list[float] = []
    if meaning.available[0]:
        search.search(MEANING_QUERIES[0], 20)  # first query: warms the encoder
        for _ in range(2):
            for q in MEANING_QUERIES:
                t = time.perf_counter()
                search.search(q, 20)
                meaning_ms.append((time.perf_counter() - t) * 1000)
        out["meaning_search_ms_p50"] = round(_pct(meaning_ms, 50), 1)
        out["meaning_search_ms_p95"] = round(_pct(meaning_ms, 95), 1)
        out["example"] = {q: [h.title for h in search.search(q, 3).hits] for q in MEANING_QUERIES[:2]}
    return out


STEPS = {"generate": step_generate, "load": step_load, "lookup": step_lookup}


def _run_step(step: str, size: str, args: argparse.Namespace, label: str) -> dict:
    cmd = [sys.executable, "-m", "bench.bench_scale_data", "--step", step, "--size", size, "--dir", str(args.dir),
           "--seed", str(args.seed)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"step {step} {size} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {"size": size, "step": label, **result}
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["25k", "1m"], choices=sorted(LAYOUT))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where the catalogues and caches go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="keep an already generated catalogue")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--size", choices=sorted(LAYOUT), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.step:  # inside a child process
        folder = args.dir / f"synth-{args.size}"
        cache = args.dir / f"cache-{args.size}"
        fn = STEPS[args.step]
        result = fn(args.size, folder, args.seed) if args.step == "generate" else fn(args.size, folder, cache)
        result["peak_rss_mb"] = round(_rss_mb(), 0)
        print(json.dumps(result, default=str))
        return 0

    args.dir.mkdir(parents=True, exist_ok=True)
    summary = []
    for size in args.sizes:
        folder = args.dir / f"synth-{size}"
        if not (args.reuse and (folder / "synth.json").is_file()):
            summary.append(_run_step("generate", size, args, "generate"))
        shutil.rmtree(args.dir / f"cache-{size}", ignore_errors=True)
        summary.append(_run_step("load", size, args, "cold"))
        summary.append(_run_step("load", size, args, "warm"))
        summary.append(_run_step("lookup", size, args, "lookup"))
    print(json.dumps({"summary": [{k: r.get(k) for k in ("size", "step", "seconds", "load_seconds",
                                                         "features_seconds", "peak_rss_mb")} for r in summary]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
