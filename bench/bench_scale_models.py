"""Real-size catalogues (issue 23), the models' side: costs, the scalable default, ANN retrieval.

    python -m bench.bench_scale_models calibrate [--sizes 2000 4000 6000 8000]   # dense peak RSS vs n_items^2
    python -m bench.bench_scale_models quality --dataset ml-100k --dataset .vitrine/synth/8k
    python -m bench.bench_scale_models scale --dataset .vitrine/synth/25k [--model sparse-ease-text]
    python -m bench.bench_scale_models ann --dataset .vitrine/synth/1m [--queries 2000]

Catalogues come from `python -m recommenders synth --preset 8k|25k|1m --layout mmrec --out DIR`
(recommenders/synthetic.py; precomputed 384-d text features). Every fit whose peak RSS is reported runs in its
own process under `/usr/bin/time -v` ("Maximum resident set size"), with the RSS after loading the data printed
by the child, so the fit's own share is visible. One JSON line per figure on stdout. Threads: torch 1, BLAS as
the machine gives (2 cores here); timings on a shared machine are preliminary - the command reproduces them.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / ".vitrine"


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _emit(**row) -> None:
    print(json.dumps(row, default=str), flush=True)


def _load(dataset: str):
    import torch

    from recommenders.data import load_dataset
    from recommenders.features import item_features

    torch.set_num_threads(1)
    ds = load_dataset(dataset, DATA_DIR)
    feats = item_features(ds, DATA_DIR / "features")
    return ds, feats


def _timed_child(args: list[str]) -> dict:
    """Run `python -m bench.bench_scale_models ARGS` under /usr/bin/time -v; its JSON + max RSS."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "bench.bench_scale_models", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    out = rows[-1] if rows else {"error": proc.stderr[-2000:]}
    out["peak_rss_bytes"] = int(peak.group(1)) * 1024 if peak else None
    out["returncode"] = proc.returncode
    return out


# -- calibrate: dense models' peak against n_items^2 ------------------------------------------------------------
def child_dense(model: str, n_items: int) -> None:
    import pandas as pd

    from recommenders.models import create_model

    rng = np.random.default_rng(0)
    n_users, nnz = 2 * n_items, 20 * n_items
    frame = pd.DataFrame({"user_id": rng.integers(0, n_users, nnz).astype(str),
                          "item_id": (rng.zipf(1.3, nnz) % n_items).astype(str)})
    items = [str(i) for i in range(n_items)]
    feats = {"text": rng.normal(size=(n_items, 384)).astype(np.float32)}
    m = create_model(model)
    cost = m.cost(n_users, n_items, nnz, {"text": 384})
    base = _rss()
    t0 = time.perf_counter()
    m.fit(frame, items, feats)
    _emit(model=model, n_items=n_items, fit_seconds=time.perf_counter() - t0, rss_before_fit=base,
          cost_peak_bytes=cost.peak_bytes, cost_fit_seconds=cost.fit_seconds)


def calibrate(sizes: list[int], models: list[str]) -> None:
    for model in models:
        for n in sizes:
            row = _timed_child(["child-dense", model, str(n)])
            if row.get("peak_rss_bytes") and row.get("rss_before_fit"):
                row["fit_peak_bytes"] = row["peak_rss_bytes"] - row["rss_before_fit"]
                row["factor_of_n2x8"] = row["fit_peak_bytes"] / (8.0 * n * n)
                row["cost_over_measured"] = row["cost_peak_bytes"] / row["fit_peak_bytes"]
            _emit(bench="calibrate", **row)


# -- quality: NDCG@10 of the scalable default against exact ease-text --------------------------------------------
def quality(datasets: list[str], models: list[str], seed: int) -> None:
    from recommenders.evaluation import evaluate_model
    from recommenders.models import create_model
    from recommenders.splits import make_split

    for dataset in datasets:
        ds, feats = _load(dataset)
        split = make_split(ds.interactions, "random", seed=seed)
        base = None
        for name in models:
            t0 = time.perf_counter()
            model = create_model(name).fit(split.train, ds.item_ids, feats)
            fit = time.perf_counter() - t0
            r = evaluate_model(model, split)
            test = r["test"]["ndcg@10"]
            base = test if name == "ease-text" else base
            _emit(bench="quality", dataset=ds.name, items=len(ds.item_ids), users=len(ds.users),
                  interactions=len(ds.interactions), model=name, valid_ndcg10=r["valid"]["ndcg@10"],
                  test_ndcg10=test, test_recall20=r["test"]["recall@20"], fit_seconds=fit,
                  ratio_to_ease_text=(test / base) if base else None)


