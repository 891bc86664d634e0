"""Writes: idempotent events, validation that writes nothing, the catalog, users, assets, eval runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pandas as pd
import pytest

from ann_helpers import count, cover, new_id
from annotation import store
from annotation.errors import (
    EventConflictError,
    InvalidInputError,
    UnknownImpressionError,
    UnknownItemError,
    UnknownUserError,
)
from annotation.models import (
    AppSession,
    EvalRun,
    FeedbackEvent,
    GeneratedAsset,
    Impression,
    ImpressionItem,
    Item,
    User,
)


def _impression(Session, user="196", items=("1", "2", "3"), **kwargs):
    with Session() as s, s.begin():
        return store.record_impression(s, kwargs.pop("event_id", new_id()), user, kwargs.pop("model", "ease"),
                                       list(items) if isinstance(items, tuple) else items, **kwargs)


# -- catalog and users -----------------------------------------------------------------------------------------


def test_sync_items_upserts_and_rejects_bad_rows(catalog):
    Session = catalog
    changed = pd.DataFrame({"item_id": ["1", "99"], "title": ["Renamed", "New"], "year": [None, 2001.0],
                            "genres": ["Action|Drama", None]})
    with Session() as s, s.begin():
        assert store.sync_items(s, changed) == 2
    with Session() as s:
        assert s.get(Item, "1").title == "Renamed" and s.get(Item, "1").year is None
        assert s.get(Item, "1").genres == ["Action", "Drama"]
        assert s.get(Item, "99").year == 2001 and s.get(Item, "99").genres == []
    assert count(Session, Item) == 21
    bad = pd.DataFrame({"item_id": ["100", 101], "title": ["ok", "int id"]})
    with pytest.raises(InvalidInputError, match=r"items.item_id \(row 1\) must be a string, got int"):
        with Session() as s, s.begin():
            store.sync_items(s, bad)
    with pytest.raises(InvalidInputError, match="duplicates"):
        with Session() as s, s.begin():
            store.sync_items(s, pd.DataFrame({"item_id": ["5", "5"], "title": ["a", "b"]}))
    with pytest.raises(InvalidInputError, match="must have columns item_id and title"):
        with Session() as s, s.begin():
            store.sync_items(s, pd.DataFrame({"item_id": ["5"]}))
    assert count(Session, Item) == 21


def test_ensure_user_is_idempotent_and_keeps_kind(catalog):
    Session = catalog
    with Session() as s, s.begin():
        user = store.ensure_user(s, "new-7f3a", kind="new")
        again = store.ensure_user(s, "new-7f3a", kind="dataset")
    assert user.kind == "new" and again.kind == "new"
    assert count(Session, User) == 3
    with pytest.raises(InvalidInputError, match="kind must be one of 'dataset', 'new', got 'admin'"):
        with Session() as s, s.begin():
            store.ensure_user(s, "x", kind="admin")
    with pytest.raises(InvalidInputError, match="user_id must be a string, got int 196"):
        with Session() as s, s.begin():
            store.ensure_user(s, 196)
    with pytest.raises(InvalidInputError, match="at most 64 characters, got 65"):
        with Session() as s, s.begin():
            store.ensure_user(s, "u" * 65)
    assert count(Session, User) == 3


def test_app_session_start_and_touch(catalog):
    Session = catalog
    sid = uuid.uuid4()
    with Session() as s, s.begin():
        first = store.start_session(s, sid, user_agent="pytest")
    with Session() as s, s.begin():
        annotator = store.get_or_create_annotator(s, "ann")
        again = store.start_session(s, str(sid), user_id="196", annotator_id=annotator.id)
    assert again.id == first.id == str(sid)
    assert again.user_id == "196" and again.last_seen_at >= first.last_seen_at
    assert count(Session, AppSession) == 1
    with pytest.raises(UnknownUserError):
        with Session() as s, s.begin():
            store.start_session(s, uuid.uuid4(), user_id="nobody")
    assert count(Session, AppSession) == 1


# -- impressions -----------------------------------------------------------------------------------------------


def test_impression_stores_slate_context_and_retry_is_a_no_op(catalog):
    Session = catalog
    event = new_id()
    first = _impression(Session, event_id=event, items=("3", "1", "2"), context={"tab": "search", "query": "noir",
                                                                                  "page": 2})
    again = _impression(Session, event_id=event, items=("3", "1", "2"), context={"tab": "search", "query": "noir"})
    assert again.id == first.id
    assert first.item_ids == ["3", "1", "2"] and first.tab == "search" and first.query == "noir"
    assert first.context == {"page": 2} and first.contributors is None
    assert count(Session, Impression) == 1 and count(Session, ImpressionItem) == 3
    with pytest.raises(EventConflictError, match="already stored as a different impression"):
        _impression(Session, event_id=event, items=("1", "2"))
    assert count(Session, ImpressionItem) == 3


def test_interleaved_impression_records_contributors(catalog):
    Session = catalog
    imp = _impression(Session, model=("ease", "pop"), items=("1", "2", "3"), contributors=["pop", "ease", "pop"])
    assert (imp.model, imp.model_b, imp.contributors) == ("ease", "pop", ["pop", "ease", "pop"])
    with pytest.raises(InvalidInputError, match=r"contributors must each be one of \['ease', 'pop'\], got \['bpr'\]"):
        _impression(Session, model=("ease", "pop"), items=("1", "2"), contributors=["ease", "bpr"])
    with pytest.raises(InvalidInputError, match="contributors must give, for each of the 2 items"):
        _impression(Session, model=("ease", "pop"), items=("1", "2"))
    with pytest.raises(InvalidInputError, match="only for interleaved slates"):
        _impression(Session, model="ease", items=("1", "2"), contributors=["ease", "ease"])
    assert count(Session, Impression) == 1


@pytest.mark.parametrize("kwargs, error, message", [
    ({"user": "ghost"}, UnknownUserError, "user_id 'ghost' is not a known user"),
    ({"items": ("1", "404")}, UnknownItemError, r"1 unknown, e.g. \['404'\]"),
    ({"items": ()}, InvalidInputError, "item_ids must be a non-empty list"),
    ({"items": ("1", "1")}, InvalidInputError, "must not repeat an item"),
    ({"items": "123"}, InvalidInputError, "item_ids must be a non-empty list"),
    ({"model": ""}, InvalidInputError, "model must be a non-empty string"),
    ({"event_id": "not-a-uuid"}, InvalidInputError, "event_id must be a UUID"),
    ({"context": {"tab": "t" * 33}}, InvalidInputError, r"context\['tab'\] must be at most 32 characters"),
    ({"context": {"x": float("nan")}}, InvalidInputError, "context must be JSON-serialisable with finite numbers"),
    ({"context": ["tab"]}, InvalidInputError, "context must be a dict, got list"),
    ({"session_id": uuid.uuid4()}, InvalidInputError, "is not a recorded app session"),
])
def test_bad_impression_raises_and_writes_nothing(catalog, kwargs, error, message):
    with pytest.raises(error, match=message):
        _impression(catalog, **kwargs)
    assert count(catalog, Impression) == 0 and count(catalog, ImpressionItem) == 0


def test_the_unchecked_writes_store_what_the_checked_ones_store(catalog):
    """`insert_user` / `insert_impression` (for a caller that checked its input already): the rows that
    `ensure_user` / `record_impression` write, idempotent by UUID in the same way."""
    Session = catalog
    with Session() as s, s.begin():
        store.insert_user(s, "nu-1", "new")
        store.insert_user(s, "nu-1", "dataset")  # a stored user keeps its kind, as with ensure_user
    with Session() as s:
        assert s.get(User, "nu-1").kind == "new"
    event = new_id()
    with Session() as s, s.begin():
        imp = store.insert_impression(s, event, "nu-1", ("ease", "pop"), ["2", "1"], ["pop", "ease"],
                                      context={"tab": "api", "seed": 7})
        written = (imp.id, imp.model, imp.model_b, imp.item_ids, imp.contributors, imp.tab, imp.context)
    assert written[1:] == ("ease", "pop", ["2", "1"], ["pop", "ease"], "api", {"seed": 7})
    replayed = _impression(Session, user="nu-1", event_id=event, model=("ease", "pop"), items=("2", "1"),
                           contributors=["pop", "ease"], context={"tab": "api", "seed": 7})
    assert replayed.id == written[0]
    with pytest.raises(EventConflictError, match="already stored as a different impression"):
        with Session() as s, s.begin():
            store.insert_impression(s, event, "nu-1", ("ease",), ["1"])
    assert count(Session, Impression) == 1 and count(Session, ImpressionItem) == 2


# -- feedback --------------------------------------------------------------------------------------------------


def test_feedback_retry_returns_stored_row_and_conflict_is_refused(catalog):
    Session = catalog
    imp = _impression(Session)
    event = uuid.uuid4()
    with Session() as s, s.begin():
        first = store.record_feedback(s, event, "196", "2", "click", impression_id=imp.id)
    with Session() as s, s.begin():
        retry = store.record_feedback(s, str(event).upper(), "196", "2", "click", impression_id=imp.id)
    assert retry.id == first.id and retry.impression_id == imp.id
    with pytest.raises(EventConflictError, match=r"kind: stored 'click', sent 'like'"):
        with Session() as s, s.begin():
            store.record_feedback(s, event, "196", "2", "like")
    assert count(Session, FeedbackEvent) == 1


def test_feedback_by_impression_uuid_and_values(catalog):
    Session = catalog
    imp = _impression(Session)
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with Session() as s, s.begin():
        rating = store.record_feedback(s, new_id(), "196", "1", "rating", impression_id=imp.event_id, value=4, at=at)
        dwell = store.record_feedback(s, new_id(), "196", "3", "dwell", impression_id=imp.id, value=1530.5)
        free = store.record_feedback(s, new_id(), "186", "7", "like")  # e.g. from an item page, no slate
    assert rating.impression_id == imp.id and rating.value == 4.0
    assert rating.created_at == dt.datetime(2026, 1, 2, 1, 4, 5)  # stored as naive UTC
    assert dwell.value == 1530.5 and free.impression_id is None


@pytest.mark.parametrize("kwargs, error, message", [
    ({"kind": "love"}, InvalidInputError, "kind must be one of 'click', 'like', 'dislike', 'rating', 'skip', 'dwell', 'undo'"),
    ({"kind": "rating", "value": 6}, InvalidInputError, r"value must be a finite number between 1 and 5, got 6.0"),
    ({"kind": "rating", "value": 3.5}, InvalidInputError, "whole number from 1 to 5"),
    ({"kind": "rating", "value": "5"}, InvalidInputError, "value must be a number, got str"),
    ({"kind": "rating", "value": True}, InvalidInputError, "value must be a number, got bool"),
    ({"kind": "rating"}, InvalidInputError, "value must be a number, got NoneType"),
    ({"kind": "click", "value": 1}, InvalidInputError, "value must be None for a 'click' event"),
    ({"kind": "dwell", "value": -1}, InvalidInputError, r"dwell milliseconds\) must be a finite number"),
    ({"user_id": "ghost"}, UnknownUserError, "ghost"),
    ({"item_id": "404"}, UnknownItemError, "404"),
    ({"item_id": 2}, InvalidInputError, "item_id must be a string, got int"),
    ({"impression_id": 999}, UnknownImpressionError, "999"),
    ({"impression_id": "7"}, InvalidInputError, "impression_id must be a UUID"),
    ({"item_id": "9"}, InvalidInputError, "is not on the slate of impression_id"),
    ({"user_id": "186"}, InvalidInputError, "was shown to user '196', not to user_id '186'"),
    ({"event_id": 12}, InvalidInputError, "event_id must be a UUID"),
    ({"at": "2026-01-01"}, InvalidInputError, "at must be a datetime or None, got str"),
])
def test_bad_feedback_raises_and_writes_nothing(catalog, kwargs, error, message):
    imp = _impression(catalog)
    args = {"event_id": new_id(), "user_id": "196", "item_id": "1", "kind": "click", "impression_id": imp.id}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        with catalog() as s, s.begin():
            store.record_feedback(s, **args)
    assert count(catalog, FeedbackEvent) == 0


def test_feedback_batch_counts_new_rows_and_skips_retries(catalog):
    Session = catalog
    imp = _impression(Session)
    events = [{"event_id": new_id(), "user_id": "196", "item_id": str(1 + i % 3), "kind": "click",
               "impression_id": imp.id} for i in range(1200)]
    with Session() as s, s.begin():
        assert store.record_feedback_batch(s, events[:700]) == 700
    with Session() as s, s.begin():  # a retried batch overlapping the first one, plus a duplicate inside it
        assert store.record_feedback_batch(s, events[500:] + events[-1:]) == 500
    with Session() as s, s.begin():
        assert store.record_feedback_batch(s, []) == 0
    assert count(Session, FeedbackEvent) == 1200


def test_feedback_batch_rows_read_back_like_single_writes(catalog):
    """The batch path (a driver-level executemany on SQLite) stores exactly what record_feedback stores."""
    Session = catalog
    imp = _impression(Session, model=("ease", "pop"), contributors=["pop", "ease", "pop"])
    at = dt.datetime(2026, 3, 4, 5, 6, 7, 891011)
    single = {"user_id": "196", "item_id": "2", "kind": "rating", "value": 4, "impression_id": imp.id, "at": at}
    ids = new_id(), new_id()
    with Session() as s, s.begin():
        store.record_feedback(s, ids[0], **single)
    with Session() as s, s.begin():
        assert store.record_feedback_batch(s, [dict(single, event_id=ids[1])]) == 1
    with Session() as s:
        frame = store.feedback_frame(s).set_index("event_id")
    columns = ["user_id", "item_id", "kind", "value", "created_at", "impression_id", "model", "position"]
    a, b = (frame.loc[str(i), [c for c in columns if c in frame.columns]] for i in ids)
    assert a.to_dict() == b.to_dict()
    with Session() as s:
        rows = s.query(FeedbackEvent).filter(FeedbackEvent.event_id.in_([str(i) for i in ids])).all()
    assert [(r.created_at, r.model, r.position) for r in rows] == [(at, "ease", 1)] * 2


def test_bad_feedback_batch_writes_nothing(catalog):
    Session = catalog
    good = [{"event_id": new_id(), "user_id": "196", "item_id": "1", "kind": "like"} for _ in range(10)]
    stored = dict(good[0])
    with Session() as s, s.begin():
        store.record_feedback_batch(s, [stored])
    bad_cases = [
        (good + [{"event_id": new_id(), "user_id": "196", "item_id": "404", "kind": "like"}], UnknownItemError),
        (good + [{"event_id": new_id(), "user_id": "nobody", "item_id": "1", "kind": "like"}], UnknownUserError),
        (good + [{"event_id": new_id(), "user_id": "196", "item_id": "1", "kind": "rating", "value": 9}],
         InvalidInputError),
        (good + [{"event_id": new_id(), "user_id": "196", "item_id": "1", "kind": "like", "extra": 1}],
         InvalidInputError),
        (good[1:] + [dict(stored, kind="dislike")], EventConflictError),
        (good[1:] + [dict(good[1], kind="dislike")], EventConflictError),
        ({"event_id": new_id()}, InvalidInputError),
    ]
    for events, error in bad_cases:
        with pytest.raises(error):
            with Session() as s, s.begin():
                store.record_feedback_batch(s, events)
    assert count(Session, FeedbackEvent) == 1


def test_refused_batch_leaves_nothing_even_when_the_caller_commits(catalog):
    """A batch refused for a conflicting replay writes none of its rows, also when the caller catches the error and
    commits the transaction (PostgreSQL inserts first and takes its rows back; SQLite checks first)."""
    Session = catalog
    stored = {"event_id": new_id(), "user_id": "196", "item_id": "1", "kind": "like"}
    with Session() as s, s.begin():
        store.record_feedback_batch(s, [stored])
    fresh = [{"event_id": new_id(), "user_id": "186", "item_id": str(i), "kind": "click"} for i in range(1, 11)]
    with Session() as s, s.begin():
        with pytest.raises(EventConflictError, match="already stored as a different feedback event"):
            store.record_feedback_batch(s, fresh + [dict(stored, kind="dislike")])
    assert count(Session, FeedbackEvent) == 1
    with Session() as s, s.begin():  # and the same fresh events go in afterwards
        assert store.record_feedback_batch(s, fresh + [stored]) == 10
    assert count(Session, FeedbackEvent) == 11


# -- assets and eval runs --------------------------------------------------------------------------------------


def test_record_asset_from_dict_or_dataclass_is_idempotent(catalog):
    Session = catalog

    @dataclasses.dataclass
    class Asset:  # the shape of generation.assets.Asset
        kind: str
        item_id: str
        user_id: str | None
        generator: str
        fallback: bool
        prompt: str
        negative_prompt: str | None
        seed: int | None
        params: dict
        path: str | None
        text: str | None
        content_hash: str
        latency_ms: float
        personalized: bool
        cache_hit: bool

    caption = Asset("caption", "4", None, "fallback", True, "template", None, None, {}, None,
                    "A <b>quiet</b> drama.", "c0ffee", 0.4, False, False)
    event = new_id()
    with Session() as s, s.begin():
        first = store.record_asset(s, caption, event_id=event)
        again = store.record_asset(s, dataclasses.asdict(caption) | {"event_id": event})
        picture = store.record_asset(s, cover())
    assert again.id == first.id and first.text == "A <b>quiet</b> drama." and first.fallback
    assert picture.params == {"steps": 2, "size": 512} and picture.personalized and picture.user_id == "196"
    assert count(Session, GeneratedAsset) == 2


@pytest.mark.parametrize("change, error, message", [
    ({"kind": "video"}, InvalidInputError, "kind'] must be one of 'cover', 'caption'"),
    ({"item_id": "404"}, UnknownItemError, "404"),
    ({"user_id": "ghost"}, UnknownUserError, "ghost"),
    ({"user_id": None}, InvalidInputError, "must name the user a personalized asset was made for"),
    ({"path": None}, InvalidInputError, "must be the image file of a cover"),
    ({"seed": 1.5}, InvalidInputError, r"seed'\] must be an integer or None, got float"),
    ({"latency_ms": -3}, InvalidInputError, "latency_ms"),
    ({"prompt": "x" * 8001}, InvalidInputError, "at most 8000 characters, got 8001"),
    ({"params": {"f": object()}}, InvalidInputError, "JSON-serialisable"),
    ({"personalized": "yes"}, InvalidInputError, r"personalized'\] must be True or False, got str"),
    ({"width": 512}, InvalidInputError, r"unknown fields \['width'\]"),
    ({"event_id": None}, InvalidInputError, r"missing \['event_id'\]"),
])
def test_bad_asset_raises_and_writes_nothing(catalog, change, error, message):
    with pytest.raises(error, match=message):
        with catalog() as s, s.begin():
            store.record_asset(s, cover(**change))
    assert count(catalog, GeneratedAsset) == 0


def test_eval_run_round_trip_and_validation(catalog):
    Session = catalog
    with Session() as s, s.begin():
        run = store.record_eval_run(s, "ease", "ml-100k", "random", {"recall@10": 0.21, "ndcg@10": 0.12},
                                    {"l2": 500.0, "seed": 2020})
    assert run.metrics == {"recall@10": 0.21, "ndcg@10": 0.12} and run.config["seed"] == 2020
    for metrics in ({}, {"recall@10": "high"}, {"recall@10": float("inf")}, [("recall@10", 0.2)]):
        with pytest.raises(InvalidInputError, match="metrics"):
            with Session() as s, s.begin():
                store.record_eval_run(s, "ease", "ml-100k", "random", metrics)
    assert count(Session, EvalRun) == 1
