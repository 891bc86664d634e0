"""`python -m recommenders fetch|evaluate|train` - see `python -m recommenders --help`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recommenders.errors import RecommendersError

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / ".vitrine"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recommenders", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help="copy/download a built-in dataset into the data dir (idempotent)")
    fetch.add_argument("--dataset", default="ml-100k", choices=["ml-100k"])
    fetch.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    fetch.add_argument("--allow-network", action="store_true", help="download from GroupLens if not installed")
    return parser


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
    except RecommendersError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
