"""A feedback writer for the reliability tests: importable (threads) and runnable as a script (processes).

    python tests/annotation/ann_writer.py URL --writer 3 --events 2000 --retry 0.1 --seed 0 [--ack]

Writes `events` click/like/rating events, one per transaction, each with a UUID derived from (writer, k), so
the expected set of rows is known in advance. A seeded `retry` fraction of events is sent a second time in a
new transaction (as a client would after a timeout). With --ack, each event's UUID is printed, flushed, after
its transaction committed: whatever was printed has been acknowledged to the client.
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid

NAMESPACE = uuid.UUID("5d1b2a64-8f0c-4d55-9a43-6f1f2b7c9e10")
N_USERS, N_ITEMS = 8, 20


def event_uuid(writer: int, k: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{writer}-{k}"))


def write_events(Session, writer: int, events: int, retry: float, seed: int, ack=None) -> int:
    """Returns the number of write calls made (events + retries)."""
    from annotation import store

    rng = random.Random(seed * 1000 + writer)
    calls = 0
    for k in range(events):
        kind = rng.choice(("click", "like", "rating"))
        args = dict(event_id=event_uuid(writer, k), user_id=str(1 + (writer + k) % N_USERS),
                    item_id=str(1 + k % N_ITEMS), kind=kind, value=rng.randint(1, 5) if kind == "rating" else None)
        for _ in range(2 if rng.random() < retry else 1):
            with Session() as s, s.begin():
                store.record_feedback(s, **args)
            calls += 1
            if ack is not None:
                ack(args["event_id"])
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--writer", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--retry", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ack", action="store_true")
    args = parser.parse_args(argv)
    from annotation.db import make_engine, make_session_factory

    engine = make_engine(args.url)

    def ack(event_id: str) -> None:
        sys.stdout.write(event_id + "\n")
        sys.stdout.flush()

    write_events(make_session_factory(engine), args.writer, args.events, args.retry, args.seed,
                 ack if args.ack else None)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
