"""`python -m annotation upgrade|downgrade|current|export`: the store's command line.

    python -m annotation upgrade                       # migrate the DB to head (the app also does it on start)
    python -m annotation export --what preferences --format parquet --out prefs.parquet
    python -m annotation export --to exports/prefs          # training-ready: covers/, captions/, README.md
    python -m annotation export --to hf://datasets/ORG/NAME  # the same, pushed (HF_TOKEN or saved login)
    python -m annotation --url postgresql+psycopg://user@host/db upgrade

The database is `--url`; without it, this command line (like `app.settings`, and unlike the library code)
falls back to $DATABASE_URL, then to the SQLite file vitrine.db under $VITRINE_DATA_DIR (default ./.vitrine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from annotation import db
from annotation.errors import AnnotationError
from annotation.export import FORMATS, WHAT


def default_url(env=None) -> str:
    env = os.environ if env is None else env
    if env.get("DATABASE_URL"):
        return env["DATABASE_URL"]
    data_dir = Path(env.get("VITRINE_DATA_DIR") or ".vitrine").expanduser().resolve()
    return f"sqlite:///{data_dir / 'vitrine.db'}"


def _time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date or datetime (2026-11-27T12:00), got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m annotation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="database URL (default: $DATABASE_URL, else $VITRINE_DATA_DIR/vitrine.db)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("upgrade", help="migrate the database to a revision (default: head)")
    up.add_argument("revision", nargs="?", default=db.HEAD)
    down = commands.add_parser("downgrade", help="migrate the database down to a revision ('base' drops all)")
    down.add_argument("revision")
    commands.add_parser("current", help="print the database's migration revision")
    ex = commands.add_parser("export", help="write feedback, preferences, assets or interactions to a file, or "
                                            "(--to) a training-ready preference dataset to a folder or the HF Hub")
    ex.add_argument("--what", choices=WHAT)
    ex.add_argument("--format", choices=FORMATS, dest="fmt")
    ex.add_argument("--out", type=Path)
    ex.add_argument("--to", help="a folder, or hf://datasets/ORG/NAME (pushed with $HF_TOKEN or the saved "
                                 "huggingface-cli login): cover pairs in Pick-a-Pic's layout, caption pairs, a card")
    ex.add_argument("--public", action="store_true", help="with hf://: create the dataset public (default private)")
    ex.add_argument("--since", type=_time, help="only rows created at or after this UTC time")
    ex.add_argument("--until", type=_time, help="only rows created before this UTC time")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    url = args.url or default_url()
    if args.command == "upgrade":
        db.upgrade(url, args.revision)
        print(f"upgraded to {db.current_revision(url)}")
    elif args.command == "downgrade":
        db.downgrade(url, args.revision)
        print(f"downgraded to {db.current_revision(url)}")
    elif args.command == "current":
        print(db.current_revision(url) or "empty (no migration applied)")
    elif args.to:
        return _export_dataset(url, args.to, args.since, args.until, private=not args.public)
    else:
        from annotation.export import export

        missing = [flag for flag, value in (("--what", args.what), ("--format", args.fmt), ("--out", args.out))
                   if value is None]
        if missing:
            print(f"error: export needs --to DIR|hf://datasets/ORG/NAME, or all of --what, --format and --out "
                  f"(missing {', '.join(missing)})", file=sys.stderr)
            return 2
        engine = db.make_engine(url)
        try:
            with db.make_session_factory(engine, read_only=True)() as session:
                n = export(session, args.what, args.fmt, args.out, since=args.since, until=args.until)
        except AnnotationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            engine.dispose()
        print(f"wrote {n} {args.what} rows to {args.out}")
    return 0


HF_PREFIX = "hf://datasets/"


def hf_token(env=None) -> str | None:
    """$HF_TOKEN, else the token `huggingface-cli login` saved, else None."""
    env = os.environ if env is None else env
    if env.get("HF_TOKEN"):
        return env["HF_TOKEN"]
    try:
        from huggingface_hub import get_token
    except ImportError:  # pragma: no cover - huggingface_hub is a pinned requirement
        return None
    return get_token()


def _export_dataset(url: str, to: str, since, until, private: bool = True) -> int:
    """`export --to`: the dataset folder, written locally, then pushed when the target is hf://datasets/..."""
    import tempfile

    from annotation.export import export_dataset, push_to_hub

    repo_id = to[len(HF_PREFIX):].strip("/") if to.startswith(HF_PREFIX) else None
    if to.startswith("hf://") and repo_id is None:
        print(f"error: --to must be a folder or hf://datasets/ORG/NAME, got {to!r}", file=sys.stderr)
        return 2
    token = None
    if repo_id is not None:
        token = hf_token()
        if not token:
            print("error: pushing to the Hub needs a token: set HF_TOKEN or run `huggingface-cli login`",
                  file=sys.stderr)
            return 2
    engine = db.make_engine(url)
    try:
        with tempfile.TemporaryDirectory(prefix="vitrine-export-") as tmp:
            folder = Path(tmp) if repo_id is not None else Path(to)
            with db.make_session_factory(engine, read_only=True)() as session:
                result = export_dataset(session, folder, since=since, until=until,
                                        name=repo_id.split("/")[1] if repo_id else folder.resolve().name)
            where = push_to_hub(folder, repo_id, token, private=private) if repo_id is not None else str(folder)
    except AnnotationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    skipped = f" ({result['skipped_covers']} cover pairs left out: picture unreadable)" if result["skipped_covers"] \
        else ""
    print(f"wrote {result['covers']} cover pairs and {result['captions']} caption pairs to {where}{skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
