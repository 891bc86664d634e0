"""Read helpers (the dashboard's DataFrames), the interactions table, exports and the synthetic loader."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from ann_helpers import cover, new_id
from annotation import queue, store
from annotation.__main__ import main
from annotation.errors import InvalidInputError
from annotation.export import PAIR_COLUMNS, export
from annotation.synthetic import populate

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


def _at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def logged(catalog):
    """A small, fully known log: two slates, feedback, two labeled pairs (one changed), two eval runs."""
    Session = catalog
    with Session() as s, s.begin():
        plain = store.record_impression(s, new_id(), "196", "ease", ["1", "2", "3"], context={"tab": "home"}, at=_at(0))
        mixed = store.record_impression(s, new_id(), "186", ("ease", "pop"), ["4", "5"], contributors=["pop", "ease"],
                                        context={"tab": "search", "query": "heist"}, at=_at(1))
        feedback = [
            ("196", "1", "click", plain.id, None, 2), ("196", "1", "like", plain.id, None, 3),
            ("196", "2", "rating", plain.id, 2, 4), ("196", "3", "click", plain.id, None, 5),
            ("196", "3", "dislike", None, None, 6), ("186", "5", "click", mixed.id, None, 7),
            ("186", "4", "rating", mixed.id, 5, 8), ("186", "4", "dwell", mixed.id, 4200, 9),
            ("186", "6", "skip", None, None, 90),
        ]
        for user, item, kind, imp, value, minute in feedback:
            store.record_feedback(s, new_id(), user, item, kind, impression_id=imp, value=value, at=_at(minute))
        a = store.record_asset(s, cover(item_id="1", prompt="a <script>noir</script> poster"))
        b = store.record_asset(s, cover(item_id="1", personalized=False, generator="fallback", fallback=True))
        c = store.record_asset(s, cover(item_id="2", kind="caption", path=None, text="Funny."))
        d = store.record_asset(s, cover(item_id="2", kind="caption", path=None, text="Sad.", personalized=False))
        covers = queue.create_pair(s, a.id, b.id, "196")
        captions = queue.create_pair(s, c.id, d.id, "196")
        ann = store.get_or_create_annotator(s, "ann").id
        bob = store.get_or_create_annotator(s, "bob", role="admin").id
        queue.record_preference(s, new_id(), covers.id, ann, "B", time_spent_ms=900, at=_at(20))
        queue.record_preference(s, new_id(), covers.id, ann, "A", time_spent_ms=1100, at=_at(21))  # changed
        queue.record_preference(s, new_id(), covers.id, bob, "tie", time_spent_ms=3000, at=_at(22))
        queue.record_preference(s, new_id(), captions.id, bob, "skip", at=_at(23))
        store.record_eval_run(s, "ease", "ml-100k", "random", {"recall@10": 0.2, "ndcg@10": 0.11}, at=_at(30))
        store.record_eval_run(s, "pop", "ml-100k", "random", {"recall@10": 0.1}, at=_at(31))
    return Session


def _read(Session, name, **kwargs):
    with Session() as s:
        return getattr(store, name)(s, **kwargs)


def test_feedback_frame_columns_and_window(logged):
    frame = _read(logged, "feedback_frame")
    assert list(frame.columns) == ["event_id", "user_id", "item_id", "kind", "value", "impression_id", "model",
                                   "model_b", "contributor", "position", "tab", "created_at"]
    assert len(frame) == 9 and frame["created_at"].is_monotonic_increasing
    row = frame[(frame["item_id"] == "5") & (frame["kind"] == "click")].iloc[0]
    assert (row["model"], row["model_b"], row["contributor"], row["position"], row["tab"]) == ("ease", "pop", "ease", 1,
                                                                                              "search")
    assert str(frame["impression_id"].dtype) == "Int64" and frame["impression_id"].isna().sum() == 2
    window = _read(logged, "feedback_frame", since=_at(3), until=_at(8))
    assert window["created_at"].min() >= _at(3) and window["created_at"].max() < _at(8) and len(window) == 5
    with pytest.raises(InvalidInputError, match="until must be after since"):
        _read(logged, "feedback_frame", since=_at(5), until=_at(5))


def test_impressions_frame(logged):
    frame = _read(logged, "impressions_frame")
    assert list(frame.columns) == ["impression_id", "event_id", "user_id", "model", "model_b", "interleaved", "tab",
                                   "query", "item_ids", "contributors", "n_items", "created_at"]
    assert frame["item_ids"].tolist() == [["1", "2", "3"], ["4", "5"]]
    assert frame["contributors"].tolist() == [None, ["pop", "ease"]]
    assert frame["interleaved"].tolist() == [False, True] and frame["n_items"].tolist() == [3, 2]
    assert _read(logged, "impressions_frame", since=_at(0.5))["impression_id"].tolist() == [frame.loc[1, "impression_id"]]


def test_preferences_frame_joins_both_assets(logged):
    frame = _read(logged, "preferences_frame")
    assert sorted(frame["choice"]) == ["A", "skip", "tie"]  # current labels; the changed label's "B" is history
    full = _read(logged, "preferences_frame", include_history=True)
    assert len(full) == 4 and full["is_current"].sum() == 3
    row = frame[frame["annotator"] == "ann"].iloc[0]
    assert frame["kind"].tolist() == ["cover", "cover", "caption"]
    assert (row["generator_a"], row["generator_b"]) == ("stabilityai/sd-turbo", "fallback")
    assert (bool(row["personalized_a"]), bool(row["personalized_b"]), bool(row["fallback_b"])) == (True, False, True)
    assert row["supersedes_id"] == full.iloc[0]["label_id"] and row["time_spent_ms"] == 1100


def test_assets_eval_runs_and_annotators_frames(logged):
    assets = _read(logged, "assets_frame")
    assert len(assets) == 4 and assets["kind"].tolist() == ["cover", "cover", "caption", "caption"]
    assert assets.loc[0, "params"] == {"steps": 2, "size": 512} and assets["fallback"].tolist()[:2] == [False, True]
    runs = _read(logged, "eval_runs_frame")
    assert list(runs.columns) == ["run_id", "model", "dataset", "split", "created_at", "config", "ndcg@10", "recall@10"]
    assert runs["recall@10"].tolist() == [0.2, 0.1] and pd.isna(runs.loc[1, "ndcg@10"])
    people = _read(logged, "annotators_frame").set_index("name")
    assert people.loc["ann", ["n_labels", "n_skips", "n_revisions"]].tolist() == [1, 0, 1]
    assert people.loc["bob", ["role", "n_labels", "n_skips", "median_time_ms"]].tolist() == ["admin", 2, 1, 3000.0]
    assert people.loc["ann", "last_label_at"] == _at(21)


def test_empty_frames_keep_their_columns(catalog):
    for name, column in [("feedback_frame", "model"), ("impressions_frame", "item_ids"), ("assets_frame", "generator"),
                         ("preferences_frame", "generator_a"), ("annotators_frame", "n_labels"),
                         ("interactions_frame", "weight"), ("eval_runs_frame", "model")]:
        frame = _read(catalog, name)
        assert frame.empty and column in frame.columns, name


def test_interactions_frame_weights_and_negatives(logged):
    frame = _read(logged, "interactions_frame")
    assert list(frame.columns) == ["user_id", "item_id", "weight", "timestamp"]
    got = {(u, i): w for u, i, w in zip(frame["user_id"], frame["item_id"], frame["weight"])}
    # 196/1: click then like -> 1.0; 196/2: rating 2 -> negative; 196/3: click then dislike -> negative;
    # 186/5 click -> 0.5; 186/4: rating 5 -> 1.0 (dwell adds nothing); 186/6 skip -> nothing
    assert got == {("186", "4"): 1.0, ("186", "5"): 0.5, ("196", "1"): 1.0, ("196", "2"): -1.0, ("196", "3"): -1.0}
    ts = dict(zip(zip(frame["user_id"], frame["item_id"]), frame["timestamp"]))
    assert ts[("196", "1")] == int(_at(3).replace(tzinfo=dt.timezone.utc).timestamp())
    assert frame["timestamp"].dtype == "int64"
    custom = _read(logged, "interactions_frame", weights={"like": 1.0, "click": 0.0, "dwell": 0.2, "skip": 0.0})
    assert set(zip(custom["user_id"], custom["item_id"])) == {("186", "4"), ("196", "1"), ("196", "2"), ("196", "3")}
    with pytest.raises(InvalidInputError, match="weights keys must be among"):
        _read(logged, "interactions_frame", weights={"rating": 1.0})
    with pytest.raises(InvalidInputError, match=r"weights\['like'\] must be a finite number between 0 and 1"):
        _read(logged, "interactions_frame", weights={"like": 2.0})



def test_an_undo_takes_back_a_like_or_dislike_for_the_visitor_and_for_retraining(catalog):
    """reads.visitor_feedback (the visitor's current likes) and interactions_frame (what retraining learns) follow
    one rule: the latest of an item's like / dislike / undo is its state; an undo leaves it neither."""
    from annotation import reads

    with catalog() as s, s.begin():
        for item, kind, minute in [("1", "like", 0), ("1", "undo", 1), ("2", "dislike", 2), ("2", "undo", 3),
                                   ("3", "like", 4), ("3", "undo", 5), ("3", "like", 6), ("4", "click", 7),
                                   ("4", "like", 8), ("4", "undo", 9), ("5", "dislike", 10)]:
            store.record_feedback(s, new_id(), "196", item, kind, at=_at(minute))
    with catalog() as s:
        assert reads.visitor_feedback(s, "196") == (["3"], ["5"])
        # the visitor in one read: the stored kind (unless the caller knows the user without it), the same likes,
        # and what they opened (a click; an undo takes back a like, never the opening)
        assert reads.visitor(s, "196") == ("dataset", ["3"], ["5"], ["4"])
        assert reads.visitor(s, "196", stored_kind=False) == (None, ["3"], ["5"], ["4"])
        assert reads.visitor(s, "nobody") == (None, [], [], [])
    frame = _read(catalog, "interactions_frame")
    got = {(u, i): w for u, i, w in zip(frame["user_id"], frame["item_id"], frame["weight"])}
    assert got == {("196", "3"): 1.0, ("196", "4"): 0.5, ("196", "5"): -1.0}


@pytest.mark.parametrize("what, n", [("feedback", 9), ("preferences", 2), ("assets", 4), ("interactions", 5)])
def test_export_jsonl_and_parquet(logged, tmp_path, what, n):
    with logged() as s:
        assert export(s, what, "jsonl", tmp_path / f"{what}.jsonl") == n
        assert export(s, what, "parquet", tmp_path / "deep" / f"{what}.parquet") == n
    rows = [json.loads(line) for line in (tmp_path / f"{what}.jsonl").read_text().splitlines()]
    table = pd.read_parquet(tmp_path / "deep" / f"{what}.parquet")
    assert len(rows) == len(table) == n
    assert list(rows[0]) == list(table.columns)
    assert not list(tmp_path.glob("**/.*.tmp"))


def test_preference_export_is_pick_a_pic_like_and_loads_with_datasets(logged, tmp_path):
    with logged() as s:
        export(s, "preferences", "parquet", tmp_path / "prefs.parquet")
    table = pd.read_parquet(tmp_path / "prefs.parquet")
    assert list(table.columns) == PAIR_COLUMNS
    by = table.set_index("annotator")
    assert by.loc["ann", ["label_0", "label_1", "choice"]].tolist() == [1.0, 0.0, "A"]
    assert by.loc["bob", ["label_0", "label_1", "best_image_uid"]].tolist() == [0.5, 0.5, ""]
    assert by.loc["ann", "best_image_uid"] == by.loc["ann", "image_0_uid"]
    assert by.loc["ann", "image_0"].endswith(".png") and by.loc["ann", "prompt"] == "a <script>noir</script> poster"
    assert (by.loc["ann", "model_0"], by.loc["ann", "model_1"]) == ("stabilityai/sd-turbo", "fallback")
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "prefs.parquet"), split="train",
                                   cache_dir=str(tmp_path / "hf-cache"))
    assert loaded.num_rows == 2 and {"prompt", "image_0", "image_1", "label_0", "label_1"} <= set(loaded.column_names)


