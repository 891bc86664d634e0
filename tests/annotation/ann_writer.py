"""A feedback writer for the reliability tests: importable (threads) and runnable as a script (processes).

    python tests/annotation/ann_writer.py URL --writer 3 --events 2000 --retry 0.1 --seed 0 [--ack]
    python tests/annotation/ann_writer.py URL --writer 3 --events 2000 --batch 250 [--ack] [--hang-in-batch 4]

Writes `events` click/like/rating events, one per transaction, each with a UUID derived from (writer, k), so
the expected set of rows is known in advance. A seeded `retry` fraction of events is sent a second time in a
new transaction (as a client would after a timeout). With --ack, each event's UUID is printed, flushed, after
its transaction committed: whatever was printed has been acknowledged to the client.

With --batch, the events go in `store.record_feedback_batch` calls of that many events, one transaction each
(`batch_events` lists them); --hang-in-batch K stops inside the transaction of batch K, after its rows were
written and before COMMIT, prints "IN-BATCH" and waits to be killed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid

NAMESPACE = uuid.UUID("5d1b2a64-8f0c-4d55-9a43-6f1f2b7c9e10")
N_USERS, N_ITEMS = 8, 20


def event_uuid(writer: int, k: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{writer}-{k}"))


def event_args(writer: int, k: int, rng: random.Random) -> dict:
    kind = rng.choice(("click", "like", "rating"))
    return dict(event_id=event_uuid(writer, k), user_id=str(1 + (writer + k) % N_USERS),
                item_id=str(1 + k % N_ITEMS), kind=kind, value=rng.randint(1, 5) if kind == "rating" else None)


def batch_events(writer: int, events: int, batch: int, seed: int) -> list[list[dict]]:
    """The events of `writer` in batches of `batch` (the same events, values included, for the same seed)."""
    rng = random.Random(seed * 1000 + writer)
    every = [event_args(writer, k, rng) for k in range(events)]
    return [every[start : start + batch] for start in range(0, events, batch)]


def write_batches(Session, batches: list[list[dict]], ack=None, hang_in_batch: int | None = None) -> int:
    """Write each batch in a transaction of its own; returns the number of new rows."""
    from annotation import store

    new = 0
    for k, events in enumerate(batches):
        with Session() as s, s.begin():
            new += store.record_feedback_batch(s, events)
            if k == hang_in_batch:
                print("IN-BATCH", flush=True)
                time.sleep(3600)
        if ack is not None:
            for event in events:
                ack(event["event_id"])
    return new


def write_events(Session, writer: int, events: int, retry: float, seed: int, ack=None) -> int:
    """Returns the number of write calls made (events + retries)."""
    from annotation import store

    rng = random.Random(seed * 1000 + writer)
    calls = 0
    for k in range(events):
        args = event_args(writer, k, rng)
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
    parser.add_argument("--batch", type=int, default=0, help="events per record_feedback_batch call (0: one by one)")
    parser.add_argument("--hang-in-batch", type=int, default=None)
    parser.add_argument("--reverse", action="store_true", help="send each batch's events in reverse order")
    parser.add_argument("--start-at", type=float, default=0.0, help="wait until this time.time() to begin")
    args = parser.parse_args(argv)
    from annotation.db import make_engine, make_session_factory

    engine = make_engine(args.url)
    with engine.connect():  # connected and imported before the common start
        pass
    while time.time() < args.start_at:
        time.sleep(0.002)

    def ack(event_id: str) -> None:
        sys.stdout.write(event_id + "\n")
        sys.stdout.flush()

    if args.batch:
        batches = batch_events(args.writer, args.events, args.batch, args.seed)
        if args.reverse:
            batches = [events[::-1] for events in batches]
        write_batches(make_session_factory(engine), batches, ack if args.ack else None, args.hang_in_batch)
    else:
        write_events(make_session_factory(engine), args.writer, args.events, args.retry, args.seed,
                     ack if args.ack else None)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
