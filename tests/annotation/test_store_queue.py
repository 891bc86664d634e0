"""Pairs, the labeling queue (overlap, leases, no repeats, concurrency) and preference labels with history."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
from sqlalchemy import select

from ann_helpers import count, cover, new_id
from annotation import queue, store
from annotation.errors import (
    EventConflictError,
    InvalidInputError,
    UnknownAnnotatorError,
    UnknownAssetError,
    UnknownPairError,
)
from annotation.models import PairAssignment, PairTask, PreferenceLabel


def _pairs(Session, n: int, kind="cover") -> list[int]:
    ids = []
    with Session() as s, s.begin():
        for i in range(n):
            item = str(1 + i % 20)
            if kind == "cover":
                a = store.record_asset(s, cover(item_id=item))
                b = store.record_asset(s, cover(item_id=item, personalized=False, generator="fallback", fallback=True))
            else:
                a = store.record_asset(s, cover(item_id=item, kind="caption", path=None, text=f"caption {i}"))
                b = store.record_asset(s, cover(item_id=item, kind="caption", path=None, text=f"generic {i}",
                                                personalized=False))
            ids.append(queue.create_pair(s, a.id, b.id, "196").id)
    return ids


def _annotators(Session, n: int) -> list[int]:
    with Session() as s, s.begin():
        return [store.get_or_create_annotator(s, f"annotator-{i}").id for i in range(n)]


def _label(Session, pair, annotator, choice="A", event=None, **kwargs):
    with Session() as s, s.begin():
        return queue.record_preference(s, event or new_id(), pair, annotator, choice, **kwargs)


def _prefs(Session, **kwargs):
    with Session() as s:
        return store.preferences_frame(s, **kwargs)


def _next(Session, annotator, overlap=2, **kwargs):
    with Session() as s, s.begin():
        pair = queue.next_pair(s, annotator, overlap=overlap, **kwargs)
        return None if pair is None else pair.id


def test_create_pair_is_idempotent_and_loads_both_sides(catalog):
    Session = catalog
    with Session() as s, s.begin():
        a = store.record_asset(s, cover())
        b = store.record_asset(s, cover(personalized=False))
        pair = queue.create_pair(s, a.id, b.id, "196", "cover")
        same = queue.create_pair(s, b.id, a.id, "196")  # the same two assets in the other order
        other_user = queue.create_pair(s, a.id, b.id, None)
    assert same.id == pair.id != other_user.id
    assert (pair.asset_a.id, pair.asset_b.id, pair.kind) == (a.id, b.id, "cover")
    assert pair.asset_a.path.endswith(".png")  # loaded: readable after the session closed
    with pytest.raises(InvalidInputError, match="must differ"):
        with Session() as s, s.begin():
            queue.create_pair(s, a.id, a.id)
    with pytest.raises(UnknownAssetError, match="asset_b_id 999 is not a generated asset"):
        with Session() as s, s.begin():
            queue.create_pair(s, a.id, 999)
    with pytest.raises(InvalidInputError, match="kind must match"):
        with Session() as s, s.begin():
            queue.create_pair(s, a.id, b.id, kind="caption")
    assert count(Session, PairTask) == 2


def test_slate_pairs_compare_two_impressions(catalog):
    Session = catalog
    with Session() as s, s.begin():
        one = store.record_impression(s, new_id(), "196", "ease", ["1", "2"])
        two = store.record_impression(s, new_id(), "196", "pop", ["3", "4"])
        pair = queue.create_pair(s, one.id, two.id, "196", "slate")
        annotator = store.get_or_create_annotator(s, "ann").id
    assert pair.impression_a.item_ids == ["1", "2"] and pair.asset_a is None
    label = _label(Session, pair.id, annotator, "B")
    frame = _prefs(Session)
    assert label.choice == "B"
    assert frame.loc[0, ["generator_a", "generator_b", "impression_a_id"]].tolist() == ["ease", "pop", one.id]


def test_queue_respects_overlap_and_never_repeats(catalog):
    Session = catalog
    pairs = _pairs(Session, 3)
    alice, bob, carol = _annotators(Session, 3)
    first = _next(Session, alice)
    assert first in pairs
    assert _next(Session, alice) == first  # reload: the open pair again, not a new one
    _label(Session, first, alice, "A")
    seen = {first}
    while (pair := _next(Session, alice)) is not None:
        assert pair not in seen
        seen.add(pair)
        _label(Session, pair, alice, "B")
    assert seen == set(pairs)
    # bob is handed the pair closest to complete first; with overlap 2 carol gets the same three, nobody a 4th time
    for annotator in (bob, carol):
        got = set()
        while (pair := _next(Session, annotator)) is not None:
            got.add(pair)
            _label(Session, pair, annotator, "tie")
        assert got == set(pairs) if annotator == bob else got == set()
    with Session() as s:
        assert [p.slots_taken for p in s.scalars(select(PairTask))] == [2, 2, 2]


def test_skip_frees_the_slot_and_expired_lease_is_released(catalog):
    Session = catalog
    [pair] = _pairs(Session, 1)
    alice, bob, carol = _annotators(Session, 3)
    assert _next(Session, alice, overlap=1) == pair
    assert _next(Session, bob, overlap=1) is None  # alice holds the only slot
    _label(Session, pair, alice, "skip")
    assert _next(Session, alice, overlap=1) is None  # never handed back to alice
    assert _next(Session, bob, overlap=1, lease_seconds=60) == pair  # the skip freed the slot
    assert _next(Session, carol, overlap=1) is None
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=120)
    assert _next(Session, carol, overlap=1, now=later) == pair  # bob's lease ran out
    with Session() as s:
        assert s.scalars(select(PairAssignment.annotator_id).where(PairAssignment.pair_id == pair)).all() == [alice, carol]


def test_change_and_undo_keep_history_and_return_the_pair(catalog):
    Session = catalog
    pairs = _pairs(Session, 2)
    [alice] = _annotators(Session, 1)
    first = _next(Session, alice)
    a = _label(Session, first, alice, "A", time_spent_ms=1500)
    changed = _label(Session, first, alice, "B", guideline_version="v2")
    assert changed.supersedes_id == a.id
    second = _next(Session, alice)
    assert second != first
    _label(Session, second, alice, "tie")
    with Session() as s, s.begin():
        cleared = queue.undo_last_preference(s, new_id(), alice)
    assert cleared.choice is None and cleared.pair_id == second
    assert _next(Session, alice) == second  # undo hands the pair back
    with Session() as s, s.begin():
        again = queue.undo_last_preference(s, new_id(), alice)  # then the label before it
    assert again.pair_id == first
    with Session() as s, s.begin():
        assert queue.undo_last_preference(s, new_id(), alice) is None  # nothing left to undo
    current = _prefs(Session)
    history = _prefs(Session, include_history=True)
    assert current.empty
    assert history.sort_values("label_id")["choice"].fillna("cleared").tolist() == ["A", "B", "tie", "cleared", "cleared"]
    assert history["is_current"].tolist().count(True) == 2  # the two clearing rows
    with Session() as s:
        assert {p.id: p.slots_taken for p in s.scalars(select(PairTask))} == {first: 1, second: 1}


def test_preference_retry_and_conflict(catalog):
    Session = catalog
    [pair] = _pairs(Session, 1)
    [alice] = _annotators(Session, 1)
    event = new_id()
    first = _label(Session, pair, alice, "A", event=event)
    retry = _label(Session, pair, alice, "A", event=event)
    assert retry.id == first.id and count(Session, PreferenceLabel) == 1
    with pytest.raises(EventConflictError, match="choice: stored 'A', sent 'B'"):
        _label(Session, pair, alice, "B", event=event)
    assert count(Session, PreferenceLabel) == 1


def test_label_by_asset_ids_creates_the_pair(catalog):
    Session = catalog
    [alice] = _annotators(Session, 1)
    with Session() as s, s.begin():
        a = store.record_asset(s, cover())
        b = store.record_asset(s, cover(personalized=False))
    label = _label(Session, (a.id, b.id), alice, "B")
    assert label.pair.asset_a_id == a.id and count(Session, PairTask) == 1
    assert _next(Session, alice) is None  # labeled outside the queue: not handed to alice again


@pytest.mark.parametrize("change, error, message", [
    ({"choice": "C"}, InvalidInputError, "choice must be one of 'A', 'B', 'tie', 'skip', got 'C'"),
    ({"choice": None}, InvalidInputError, "choice must be one of"),
    ({"pair": 999}, UnknownPairError, "pair_id 999 does not exist"),
    ({"pair": (1, 999)}, UnknownAssetError, "999"),
    ({"pair": "1"}, InvalidInputError, "pair must be a pair id or a tuple"),
    ({"annotator": 42}, UnknownAnnotatorError, "annotator_id 42 does not exist"),
    ({"time_spent_ms": -5}, InvalidInputError, "time_spent_ms must be between 0 and"),
    ({"guideline_version": ""}, InvalidInputError, "guideline_version must be a non-empty string"),
])
def test_bad_preference_raises_and_writes_nothing(catalog, change, error, message):
    Session = catalog
    [pair] = _pairs(Session, 1)
    [alice] = _annotators(Session, 1)
    args = {"pair": pair, "annotator": alice, "choice": "A"}
    args.update(change)
    extra = {k: args.pop(k) for k in ("time_spent_ms", "guideline_version") if k in args}
    with pytest.raises(error, match=message):
        _label(Session, args["pair"], args["annotator"], args["choice"], **extra)
    assert count(Session, PreferenceLabel) == 0 and count(Session, PairAssignment) == 0


def test_bad_queue_arguments(catalog):
    Session = catalog
    [alice] = _annotators(Session, 1)
    with pytest.raises(InvalidInputError, match="overlap must be between 1 and 100, got 0"):
        _next(Session, alice, overlap=0)
    with pytest.raises(UnknownAnnotatorError):
        _next(Session, 77)
    with pytest.raises(InvalidInputError, match="kind must be one of 'cover', 'caption', 'slate'"):
        _next(Session, alice, kind="video")
    with pytest.raises(InvalidInputError, match="name must be a non-empty string"):
        with Session() as s, s.begin():
            store.get_or_create_annotator(s, "   ")


def test_queue_filters_by_kind(catalog):
    Session = catalog
    covers = _pairs(Session, 1)
    captions = _pairs(Session, 1, kind="caption")
    [alice] = _annotators(Session, 1)
    assert _next(Session, alice, kind="caption") == captions[0]
    _label(Session, captions[0], alice, "A")
    assert _next(Session, alice, kind="caption") is None
    assert _next(Session, alice) == covers[0]


def test_concurrent_annotators_never_exceed_overlap(catalog):
    """8 annotators label 12 pairs at once (overlap 3): every pair gets exactly 3 distinct annotators."""
    Session = catalog
    pairs = _pairs(Session, 12)
    annotators = _annotators(Session, 8)
    handed: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(len(annotators))

    def work(annotator: int) -> None:
        try:
            start.wait()
            while (pair := _next(Session, annotator, overlap=3)) is not None:
                with lock:
                    handed.append((pair, annotator))
                _label(Session, pair, annotator, "A")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(a,)) for a in annotators]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(handed) == len(set(handed)) == 12 * 3  # nobody got a pair twice
    assert Counter(pair for pair, _ in handed) == {pair: 3 for pair in pairs}
    assert count(Session, PreferenceLabel) == 36


@pytest.fixture
def pg_catalog(pg_store_url):
    """The `catalog` of the other tests, on PostgreSQL only (row-lock behaviour)."""
    from sqlalchemy import text

    from ann_helpers import ITEMS
    from annotation.db import make_engine, make_session_factory
    from annotation.models import Base

    engine = make_engine(pg_store_url)
    with engine.begin() as conn:
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    Session = make_session_factory(engine)
    with Session() as s, s.begin():
        store.sync_items(s, ITEMS)
        store.ensure_user(s, "196")
    yield Session
    engine.dispose()


def test_a_label_being_written_does_not_hide_its_pair_from_the_queue(pg_catalog):
    """A label's foreign key holds a KEY SHARE lock on its pair until it commits; the queue claims with FOR NO
    KEY UPDATE, which does not conflict with it, so the pair is still handed out meanwhile."""
    Session = pg_catalog
    (pair,) = _pairs(Session, 1)
    first, second = _annotators(Session, 2)
    assert _next(Session, first, overlap=2) == pair
    with Session() as s, s.begin():
        queue.record_preference(s, new_id(), pair, first, "A")  # uncommitted: KEY SHARE on the pair's row
        assert _next(Session, second, overlap=2) == pair


def test_a_pair_being_claimed_is_waited_for_not_reported_missing(pg_catalog):
    """Another annotator's claim in flight locks the pair; when it gives up (rollback), the slot is still
    free, and the queue hands it out rather than telling this annotator that nothing is left."""
    Session = pg_catalog
    (pair,) = _pairs(Session, 1)
    first, second = _annotators(Session, 2)
    found = []
    with Session() as s, s.begin():
        assert queue.next_pair(s, first, overlap=1).id == pair  # holds the row lock until the rollback
        waiter = threading.Thread(target=lambda: found.append(_next(Session, second, overlap=1)))
        waiter.start()
        waiter.join(timeout=0.3)
        assert waiter.is_alive()  # waiting, not answering "nothing left"
        s.rollback()
    waiter.join(timeout=10)
    assert found == [pair]
