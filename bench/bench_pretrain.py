"""Issue 16 explorations on ml-100k (RecBole random split): what moves test NDCG@10 past ease-text's 0.3368.

- `ease-variants`: closed-form EASE-family variants around `ease-text` (EDLAE dropout-style regularisation,
  popularity debiasing, a user-based EASE blended in, genre indicators in the Gram matrix); each prints
  valid and test NDCG@10 (selection must use valid; test is shown to report how close each gets).
- `blend-latency DIR...`: recommend latency of the `blend` model built from those saved partners.
- `blend-sweep DIR...`: standardised ease-text scores + w * standardised scores of saved factor models
  (`python -m recommenders evaluate --save DIR`), over a grid of weights per model; rows sorted by valid.
- `blend-valid DIR... --seed S`: the default `blend` (weights chosen by the model on the valid part) on those
  saved partners: the chosen weights, valid and test NDCG@10 (what `evaluate --model blend --seed S` gives,
  without refitting the partners).
- `blend-rules DIR... --seed S`: rules for choosing the blend's weights compared on the valid part alone
  (chosen on one half of the valid users, scored on the other, both ways).
- `rating-grid --seeds 2020 2 3`: `ease-text` over a grid of reg x text_weight x rating_weight (the centred-rating
  Gram term), fitted and evaluated per seed; rows sorted by the mean valid NDCG@10 over the seeds (issue 27).

Evaluation goes through `recommenders.evaluation.rank_metrics`, the protocol of `python -m recommenders evaluate`.
Run: `PYTHONPATH=. .venv/bin/python -m bench.bench_pretrain ease-variants [--seed 2020]`
     `PYTHONPATH=. .venv/bin/python -m bench.bench_pretrain blend-sweep DIR [DIR ...]`
     `PYTHONPATH=. .venv/bin/python -m bench.bench_pretrain blend-valid DIR_freedom DIR_two_tower --seed S \
          [--base-param reg=600 --base-param text_weight=15]`
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / ".vitrine"


def _setup(data_dir: Path, seed: int):
    from recommenders.data import load_dataset
    from recommenders.evaluation import _positives
    from recommenders.features import item_features
    from recommenders.splits import random_split

    ds = load_dataset("ml-100k", data_dir)
    text = item_features(ds, data_dir / "features")["text"].astype(np.float64)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    split = random_split(ds.interactions, seed=seed)
    users = {u: n for n, u in enumerate(sorted(ds.interactions["user_id"].astype(str).unique()))}
    items = {i: n for n, i in enumerate(ds.item_ids)}
    parts = [_positives(f, users, items) for f in (split.train, split.valid, split.test)]
    x = np.zeros((len(users), len(items)))
    for u, arr in parts[0].items():
        x[u, arr] = 1.0
    return ds, text, users, items, parts, x


def _evaluate(scores: np.ndarray, parts) -> tuple[float, float]:
    from recommenders.evaluation import rank_metrics

    train, valid, test = parts
    fn = lambda u: scores[u]  # noqa: E731
    v = rank_metrics(fn, scores.shape[1], valid, [train], ks=(10,))["ndcg@10"]
    t = rank_metrics(fn, scores.shape[1], test, [train, valid], ks=(10,))["ndcg@10"]
    return round(v, 4), round(t, 4)


def _ease(gram: np.ndarray, reg: np.ndarray) -> np.ndarray:
    p = np.linalg.inv(gram + np.diag(reg))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def _z(s: np.ndarray) -> np.ndarray:
    return (s - s.mean(1, keepdims=True)) / s.std(1, keepdims=True)


def ease_variants(data_dir: Path, seed: int) -> None:
    ds, text, _, _, parts, x = _setup(data_dir, seed)
    g = x.T @ x
    ff = text @ text.T
    n = len(g)
    base = x @ _ease(g + 30 * ff, np.full(n, 400.0))

    def show(name: str, scores: np.ndarray) -> None:
        v, t = _evaluate(scores, parts)
        print(json.dumps({"variant": name, "valid_ndcg@10": v, "test_ndcg@10": t}), flush=True)

    show("ease-text (w 30, lambda 400)", base)
    for p, lam in itertools.product((0.25, 0.5), (200.0, 400.0)):  # EDLAE: lambda + p/(1-p) diag(G)
        show(f"edlae+text p={p} lambda={lam:g}", x @ _ease(g + 30 * ff, lam + p / (1 - p) * np.diag(g)))
    pop = x.sum(0) + 1
    for beta in (0.05, 0.1):
        show(f"ease-text / pop^{beta}", base / pop ** beta)
    k = x @ x.T
    pu = np.linalg.inv(k + 200.0 * np.eye(len(k)))
    a = -pu / np.diag(pu)
    np.fill_diagonal(a, 0.0)
    show("user-ease lambda=200", a.T @ x)
    show("ease-text + 0.2 user-ease", _z(base) + 0.2 * _z(a.T @ x))
    genres = sorted({gg for gs in ds.items["genres"] for gg in gs})
    gm = np.array([[gg in gs for gg in genres] for gs in ds.items["genres"]], dtype=float)
    gm /= np.maximum(np.linalg.norm(gm, axis=1, keepdims=True), 1e-9)
    for wg in (5.0, 15.0):
        show(f"ease-text + genres w={wg:g}", x @ _ease(g + 30 * ff + wg * gm @ gm.T, np.full(n, 400.0)))


def blend_sweep(data_dir: Path, seed: int, dirs: list[str], grid: tuple[float, ...]) -> None:
    from recommenders.models import load_model

    ds, text, users, _, parts, x = _setup(data_dir, seed)
    g = x.T @ x
    base = _z(x @ _ease(g + 30 * (text @ text.T), np.full(len(g), 400.0)))
    partners = []
    for d in dirs:
        m = load_model(d)
        rows = [m.user_index(u) for u in sorted(users, key=users.get)]
        cols = [m.item_index(i) for i in ds.item_ids]
        partners.append(_z(np.stack([m.score(r) for r in rows])[:, cols]))
    out = []
    for ws in itertools.product(grid, repeat=len(partners)):
        v, t = _evaluate(base + sum(w * s for w, s in zip(ws, partners)), parts)
        out.append({"weights": dict(zip(dirs, ws)), "valid_ndcg@10": v, "test_ndcg@10": t})
    for row in sorted(out, key=lambda r: -r["valid_ndcg@10"]):
        print(json.dumps(row), flush=True)


def _blend_of_saved(data_dir: Path, seed: int, dirs: list[str], weights, base_params: dict | None = None):
    """The `blend` model whose partners are the saved models `dirs` (`evaluate --save DIR` on the seed-`seed`
    random split) and whose base, ease-text (with `base_params` over its defaults), is refitted on that split's
    train part: what `evaluate --model blend --seed SEED` builds, without refitting the partners."""
    from recommenders.data import load_dataset
    from recommenders.features import item_features
    from recommenders.models import create_model, load_model
    from recommenders.splits import random_split

    ds = load_dataset("ml-100k", data_dir)
    split = random_split(ds.interactions, seed=seed)
    feats = item_features(ds, data_dir / "features")
    partners = [load_model(d) for d in dirs]
    base = create_model("ease-text", **(base_params or {})).fit(split.train, ds.item_ids, feats)
    for p in partners:
        if p.user_ids != base.user_ids or p.item_ids != base.item_ids:
            raise ValueError(f"dirs: {p!r} was not fitted on the seed-{seed} random split's train part")
    blend = create_model("blend", base_params=dict(base_params or {}), partners=[p.name for p in partners],
                         partner_params=[p.params for p in partners], weights=weights)
    blend.item_ids, blend.user_ids = base.item_ids, base.user_ids
    blend._item_index, blend._user_index, blend._seen = base._item_index, base._user_index, base._seen
    blend.parts = [base, *partners]
    blend.fit_seconds = base.fit_seconds + sum(p.fit_seconds or 0.0 for p in partners)
    return ds, split, feats, blend


def blend_latency(data_dir: Path, dirs: list[str], weights: list[float], repeats: int) -> None:
    """Recommend latency of the `blend` model whose partners are the saved models `dirs` (seed 2020), through
    the same timing code as bench_recommenders."""
    from bench.bench_recommenders import bench_model

    ds, split, feats, blend = _blend_of_saved(data_dir, 2020, dirs, list(weights))
    blend.weights_ = list(weights)
    print(json.dumps(bench_model("blend", ds, split, feats, 20, repeats=repeats, model=blend)), flush=True)


def blend_valid(data_dir: Path, seed: int, dirs: list[str], base_params: dict | None = None) -> None:
    """The default `blend` (weights="valid") on saved partners: the model's own weight choice on the split's
    valid part (`Blend._choose_weights`, the code `fit` runs), then valid and test NDCG@10 by `evaluate_model`.
    `base_params` override ease-text's defaults (`--base-param reg=600`)."""
    from recommenders.evaluation import evaluate_model

    _, split, feats, blend = _blend_of_saved(data_dir, seed, dirs, "valid", base_params)
    blend.weights_ = blend._choose_weights(blend._seen, blend._valid_matrix(split.valid))
    result = evaluate_model(blend, split, ks=(10,), embeddings=feats["text"])
    print(json.dumps({"seed": seed, "partners": dirs, "base_params": blend.params["base_params"],
                      "weight_grid": blend.params["weight_grid"],
                      "chosen_weights": blend.weights_, "valid_ndcg@10": round(result["valid"]["ndcg@10"], 4),
                      "test_ndcg@10": round(result["test"]["ndcg@10"], 4),
                      "top_valid": sorted(blend.weight_search, key=lambda r: -r["valid_ndcg@10"])[:5]}), flush=True)