# -- scale: fit time, peak RSS, top-20 latency of the scalable model ----------------------------------------------
def child_fit(dataset: str, model: str, out: str, queries: int) -> None:
    from recommenders.models import create_model, load_model

    from recommenders.sizing import choose_default, memory_budget

    ds, feats = _load(dataset)
    frame = ds.interactions
    dims = {k: v.shape[1] for k, v in feats.items()}
    n_users = int(frame["user_id"].nunique())
    params, reason = {}, None
    if model == "default":  # what the app would serve: recommenders.sizing.choose_default
        model, params, reason = choose_default(n_users, len(ds.item_ids), len(frame), "text" in feats,
                                               memory_budget(), dims)
    cost = create_model(model, **params).cost(n_users, len(ds.item_ids), len(frame), dims)
    base = _rss()
    t0, c0 = time.perf_counter(), time.process_time()
    m = create_model(model, **params).fit(frame, ds.item_ids, feats)
    fit, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    fit_peak = _rss()
    t0 = time.perf_counter()
    m.save(out)
    save = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = load_model(out)
    load = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    users = rng.choice(len(m.user_ids), min(queries, len(m.user_ids)), replace=False)
    lat = []
    for u in users:
        t = time.perf_counter()
        m.recommend(m.user_ids[u], k=20)
        lat.append(time.perf_counter() - t)
    picks = [list(rng.choice(m.item_ids, 3, replace=False)) for _ in range(min(queries, 500))]
    lat_new = []
    for p in picks:
        t = time.perf_counter()
        m.recommend_with_feedback(None, liked=p[:2], disliked=p[2:], k=20)
        lat_new.append(time.perf_counter() - t)
    ms = lambda a, q: float(np.percentile(np.array(a) * 1000, q))  # noqa: E731
    _emit(dataset=ds.name, model=model, params=params, reason=reason, items=len(ds.item_ids), users=len(m.user_ids), interactions=len(frame),
          fit_seconds=fit, fit_cpu_seconds=fit_cpu, rss_before_fit=base, rss_after_fit=fit_peak,
          cost_peak_bytes=cost.peak_bytes, cost_fit_seconds=cost.fit_seconds, weights=int(m.B.nnz) if hasattr(m, "B") else None,
          save_seconds=save, load_seconds=load,
          top20_ms_p50=ms(lat, 50), top20_ms_p95=ms(lat, 95), top20_ms_p99=ms(lat, 99),
          feedback_top20_ms_p50=ms(lat_new, 50), feedback_top20_ms_p95=ms(lat_new, 95),
          feedback_top20_ms_p99=ms(lat_new, 99), n_queries=len(lat))


def scale(datasets: list[str], model: str, queries: int) -> None:
    for dataset in datasets:
        out = DATA_DIR / "bench-scale-models" / Path(dataset).name
        row = _timed_child(["child-fit", dataset, model, str(out), str(queries)])
        _emit(bench="scale", **row)