def test_export_cli_and_bad_arguments(logged, db_url, tmp_path, capsys):
    out = tmp_path / "fb.jsonl"
    assert main(["--url", db_url, "export", "--what", "feedback", "--format", "jsonl", "--out", str(out),
                 "--since", _at(3).isoformat()]) == 0
    assert "wrote 8 feedback rows" in capsys.readouterr().out and len(out.read_text().splitlines()) == 8
    with pytest.raises(SystemExit):
        main(["--url", db_url, "export", "--what", "labels", "--format", "jsonl", "--out", str(out)])
    with logged() as s:
        with pytest.raises(InvalidInputError, match="fmt must be one of jsonl, parquet, got 'csv'"):
            export(s, "feedback", "csv", out)
        with pytest.raises(InvalidInputError, match="out must be a file path"):
            export(s, "feedback", "jsonl", tmp_path)


def test_synthetic_populate_is_consistent(engine, Session):
    counts = populate(engine, 2_000, seed=3, n_users=50, n_items=40, end=T0)
    assert counts["feedback_events"] == 2_000 and counts["impressions"] == 500
    with Session() as s:
        feedback = store.feedback_frame(s)
        impressions = store.impressions_frame(s)
        prefs = store.preferences_frame(s, include_history=True)
    assert len(feedback) == 2_000 and feedback["position"].notna().all()  # every event's item is on its slate
    shown = impressions.set_index("impression_id")["user_id"]
    assert (feedback["user_id"].to_numpy() == shown.loc[feedback["impression_id"].astype(int)].to_numpy()).all()
    assert feedback["created_at"].max() <= T0 + dt.timedelta(minutes=10)
    assert feedback.loc[feedback["kind"] == "rating", "value"].between(1, 5).all()
    assert len(prefs) == counts["preference_labels"]
    assert (prefs[prefs["is_current"]].groupby(["pair_id", "annotator_id"]).size() == 1).all()
    again = populate(engine, 100, seed=3, n_users=50, n_items=40, end=T0)  # appends, ids continue
    assert again["feedback_events"] == 100
    with Session() as s, s.begin():  # the store keeps working on top of bulk-loaded rows
        store.record_feedback(s, new_id(), "1", "1", "like")
        annotator = store.get_or_create_annotator(s, "after-populate")
        assert queue.next_pair(s, annotator.id, overlap=3) is not None
    with pytest.raises(InvalidInputError, match="n_events must be a non-negative integer"):
        populate(engine, -1)