def blend_rules(data_dir: Path, seed: int, dirs: list[str]) -> None:
    """How well each rule for the blend's weights generalises, on the valid part alone: valid users are split in
    two seeded halves; a rule picks the weights on one half and is scored (NDCG@10) on the other, both ways.
    Rules: standardisation (z over all items, z over the user's unseen items) x weight grid (coarse: issue 16's
    0/0.5/0.75/1.5; fine: the model's default; extended: fine + 4, 5) x pick (argmax; argmax of the mean over the
    grid neighbours). Test is never read."""
    import torch

    from recommenders.models import load_model

    ds, text, users, _, parts, x = _setup(data_dir, seed)
    g = x.T @ x
    raw = [x @ _ease(g + 30 * (text @ text.T), np.full(len(g), 400.0))]
    for d in dirs:
        m = load_model(d)
        rows = [m.user_index(u) for u in sorted(users, key=users.get)]
        cols = [m.item_index(i) for i in ds.item_ids]
        raw.append(np.stack([np.asarray(m.score(r)) for r in rows])[:, cols].astype(np.float64))
    train, valid, _ = parts
    seen = x > 0
    vu = np.array(sorted(valid))
    hit = np.zeros_like(seen)
    for u, arr in valid.items():
        hit[u, arr] = True
    gains = 1.0 / np.log2(np.arange(2, 12))
    idcg = np.cumsum(gains)[np.minimum(hit[vu].sum(1), 10) - 1]

    def per_user(scores: np.ndarray) -> np.ndarray:  # NDCG@10 of each valid user, train items excluded
        top = torch.topk(torch.from_numpy(np.where(seen, -np.inf, scores)[vu]), 10, dim=1).indices.numpy()
        return (np.take_along_axis(hit[vu], top, 1) * gains).sum(1) / idcg

    def z_unseen(s: np.ndarray) -> np.ndarray:
        m = np.where(seen, np.nan, s)
        return (s - np.nanmean(m, 1, keepdims=True)) / np.nanstd(m, 1, keepdims=True)

    fine = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0]
    grids = {"coarse": [0.0, 0.5, 0.75, 1.5], "fine": fine, "extended": fine + [4.0, 5.0]}
    half = np.random.default_rng(0).permutation(len(vu)) % 2 == 0
    out = {}
    for zname, f in (("all", _z), ("unseen", z_unseen)):
        comps = [f(s) for s in raw]
        combos = list(itertools.product(grids["extended"], repeat=len(comps) - 1))
        per = np.stack([per_user(comps[0] + sum(w * c for w, c in zip(ws, comps[1:]))) for ws in combos])
        for gname, grid in grids.items():
            idx = [n for n, ws in enumerate(combos) if all(w in grid for w in ws)]
            pos = [tuple(grid.index(w) for w in combos[n]) for n in idx]
            where = {p: k for k, p in enumerate(pos)}
            for pick in ("argmax", "neighbour-mean"):
                score = 0.0
                for a, b in ((half, ~half), (~half, half)):
                    m = per[idx][:, a].mean(1)
                    if pick == "neighbour-mean":
                        m = np.array([np.mean([m[where[q]] for q in itertools.product(*[(c - 1, c, c + 1) for c in p])
                                               if q in where]) for p in pos])
                    score += per[idx[int(np.argmax(m))]][b].mean() / 2
                out[f"{zname}/{gname}/{pick}"] = round(float(score), 5)
    print(json.dumps({"seed": seed, "partners": dirs, "crossfit_valid_ndcg@10": out}), flush=True)


