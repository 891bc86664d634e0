"""Cover as a modality: does the CLIP embedding of each item's served cover help `vbpr` on ml-100k?

    .venv/bin/python -m bench.bench_cover_modality [--image-model DIR] [--seed 2020] [--epochs N]

Same RecBole random 8:1:1 split and seed for both arms; `vbpr` fitted on the train part with early stopping on
the valid part (as `python -m recommenders evaluate`), once with features {"text"} and once with
{"text", "cover"}, where "cover" is `recommenders.features.cover_features` over the cover the app serves for
each item (the generic cover, seed 0). Covers come from `generation.covers.CoverGenerator` with the model
given by `--cover-model` (default none: the typographic fallback, which draws the genres' palette and the
title). The image encoder is `--image-model` (a CLIP directory); without one, a tiny CLIP with seeded random
weights is built (no pretrained CLIP can be loaded on a machine without the hub): then the "cover" modality
is a fixed random projection of the cover's pixels, and the result says only whether that plumbing carries
signal, not what a real CLIP would add. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / ".vitrine"


def tiny_clip(path: Path, seed: int = 0) -> str:
    """A small CLIP (2-layer ViT, 64 px, 64-d projection) with seeded random weights, saved to `path`."""
    from generation.testing import build_tiny_clip

    return str(build_tiny_clip(path, seed, vision_width=64, vision_layers=2, text_width=32, image_size=64,
                               projection_dim=64))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_cover_modality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--image-model", default=None, help="a CLIP directory (default: a tiny random CLIP)")
    parser.add_argument("--cover-model", default=None, help="a diffusers directory (default: typographic covers)")
    parser.add_argument("--cover-size", type=int, default=128, help="cover width in pixels (height 1.5x)")
    parser.add_argument("--seed", type=int, default=2020, help="split and model seed")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="vbpr parameter override")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from generation.covers import CoverGenerator
    from generation.prompts import ItemInfo
    from recommenders.__main__ import _params
    from recommenders.data import load_dataset
    from recommenders.evaluation import evaluate_model
    from recommenders.features import cover_features, item_features
    from recommenders.models import create_model
    from recommenders.splits import make_split

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    dataset = load_dataset("ml-100k", args.data_dir)
    split = make_split(dataset.interactions, "random", seed=args.seed)
    text = item_features(dataset, args.data_dir / "features")["text"]

    t0 = time.perf_counter()
    covers = CoverGenerator(args.cover_model, args.data_dir / "bench-covers", size=args.cover_size).load()
    paths = {}
    for row in dataset.items.itertuples():
        year = None if pd.isna(row.year) else int(row.year)
        item = ItemInfo(row.item_id, row.title, year, list(row.genres), row.text)
        paths[row.item_id] = covers.generate(item, None, seed=0)[0].path
    cover_s = time.perf_counter() - t0
    image_model = args.image_model or tiny_clip(args.data_dir / "bench-tiny-clip")
    t0 = time.perf_counter()
    cover = cover_features(dataset.item_ids, paths, args.data_dir / "features", image_model)
    encode_s = time.perf_counter() - t0

    arms = {}
    for name, feats in (("text", {"text": text}), ("text+cover", {"text": text, "cover": cover})):
        model = create_model("vbpr", seed=args.seed, **_params(args.param))
        t0 = time.perf_counter()
        model.fit(split.train, dataset.item_ids, feats, valid=split.valid)
        fit_s = time.perf_counter() - t0
        result = evaluate_model(model, split, embeddings=text)
        arms[name] = {"test_ndcg@10": result["test"]["ndcg@10"], "valid_ndcg@10": result["valid"]["ndcg@10"],
                      "test_recall@10": result["test"]["recall@10"], "epochs": len(model.history),
                      "fit_seconds": round(fit_s, 1), "features": {k: list(v.shape) for k, v in feats.items()}}
        print(json.dumps({name: arms[name]}), flush=True)
    print(json.dumps({
        "bench": "cover_modality", "started": started, "machine": platform.machine(), "python": platform.python_version(),
        "split": repr(split), "seed": args.seed, "covers": covers.generator_id, "cover_size": args.cover_size,
        "image_model": args.image_model or "tiny random CLIP (bench.bench_cover_modality.tiny_clip, seed 0)",
        "cover_seconds": round(cover_s, 1), "encode_seconds": round(encode_s, 1), "arms": arms,
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