# -- ann: recall@20 and latency of the IVF index against exact scoring ------------------------------------------
def ann_bench(dataset: str, queries: int, nprobes: list[int], dim: int | None) -> None:
    import faiss

    from recommenders.ann import ItemIndex

    faiss.omp_set_num_threads(1)
    ds, feats = _load(dataset)
    text = np.asarray(feats["text"], dtype=np.float32)
    text = text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
    if dim and dim < text.shape[1]:  # the text's top principal directions (sparse-ease-text's text_dim)
        sample = text[np.sort(np.random.default_rng(0).choice(len(text), min(len(text), 20_000), replace=False))]
        vt = np.linalg.svd(sample.astype(np.float64), full_matrices=False)[2][:dim].T.astype(np.float32)
        text = np.ascontiguousarray(text @ vt)
        del feats
    rng = np.random.default_rng(0)
    # a user's content query: the mean text vector of their items (what `text`-style scoring of cold items asks)
    inter = ds.interactions
    codes = inter["item_id"].astype(str).map({i: n for n, i in enumerate(ds.item_ids)}).to_numpy()
    users = inter["user_id"].astype(str).to_numpy()
    chosen = rng.choice(np.unique(users), queries, replace=False)
    by_user = {u: codes[users == u] for u in chosen[: min(queries, 300)]} if len(inter) < 5e5 else None
    if by_user is None:  # vectorised for millions of interactions
        order = np.argsort(users, kind="stable")
        su, sc = users[order], codes[order]
        starts = np.searchsorted(su, chosen)
        ends = np.searchsorted(su, chosen, side="right")
        by_user = {u: sc[a:b] for u, a, b in zip(chosen, starts, ends)}
    qs = [(text[v].mean(0), v) for v in by_user.values()]
    t0 = time.perf_counter()
    index = ItemIndex(text, kind="ivf")
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    blob = index.to_bytes()
    ser = time.perf_counter() - t0
    t0 = time.perf_counter()
    ItemIndex.from_bytes(text, blob)
    deser = time.perf_counter() - t0
    n_blob = len(blob)
    del blob
    exact_lat, exact_top = [], []
    for q, seen in qs:
        t = time.perf_counter()
        exact_top.append(index.exact(q, 20, seen)[0])
        exact_lat.append(time.perf_counter() - t)
    ms = lambda a, p: float(np.percentile(np.array(a) * 1000, p))  # noqa: E731
    for nprobe in nprobes:
        index.index.nprobe = nprobe
        lat, rec = [], []
        for (q, seen), want in zip(qs, exact_top):
            t = time.perf_counter()
            got, _ = index.search(q, 20, seen)
            lat.append(time.perf_counter() - t)
            rec.append(len(set(got) & set(want)) / 20)
        _emit(bench="ann", dataset=ds.name, items=len(text), dim=text.shape[1], nlist=index.index.nlist,
              nprobe=nprobe, recall20=float(np.mean(rec)), top20_ms_p50=ms(lat, 50), top20_ms_p95=ms(lat, 95),
              top20_ms_p99=ms(lat, 99), exact_ms_p50=ms(exact_lat, 50), exact_ms_p99=ms(exact_lat, 99),
              build_seconds=build, index_bytes=n_blob, serialize_seconds=ser, deserialize_seconds=deser,
              n_queries=len(qs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale_models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what")
    c = sub.add_parser("calibrate")
    c.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000, 6000, 8000])
    c.add_argument("--models", nargs="+", default=["ease", "ease-text", "itemknn"])
    q = sub.add_parser("quality")
    q.add_argument("--dataset", action="append", default=None)
    q.add_argument("--models", nargs="+", default=["ease-text", "sparse-ease-text", "ease", "sparse-ease"])
    q.add_argument("--seed", type=int, default=2020)
    s = sub.add_parser("scale")
    s.add_argument("--dataset", action="append", required=True)
    s.add_argument("--model", default="default", help="a model name, or 'default': choose_default's pick")
    s.add_argument("--queries", type=int, default=2000)
    a = sub.add_parser("ann")
    a.add_argument("--dataset", required=True)
    a.add_argument("--queries", type=int, default=1000)
    a.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 48, 64])
    a.add_argument("--dim", type=int, default=64, help="project the text to its top DIM directions (0: as given)")
    cd = sub.add_parser("child-dense")
    cd.add_argument("model")
    cd.add_argument("n_items", type=int)
    cf = sub.add_parser("child-fit")
    cf.add_argument("dataset")
    cf.add_argument("model")
    cf.add_argument("out")
    cf.add_argument("queries", type=int)
    args = parser.parse_args(argv)
    if args.what is None:  # `python -m bench`: the quick part (ml-100k quality); the rest needs synth data
        quality(["ml-100k"], ["ease-text", "sparse-ease-text"], 2020)
    elif args.what == "calibrate":
        calibrate(args.sizes, args.models)
    elif args.what == "quality":
        quality(args.dataset or ["ml-100k"], args.models, args.seed)
    elif args.what == "scale":
        scale(args.dataset, args.model, args.queries)
    elif args.what == "ann":
        ann_bench(args.dataset, args.queries, args.nprobe, args.dim or None)
    elif args.what == "child-dense":
        child_dense(args.model, args.n_items)
    elif args.what == "child-fit":
        child_fit(args.dataset, args.model, args.out, args.queries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
