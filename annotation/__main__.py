"""`python -m annotation upgrade|downgrade|current|export`: the store's command line.

    python -m annotation upgrade                       # migrate the DB to head (the app also does it on start)
    python -m annotation export --what preferences --format parquet --out prefs.parquet
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
    ex = commands.add_parser("export", help="write feedback, preferences, assets or interactions to a file")
    ex.add_argument("--what", required=True, choices=WHAT)
    ex.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    ex.add_argument("--out", required=True, type=Path)
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
    else:
        from annotation.export import export

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


if __name__ == "__main__":
    sys.exit(main())
