"""Gated retraining from the command line (the admin button and the schedule call the same `app.learning.retrain`).

    python -m app.train --model ease                  # candidate on dataset + logs, gate, register (promote or not)
    python -m app.train --model ease --rollback       # serve the previous promoted version again
    python -m app.train --model ease --list           # every version with its watermark, metrics and decision
    python -m app.train --reward                      # the preference (reward) model from labels and Create picks
    python -m app.train --reward --rollback           # serve the previous promoted preference model again
    python -m app.train --reward --list               # every preference model version

`--reward` fits `generation.reward.RewardModel` (MiniLM text features; `--encoder hashing-64` for a cheap
bag-of-words stand-in) on the store's labels and picks, gates it next to the served version (held-out pair
accuracy on the pairs it never trained on; `app.learning.reward.reward_gate`, `--tolerance` in accuracy) and
registers it (name "reward", kind "preference") with an eval run; every replica serves the promoted version.
Exit status 2 when the store has too few pairs.

Settings come from the environment like the app's (DATABASE_URL, VITRINE_DATA_DIR, VITRINE_DATASET,
VITRINE_BLOB_URL) plus VITRINE_GATE_TOLERANCE (default 0, for --model) and VITRINE_RETRAIN_BUDGET_MIN (default 60: a
retrain estimated to take longer is refused, exit status 2, with the estimate; the output gives the estimate, the
budget and the seconds each step took). Artifacts go into the app's blob store
(VITRINE_BLOB_URL, else <data dir>/blobs) under `registry/`, or into `--artifacts DIR` (a local blob store).
Exit status: 0 promoted (or rolled back / listed), 3 rejected by the gate, 2 bad arguments or over the time budget.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

REJECTED = 3


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from recommenders.models import MODEL_NAMES

    parser = argparse.ArgumentParser(prog="python -m app.train", description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODEL_NAMES, help="the model to retrain (or roll back)")
    parser.add_argument("--reward", action="store_true", help="train the preference (reward) model instead")
    parser.add_argument("--encoder", default="minilm",
                        help="--reward's text encoder: minilm (default) or hashing-<dim> (cheap, for tests)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--rollback", action="store_true", help="serve the previous promoted version again")
    action.add_argument("--list", action="store_true", help="print every version and exit")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="gate tolerance on NDCG@10 (default: VITRINE_GATE_TOLERANCE, else 0); with --reward, "
                             "on held-out pair accuracy (default 0)")
    parser.add_argument("--artifacts", type=Path, default=None,
                        help="a directory to use as the blob store of artifacts (default: the app's blob store)")
    parser.add_argument("--database-url", default=None, help="default: DATABASE_URL, else the app's SQLite file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.reward == (args.model is not None):
        parser.error("give exactly one of --model NAME or --reward")
    if args.tolerance is not None and not args.tolerance >= 0:
        parser.error(f"--tolerance: expected a number >= 0, got {args.tolerance}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from annotation import registry
    from annotation.db import make_engine, make_session_factory, upgrade
    from app.learning import retrain as learning
    from app.learning.reward import REWARD_KIND, REWARD_NAME
    from app.settings import load_settings

    args = parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a pinned requirement
        pass
    settings = load_settings()
    url = args.database_url or settings.database_url
    upgrade(url)
    engine = make_engine(url)
    Session = make_session_factory(engine)
    artifacts = _artifacts(args, settings)
    name, kind = (REWARD_NAME, REWARD_KIND) if args.reward else (args.model, "recommender")
    try:
        if args.list:
            with Session() as s:
                frame = registry.versions_frame(s, name)
            frame = frame[frame["kind"] == kind]
            cols = ["version", "watermark", "decision", "promoted", "created_at", "reason"]
            print(frame[cols].to_string(index=False) if len(frame) else f"no versions of {name}")
            return 0
        if args.rollback:
            row = learning.rollback(Session, name, kind)
            print(f"{name}: version {row.version} is served again ({row.artifact}); every replica follows at its "
                  "next poll")
            return 0
        if args.reward:
            return _train_reward(args, settings, Session, artifacts)
        from recommenders.data import load_dataset
        from recommenders.models import FEATURE_MODELS

        dataset = load_dataset(settings.dataset, settings.data_dir)
        features = None
        if args.model in FEATURE_MODELS:
            from recommenders.features import compute_features

            features = compute_features(dataset, cache_dir=settings.data_dir / "features",
                                        text_model=settings.text_model, allow_network=settings.allow_network).arrays
        result = learning.retrain(Session, dataset, args.model, artifacts, features=features,
                                  config=learning.gate_config(settings, args.tolerance),
                                  log=lambda m: print(m, file=sys.stderr, flush=True))
        if args.json:
            print(json.dumps(learning.json_safe(result.to_dict()), indent=1))
        else:
            verdict = "PROMOTED" if result.promoted else "REJECTED"
            print(f"{args.model} v{result.version} {verdict} (watermark {result.watermark}, "
                  f"{result.seconds['total']:.1f} s): {result.reason}")
            print(f"time: {result.timing()}")
        return 0 if result.promoted else REJECTED
    except learning.RetrainBudgetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()


def _artifacts(args: argparse.Namespace, settings):
    """Where model versions are saved: `--artifacts DIR`, else the app's blob store (as `build_services` opens it)."""
    from app.learning.artifacts import ModelArtifacts
    from generation.blobs import BlobStore

    if args.artifacts is not None:
        return ModelArtifacts.at(args.artifacts)
    blobs = BlobStore(settings.blob_location, cache_dir=settings.blob_cache_dir)
    return ModelArtifacts(blobs, settings.model_cache_dir, legacy_dir=settings.registry_dir)


def _train_reward(args: argparse.Namespace, settings, Session, artifacts) -> int:
    from app.serving.catalog import Catalog
    from app.learning.reward import encoder_for, train_reward
    from recommenders.data import load_dataset

    catalog = Catalog(load_dataset(settings.dataset, settings.data_dir))
    try:
        result = train_reward(Session, catalog, artifacts, encoder_for(args.encoder, settings.text_model),
                              tolerance=args.tolerance or 0.0, text_model=settings.text_model,
                              say=lambda m: print(m, file=sys.stderr, flush=True))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        verdict = "PROMOTED" if result["promoted"] else "REJECTED"
        print(f"reward v{result['version']} ({result['model_version']}) {verdict}: held-out pair accuracy "
              f"{result['metrics'].get('heldout_accuracy', float('nan')):.3f}, saved as {result['artifact']}: "
              f"{result['reason']}")
    return 0 if result["promoted"] else REJECTED


if __name__ == "__main__":
    sys.exit(main())
