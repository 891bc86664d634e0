"""`python -m recommenders fetch|evaluate|train|add-items|synth` - see `python -m recommenders --help`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recommenders.errors import RecommendersError

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / ".vitrine"


def _model_names() -> tuple[str, ...]:
    from recommenders.models import MODEL_NAMES

    return MODEL_NAMES


def _cold_start() -> str:
    from recommenders.models import COLD_START_MODEL, COLD_START_PARAMS

    return COLD_START_MODEL + " " + " ".join(f"{k}={json.dumps(v)}" for k, v in COLD_START_PARAMS.items())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recommenders", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help="copy/download a built-in dataset into the data dir (idempotent)")
    fetch.add_argument("--dataset", default="ml-100k", choices=["ml-100k"])
    fetch.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    fetch.add_argument("--allow-network", action="store_true", help="download from GroupLens if not installed")

    def common(p: argparse.ArgumentParser, model_help: str | None = None) -> None:
        p.add_argument("--dataset", default="ml-100k", help="'ml-100k' or a bring-your-own folder")
        if model_help is None:
            p.add_argument("--model", required=True, help="one of: " + " ".join(_model_names()))
        else:
            p.add_argument("--model", default=None, help="one of: " + " ".join(_model_names()) + model_help)
        p.add_argument("--seed", type=int, default=2020)
        p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
        p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                       help="model hyper-parameter override, e.g. --param reg=300 (repeatable)")
        p.add_argument("--text-model", default=None, help="sentence-transformers dir (default: packaged MiniLM)")
        p.add_argument("--image-model", default=None, help="CLIP dir or cached hub id, for datasets with images")
        p.add_argument("--quiet", action="store_true",
                       help="no epoch progress bar on stderr (the JSON on stdout is the same either way)")
        p.add_argument("--memory-budget", type=_bytes, default=None, metavar="SIZE",
                       help="memory the fit may use, e.g. 4GB or 500MB (default: what this machine can give now); "
                            "a model too large for the catalogue is refused before it allocates")

    ev = sub.add_parser("evaluate", help="fit on a split's train part, report valid/test metrics at 10 and 20")
    common(ev, model_help=f"; default with --split cold-item: {_cold_start()} (the cold-start default, chosen "
                          "on that split's valid part; --param overrides it); required with the other splits")
    ev.add_argument("--split", default="random", choices=["random", "loo", "cold-item", "given"],
                    help="given: the dataset's own split (an MMRec folder's x_label), scored with MMRec's protocol "
                         "(test excludes train items only)")
    ev.add_argument("--json", type=Path, default=None, help="write the result JSON here")
    ev.add_argument("--random-baseline", action="store_true", help="also report a random ranking's test metrics")
    ev.add_argument("--save", type=Path, default=None, help="also save the fitted model into this directory")

    se = sub.add_parser("search", help="seeded grid search per model on the validation split only; writes the "
                                        "selection JSON that recommenders.search.best_model reads")
    se.add_argument("--dataset", default="ml-100k", help="'ml-100k' or a bring-your-own folder")
    se.add_argument("--models", nargs="+", required=True, help="models to search (grids: recommenders.search)")
    se.add_argument("--split", default="random", choices=["random", "loo", "cold-item", "given"])
    se.add_argument("--seed", type=int, default=2020)
    se.add_argument("--max-trials", type=int, default=12, help="at most this many grid points per model (seeded)")
    se.add_argument("--fixed", action="append", default=[], metavar="MODEL:KEY=VALUE",
                    help="a parameter set for every trial of MODEL, e.g. two-tower:epochs=50 (repeatable)")
    se.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    se.add_argument("--text-model", default=None)
    se.add_argument("--image-model", default=None)
    se.add_argument("--out", type=Path, required=True, help="the selection JSON to write")
    se.add_argument("--quiet", action="store_true", help="no epoch progress bar on stderr")

    tr = sub.add_parser("train", help="fit on all interactions (early-stopped epochs) and save the model")
    common(tr)
    tr.add_argument("--out", type=Path, required=True, help="directory to save the model into")

    add = sub.add_parser("add-items", help="add the items of FOLDER to a bring-your-own catalogue: features "
                         "computed, saved content models extended at once (ID models: at the next retrain)")
    add.add_argument("folder", type=Path, help="a folder with items.csv|parquet (and optional images/)")
    add.add_argument("--dataset", type=Path, required=True, help="the bring-your-own catalogue folder to grow")
    add.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="holds features/ (the feature cache)")
    add.add_argument("--models-dir", type=Path, default=None,
                     help="saved models (one folder with params.json each): content models are extended and re-saved")
    add.add_argument("--text-model", default=None, help="sentence-transformers dir (default: packaged MiniLM)")
    add.add_argument("--image-model", default=None, help="CLIP dir or cached hub id, for datasets with images")
    syn = sub.add_parser("synth", help="generate a synthetic catalogue with a known topic structure (bring-your-own "
                         "or MMRec layout); see recommenders/synthetic.py")
    syn.add_argument("--preset", choices=["8k", "25k", "1m"], default=None,
                     help="issue 23's sizes (items/users/interactions): 8k 8000/20000/160000, 25k 25000/40000/"
                          "290000, 1m 1000000/300000/2400000; --items/--users/--interactions override")
    syn.add_argument("--items", type=int, default=None)
    syn.add_argument("--users", type=int, default=None)
    syn.add_argument("--interactions", type=int, default=None)
    syn.add_argument("--layout", choices=["byo", "mmrec"], required=True,
                     help="byo: items.csv + interactions.csv (text encoded by the app); mmrec: NAME.inter + "
                          "precomputed text_feat.npy / image_feat.npy")
    syn.add_argument("--out", type=Path, required=True, help="the folder to create")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--topics", type=int, default=None, help="latent topics (default sqrt(items), 8..1000)")
    syn.add_argument("--text-dim", type=int, default=384, help="mmrec: width of text_feat.npy (384 for minilm)")
    syn.add_argument("--image-dim", type=int, default=512, help="mmrec: width of image_feat.npy")
    syn.add_argument("--text-space", choices=["minilm", "random"], default="minilm",
                     help="mmrec: text_feat rows in MiniLM's space (query search works; needs the packaged "
                          "MiniLM) or random topic vectors (any width, no model)")
    syn.add_argument("--no-items-table", action="store_true",
                     help="mmrec: no items.csv (cards get generic labels such as 'Product 12')")
    syn.add_argument("--name", default=None, help="mmrec: NAME of NAME.inter (default: the folder's name)")
    syn.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    syn.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def _bytes(text: str) -> int:
    """'4GB', '500 MB', '1.5e9' -> bytes (decimal units)."""
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
    raw = text.strip().lower().replace(" ", "")
    number = raw.rstrip("kmgtb")
    unit = raw[len(number):]
    try:
        value = float(number) * units[unit]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a size such as 4GB, 500MB or 1e9, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return int(value)


def synth(args: argparse.Namespace) -> dict:
    from recommenders.synthetic import PRESETS, SynthConfig, write_catalogue

    sizes = PRESETS[args.preset] if args.preset else (None, None, None)
    n_items, n_users, n_inter = (given if given is not None else preset for given, preset in
                                 zip((args.items, args.users, args.interactions), sizes))
    if None in (n_items, n_users, n_inter):
        raise ValueError("synth: expected --preset or all of --items, --users, --interactions")
    config = SynthConfig(n_items=n_items, n_users=n_users, n_interactions=n_inter, layout=args.layout,
                         seed=args.seed, n_topics=args.topics, text_dim=args.text_dim, image_dim=args.image_dim,
                         text_space=args.text_space, items_table=not args.no_items_table, name=args.name)
    say = (lambda m: None) if args.quiet else (lambda m: print(f"synth: {m}", file=sys.stderr, flush=True))
    return write_catalogue(config, args.out, overwrite=args.overwrite, say=say)


def _params(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param: expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _say(args: argparse.Namespace):
    if getattr(args, "quiet", False):
        return None
    return lambda message: print(f"{args.command}: {message}", file=sys.stderr, flush=True)


def _load(args: argparse.Namespace):
    from recommenders.data import load_dataset

    return load_dataset(args.dataset, args.data_dir, cache_dir=args.data_dir / "datasets", say=_say(args))


def _features(args: argparse.Namespace, dataset):
    from recommenders.features import item_features

    return item_features(dataset, args.data_dir / "features", text_model=args.text_model,
                         image_model=args.image_model, say=_say(args))


def evaluate(args: argparse.Namespace) -> dict:
    import time

    import torch

    from recommenders.evaluation import evaluate_model, random_baseline
    from recommenders.models import COLD_START_MODEL, COLD_START_PARAMS, create_model
    from recommenders.splits import make_split

    torch.set_num_threads(1)
    params = _params(args.param)
    if args.model is None:
        if args.split != "cold-item":
            raise ValueError(f"--model: expected a model name with --split {args.split} (only cold-item has a "
                             f"default, {COLD_START_MODEL}); one of {list(_model_names())}")
        args.model, params = COLD_START_MODEL, {**COLD_START_PARAMS, **params}
    dataset = _load(args)
    split = make_split(dataset.interactions, args.split, seed=args.seed, labels=dataset.split_labels)
    features = _features(args, dataset)
    model = create_model(args.model, **params)
    if "seed" in model.params and "seed" not in params:
        model.params["seed"] = args.seed
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(split.train, dataset.item_ids, features, valid=split.valid, progress=not args.quiet,
              memory_budget=args.memory_budget)
    fit_seconds, fit_cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    result = evaluate_model(model, split, embeddings=features["text"])
    eval_seconds = time.perf_counter() - t0
    out = {
        "dataset": dataset.name, "model": args.model, "split": args.split, "seed": args.seed,
        "test": result["test"], "valid": result["valid"],
        "fit_seconds": fit_seconds, "eval_seconds": eval_seconds,
        # CPU seconds of this process: on a shared machine, what the fit costs without waiting for a core
        "fit_cpu_seconds": fit_cpu_seconds,
        "epochs_run": len(model.history) or None,
        "config": {"params": model.params, "split": repr(split), "features": {k: list(v.shape) for k, v in features.items()},
                   "protocol": "full ranking; test excludes "
                               + ("train+valid items" if split.test_excludes_valid else "train items only (MMRec's)")
                               + ", valid excludes train items"
                               + ("; candidates = held-out cold items" if split.cold_items else "")},
    }
    if hasattr(model, "params_after_probe"):  # what fit chose on valid (blend: the weights, the partners' epochs)
        out["config"]["chosen_on_valid"] = model.params_after_probe()
    if args.save is not None:
        model.save(args.save)
        out["saved"] = str(args.save)
    if args.random_baseline:
        out["random_test"] = random_baseline(split, model.item_ids, model.user_ids, seed=args.seed)
    return out


def train(args: argparse.Namespace) -> dict:
    import torch

    from recommenders.models import FEATURE_MODELS
    from recommenders.training import train_model

    torch.set_num_threads(1)
    dataset = _load(args)
    features = _features(args, dataset) if args.model in FEATURE_MODELS else None
    model = train_model(dataset, args.model, features=features, seed=args.seed, progress=not args.quiet,
                        memory_budget=args.memory_budget, **_params(args.param))
    model.save(args.out)
    return {"dataset": dataset.name, "model": args.model, "out": str(args.out), "params": model.params,
            "fit_seconds": model.fit_seconds, "users": len(model.user_ids), "items": len(model.item_ids)}


def add_items(args: argparse.Namespace) -> dict:
    from recommenders.catalog import append_items, check_growable, extend_model, grow_features
    from recommenders.data import load_dataset, read_items
    from recommenders.features import compute_features
    from recommenders.models import load_model

    check_growable(args.dataset, args.folder)
    read_items(args.folder)  # a bad batch is refused before any feature is computed
    cache = args.data_dir / "features"
    before = load_dataset(args.dataset, args.data_dir)
    before_feats = compute_features(before, cache, args.text_model, args.image_model)
    grown = append_items(args.dataset, args.folder)
    feats = grow_features(before, before_feats.arrays, grown, cache, args.text_model, args.image_model)
    models: dict[str, str] = {}
    if args.models_dir is not None:
        for folder in sorted(p for p in Path(args.models_dir).iterdir() if (p / "params.json").is_file()):
            model = load_model(folder)
            if set(model.item_ids) - set(grown.item_ids):
                models[folder.name] = "skipped: trained on another catalogue"
                continue
            try:
                extend_model(model, grown.item_ids, feats.arrays).save(folder)
                models[folder.name] = f"{model.name}: new items ranked now"
            except RecommendersError as exc:
                models[folder.name] = f"{model.name}: at the next retrain ({str(exc).split(':')[0]})"
    new_ids = grown.item_ids[len(before.items):]
    return {"dataset": str(args.dataset), "added": new_ids, "items": len(grown.items),
            "features": {k: list(v.shape) for k, v in feats.arrays.items()}, "missing": feats.missing,
            "models": models}


def search(args: argparse.Namespace) -> dict:
    import torch

    from recommenders.search import SEARCH_SPACES, search as run_search, write_selection
    from recommenders.splits import make_split

    torch.set_num_threads(1)
    unknown = [m for m in args.models if m not in SEARCH_SPACES]
    if unknown:
        raise ValueError(f"--models: no search space for {unknown}; expected some of {sorted(SEARCH_SPACES)}")
    fixed: dict[str, dict[str, object]] = {}
    for item in args.fixed:
        model, sep, pair = item.partition(":")
        if not sep or not model:
            raise ValueError(f"--fixed: expected MODEL:KEY=VALUE, got {item!r}")
        fixed.setdefault(model, {}).update(_params([pair]))
    dataset = _load(args)
    split = make_split(dataset.interactions, args.split, seed=args.seed, labels=dataset.split_labels)
    features = _features(args, dataset)
    result = run_search(split, dataset.item_ids, features, {m: SEARCH_SPACES[m] for m in args.models},
                        max_trials=args.max_trials, seed=args.seed, fixed=fixed, progress=not args.quiet)
    result["dataset"] = dataset.name
    write_selection(result, args.out)
    return {"dataset": dataset.name, "out": str(args.out), "best": result["best"], "trials": len(result["trials"])}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "fetch":
            from recommenders.data import fetch_ml100k, load_dataset

            folder = fetch_ml100k(args.data_dir, allow_network=args.allow_network)
            ds = load_dataset("ml-100k", args.data_dir)
            print(json.dumps({"dataset": ds.name, "path": str(folder), "items": len(ds.items),
                              "users": len(ds.users), "interactions": len(ds.interactions)}))
            return 0
        commands = {"evaluate": evaluate, "train": train, "search": search, "add-items": add_items,
                    "synth": synth}
        result = commands[args.command](args)
        text = json.dumps(result, indent=2, default=str)
        if getattr(args, "json", None):
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(text)
        print(text)
        return 0
    except (RecommendersError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