def rating_grid(data_dir: Path, seeds: list[int], regs: list[float], text_weights: list[float],
                rating_weights: list[float]) -> None:
    """`ease-text` at every (reg, text_weight, rating_weight), fitted on each seed's random-split train part and
    evaluated by `evaluate_model`; one JSON row per point with the per-seed figures, sorted by mean valid."""
    from recommenders.data import load_dataset
    from recommenders.evaluation import evaluate_model
    from recommenders.features import item_features
    from recommenders.models import create_model
    from recommenders.splits import random_split

    ds = load_dataset("ml-100k", data_dir)
    feats = item_features(ds, data_dir / "features")
    points = list(itertools.product(regs, text_weights, rating_weights))
    rows = {p: [] for p in points}
    for seed in seeds:
        split = random_split(ds.interactions, seed=seed)
        for reg, tw, rw in points:
            model = create_model("ease-text", reg=reg, text_weight=tw, rating_weight=rw).fit(split.train, ds.item_ids,
                                                                                           feats)
            r = evaluate_model(model, split, ks=(10,))
            rows[(reg, tw, rw)].append((r["valid"]["ndcg@10"], r["test"]["ndcg@10"]))
    for (reg, tw, rw), vals in sorted(rows.items(), key=lambda kv: -np.mean([v for v, _ in kv[1]])):
        print(json.dumps({"reg": reg, "text_weight": tw, "rating_weight": rw, "seeds": seeds,
                          "valid_ndcg@10": [round(v, 4) for v, _ in vals], "test_ndcg@10": [round(t, 4) for _, t in vals],
                          "mean_valid": round(float(np.mean([v for v, _ in vals])), 5),
                          "mean_test": round(float(np.mean([t for _, t in vals])), 5)}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_pretrain", description=__doc__)
    parser.add_argument("what", choices=["ease-variants", "blend-sweep", "blend-latency", "blend-valid", "blend-rules",
                                         "rating-grid"])
    parser.add_argument("dirs", nargs="*", help="saved models for blend-sweep")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--grid", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.75, 1.5], help="blend-latency weights")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base-param", action="append", default=[], metavar="KEY=VALUE",
                        help="blend-valid: an ease-text hyper-parameter for the base, e.g. reg=600 (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2, 3], help="rating-grid: split seeds")
    parser.add_argument("--regs", type=float, nargs="+", default=[300.0, 400.0, 550.0], help="rating-grid")
    parser.add_argument("--text-weights", type=float, nargs="+", default=[15.0, 30.0, 45.0], help="rating-grid")
    parser.add_argument("--rating-weights", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3], help="rating-grid")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if args.what == "ease-variants":
        ease_variants(args.data_dir, args.seed)
    elif args.what == "rating-grid":
        rating_grid(args.data_dir, args.seeds, args.regs, args.text_weights, args.rating_weights)
    elif not args.dirs:
        parser.error(f"{args.what}: expected at least one saved model directory")
    elif args.what == "blend-sweep":
        blend_sweep(args.data_dir, args.seed, args.dirs, tuple(args.grid))
    elif args.what == "blend-valid":
        from recommenders.__main__ import _params

        blend_valid(args.data_dir, args.seed, args.dirs, _params(args.base_param))
    elif args.what == "blend-rules":
        blend_rules(args.data_dir, args.seed, args.dirs)
    else:
        blend_latency(args.data_dir, args.dirs, args.weights, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