def test_sql_aggregates_match_the_frames(logged):
    counts = _read(logged, "feedback_counts")
    assert list(counts.columns) == ["day", "kind", "n"] and counts["n"].sum() == 9
    assert counts["day"].dt.normalize().eq(pd.Timestamp(T0.date())).all()
    totals = _read(logged, "feedback_counts", by="total").set_index("kind")["n"].to_dict()
    assert totals == {"click": 3, "dislike": 1, "dwell": 1, "like": 1, "rating": 2, "skip": 1}
    assert _read(logged, "feedback_counts", since=_at(8))["n"].sum() == 3
    rates = _read(logged, "model_feedback_rates", kinds=("click", "like")).set_index(["model", "kind"])
    # slate 1: ease shows 3 items, clicks on items 1 and 3, like on 1; slate 2 (interleaved): pop placed item 4,
    # ease item 5, which got a click. dislike on 3 had no impression.
    assert rates.loc[("ease", "click")].tolist() == [4, 3, 0.75]
    assert rates.loc[("ease", "like")].tolist() == [4, 1, 0.25]
    assert rates.loc[("pop", "click")].tolist() == [1, 0, 0.0]
    with pytest.raises(InvalidInputError, match="by must be 'day' or 'total'"):
        _read(logged, "feedback_counts", by="week")
    with pytest.raises(InvalidInputError, match="kinds must be a non-empty tuple"):
        _read(logged, "model_feedback_rates", kinds=("love",))
