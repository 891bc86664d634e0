"""The queue's ordering hint, gold pairs, flagged annotators and labeling studies (annotation.queue, .studies),
and the reads the quality upkeep makes of them (annotation.reads.annotator_flags, .raters_per_pair)."""

from __future__ import annotations

import datetime as dt

import pytest

from ann_helpers import cover, new_id
from annotation import queue, reads, store, studies
from annotation.errors import InvalidInputError, UnknownStudyError
from annotation.models import PairTask


def _pairs(Session, n: int, study_id=None, kind="cover") -> list[int]:
    ids = []
    with Session() as s, s.begin():
        for i in range(n):
            item = str(1 + i % 20)
            extra = {} if kind == "cover" else {"kind": "caption", "path": None, "text": f"caption {i}"}
            a = store.record_asset(s, cover(item_id=item, **extra))
            b = store.record_asset(s, cover(item_id=item, personalized=False, **extra))
            ids.append(queue.create_pair(s, a.id, b.id, "196", study_id=study_id).id)
    return ids


def _annotators(Session, *names) -> list[int]:
    with Session() as s, s.begin():
        return [store.get_or_create_annotator(s, n).id for n in names]


def _next(Session, annotator, **kwargs):
    with Session() as s, s.begin():
        pair = queue.next_pair(s, annotator, **kwargs)
        return None if pair is None else pair.id


def _label(Session, pair, annotator, choice="A", **kwargs):
    with Session() as s, s.begin():
        return queue.record_preference(s, new_id(), pair, annotator, choice, **kwargs)


def test_priority_orders_pairs_equally_close_to_complete(catalog):
    Session = catalog
    pairs = _pairs(Session, 4)
    alice, bob = _annotators(Session, "alice", "bob")
    with Session() as s, s.begin():
        assert queue.set_priorities(s, {pairs[2]: 5.0, pairs[3]: 9.0}) == 2
    assert _next(Session, alice) == pairs[3]  # highest priority first
    _label(Session, pairs[3], alice)
    # bob: pairs[3] holds one slot of two (closest to complete) and comes before the higher... none higher left
    assert _next(Session, bob) == pairs[3]
    _label(Session, pairs[3], bob)
    assert _next(Session, alice) == pairs[2]
    with Session() as s, s.begin():  # reset: everything else back to 0, pairs[0] now first
        queue.set_priorities(s, {pairs[0]: 1.0}, reset=True)
        assert s.get(PairTask, pairs[2]).priority == 0.0
    assert _next(Session, bob) == pairs[2]  # closest to complete still wins over priority
    _label(Session, pairs[2], bob)
    assert _next(Session, bob) == pairs[0]


def test_set_priorities_refuses_bad_values(catalog):
    Session = catalog
    pairs = _pairs(Session, 1)
    with Session() as s, s.begin():
        with pytest.raises(InvalidInputError, match="finite"):
            queue.set_priorities(s, {pairs[0]: float("nan")})
        with pytest.raises(InvalidInputError, match="pair_id"):
            queue.set_priorities(s, {0: 1.0})


def test_waiting_pairs_leaves_out_full_and_gold_pairs(catalog):
    Session = catalog
    pairs = _pairs(Session, 3)
    alice, bob = _annotators(Session, "alice", "bob")
    with Session() as s, s.begin():
        queue.set_gold(s, pairs[2], "A")
    for who in (alice, bob):
        assert _next(Session, who) == pairs[0]
        _label(Session, pairs[0], who)
    with Session() as s:
        waiting = queue.waiting_pairs(s, overlap=2)
        assert [w[0] for w in waiting] == [pairs[1]]
        assert waiting[0][1] == "cover" and waiting[0][2] == "196"
        assert [w[0] for w in queue.waiting_pairs(s, overlap=3)] == [pairs[0], pairs[1]]


def test_gold_turn_is_a_keyed_rate():
    turns = [queue.gold_turn(7, t, 0.2, "k") for t in range(5000)]
    assert 0.17 < sum(turns) / len(turns) < 0.23
    assert turns == [queue.gold_turn(7, t, 0.2, "k") for t in range(5000)]  # deterministic
    assert turns != [queue.gold_turn(7, t, 0.2, "other") for t in range(5000)]  # the key changes the turns
    assert not any(queue.gold_turn(7, t, 0.0) for t in range(100))
    assert all(queue.gold_turn(7, t, 1.0) for t in range(100))
    with pytest.raises(InvalidInputError, match="gold_rate"):
        queue.gold_turn(7, 0, 1.5)


def test_gold_pairs_are_mixed_in_beyond_the_overlap_and_never_twice(catalog):
    Session = catalog
    pairs = _pairs(Session, 6)
    gold = pairs[:2]
    with Session() as s, s.begin():
        queue.set_gold(s, gold[0], "A")
        queue.set_gold(s, gold[1], "B", source="agreement")
    annotators = _annotators(Session, "a", "b", "c")
    for who in annotators:  # rate 1: every turn is a gold turn while gold pairs are left for them
        handed = []
        for _ in range(4):
            pair = _next(Session, who, overlap=2, gold_rate=1.0)
            handed.append(pair)
            _label(Session, pair, who)
        assert handed[:2] == gold  # each annotator gets both gold pairs, whatever the overlap
        assert set(handed[2:]).isdisjoint(gold)
    # without gold turns, gold pairs are never handed
    d, = _annotators(Session, "d")
    seen = []
    while (pair := _next(Session, d, overlap=10)) is not None:
        seen.append(pair)
        _label(Session, pair, d)
    assert set(seen) == set(pairs) - set(gold)


def test_set_gold_keeps_its_first_answer(catalog):
    Session = catalog
    pair, = _pairs(Session, 1)
    with Session() as s, s.begin():
        first = queue.set_gold(s, pair, "A")
        assert queue.set_gold(s, pair, "A", source="agreement").id == first.id  # idempotent
        with pytest.raises(InvalidInputError, match="already a gold pair"):
            queue.set_gold(s, pair, "B")
        with pytest.raises(InvalidInputError, match="answer"):
            queue.set_gold(s, pair, "tie")
        assert queue.gold_answers(s) == {pair: "A"}


def test_a_flagged_annotator_gets_nothing_and_their_lease_returns(catalog):
    Session = catalog
    pairs = _pairs(Session, 2)
    spam, other = _annotators(Session, "spam", "other")
    assert _next(Session, spam, overlap=1) == pairs[0]  # spam holds pairs[0]
    assert _next(Session, other, overlap=1) == pairs[1]
    _label(Session, pairs[1], other)
    with Session() as s, s.begin():
        row = queue.set_reliability(s, spam, 0.41, 30, True)
        assert row.flagged and row.reliability == pytest.approx(0.41)
        assert s.get(PairTask, pairs[0]).slots_taken == 0  # the lease went back
        assert queue.label_progress(s, spam, overlap=1) == (0, 0)
    assert _next(Session, spam, overlap=1) is None
    assert _next(Session, other, overlap=1) == pairs[0]
    with Session() as s, s.begin():  # unflagged again: handed pairs again
        queue.set_reliability(s, spam, 0.8, 40, False)
    with Session() as s, s.begin():
        with pytest.raises(InvalidInputError, match="reliability"):
            queue.set_reliability(s, spam, 1.5, 3, False)


def test_release_leases_frees_the_slots(catalog):
    Session = catalog
    pairs = _pairs(Session, 1)
    a, b = _annotators(Session, "a", "b")
    assert _next(Session, a, overlap=1) == pairs[0]
    assert _next(Session, b, overlap=1) is None
    with Session() as s, s.begin():
        assert queue.release_leases(s, a) == 1
        assert queue.release_leases(s, a) == 0
    assert _next(Session, b, overlap=1) == pairs[0]


def test_annotator_flags_give_each_annotator_id_and_flag(catalog):
    Session = catalog
    with Session() as s:
        assert reads.annotator_flags(s) == {}
    spam, fine = _annotators(Session, "spam", "fine")
    with Session() as s, s.begin():
        assert reads.annotator_flags(s) == {"spam": (spam, False), "fine": (fine, False)}
        queue.set_reliability(s, spam, 0.3, 25, True)
        queue.set_reliability(s, fine, 0.9, 25, False)
    with Session() as s, s.begin():
        assert reads.annotator_flags(s) == {"spam": (spam, True), "fine": (fine, False)}
        queue.set_reliability(s, spam, 0.8, 40, False)  # unflagged again
    with Session() as s:
        assert reads.annotator_flags(s) == {"spam": (spam, False), "fine": (fine, False)}


def test_raters_per_pair_counts_distinct_annotators_with_a_current_a_or_b(catalog):
    Session = catalog
    pairs = _pairs(Session, 4)
    alice, bob, carol = _annotators(Session, "alice", "bob", "carol")
    with Session() as s:
        assert reads.raters_per_pair(s) == {}
    _label(Session, pairs[0], alice, "A")
    _label(Session, pairs[0], bob, "B")
    _label(Session, pairs[0], alice, "B")  # alice changes her mind: still one annotator
    _label(Session, pairs[1], alice, "A")
    _label(Session, pairs[1], bob, "tie")  # a tie or a skip is no A / B choice
    _label(Session, pairs[1], carol, "skip")
    _label(Session, pairs[2], carol, "A")
    with Session() as s, s.begin():  # a cleared label is no current choice
        queue.clear_preference(s, new_id(), pairs[2], carol)
    with Session() as s:
        assert reads.raters_per_pair(s) == {pairs[0]: 2, pairs[1]: 1}


def test_gold_answers_hold_every_gold_pair(catalog):
    Session = catalog
    pairs = _pairs(Session, 3)
    with Session() as s, s.begin():
        assert queue.gold_answers(s) == {}
        queue.set_gold(s, pairs[2], "B", source="agreement")
        queue.set_gold(s, pairs[0], "A")
    with Session() as s:
        assert queue.gold_answers(s) == {pairs[0]: "A", pairs[2]: "B"}


def test_all_studies_lists_every_study_in_id_order(catalog):
    Session = catalog
    with Session() as s:
        assert studies.all_studies(s) == []
    with Session() as s, s.begin():  # the second is dated earlier: the order is still by id
        first = studies.create_study(s, "First", "", at=dt.datetime(2026, 12, 2)).id
        second = studies.create_study(s, "Second", "", at=dt.datetime(2026, 12, 1)).id
        third = studies.create_study(s, "Third", "", pair_source="own").id
    with Session() as s:
        listed = studies.all_studies(s)
        assert [(st.id, st.name) for st in listed] == [(first, "First"), (second, "Second"), (third, "Third")]
        assert listed[2].pair_source == "own"


def test_a_study_link_its_pairs_quota_and_labels(catalog):
    Session = catalog
    with Session() as s, s.begin():
        study = studies.create_study(s, "Covers", "Pick the cover that suits them.", pair_source="own",
                                     labels_per_annotator=2, gold_rate=0.0, at=dt.datetime(2026, 12, 1))
        assert len(study.key) >= 12 and study.completion_code and study.labels_per_annotator == 2
        key, study_id = study.key, study.id
    shared = _pairs(Session, 2)
    own = _pairs(Session, 3, study_id=study_id)
    p1, p2, regular = _annotators(Session, "study:x:p1", "study:x:p2", "regular")
    with Session() as s, s.begin():
        joined = studies.join_study(s, key, p1, "PID-1")
        assert studies.join_study(s, key, p1, "PID-1").id == joined.id  # idempotent
        with pytest.raises(InvalidInputError, match="already joined"):
            studies.join_study(s, key, p2, "PID-1")
        with pytest.raises(UnknownStudyError):
            studies.join_study(s, "nope", p2, "PID-2")
        studies.join_study(s, key, p2, "PID-2")
        options = studies.pair_options(studies.get_study(s, key))
    assert options == {"kind": None, "pairs_of": study_id, "gold_rate": 0.0, "gold_key": key}
    # participants get the study's own pairs; a regular annotator never does
    assert _next(Session, p1, **options) == own[0]
    _label(Session, own[0], p1, "B", study_id=study_id, time_spent_ms=1200)
    assert _next(Session, regular) == shared[0]
    with Session() as s:
        assert studies.study_progress(s, study_id, p1) == (1, 2)
        assert queue.label_progress(s, p1, pairs_of=study_id) == (1, 2)  # own[1] and own[2] are open to them
    pair = _next(Session, p1, **options)
    _label(Session, pair, p1, "skip", study_id=study_id)  # a skip does not count towards the quota
    with Session() as s:
        assert studies.study_progress(s, study_id, p1) == (1, 2)
    pair = _next(Session, p1, **options)
    _label(Session, pair, p1, "tie", study_id=study_id)
    with Session() as s:
        assert studies.study_progress(s, study_id, p1) == (2, 2)
        frame = studies.studies_frame(s)
        people = studies.participants_frame(s, study_id)
        prefs = store.preferences_frame(s)
    assert frame.loc[0, ["participants", "completed", "labels"]].tolist() == [2, 1, 2]
    assert people.set_index("external_id").loc["PID-1", ["labels", "completed", "median_ms"]].tolist() == [2, True, 1200]
    assert not people.set_index("external_id").loc["PID-2", "completed"]
    assert set(prefs.loc[prefs["annotator"] == "study:x:p1", "study_id"]) == {study_id}


def test_create_study_checks_its_arguments(catalog):
    Session = catalog
    with Session() as s, s.begin():
        with pytest.raises(InvalidInputError, match="pair_source"):
            studies.create_study(s, "x", "", pair_source="everything")
        with pytest.raises(InvalidInputError, match="labels_per_annotator"):
            studies.create_study(s, "x", "", labels_per_annotator=0)
        with pytest.raises(InvalidInputError, match="gold_rate"):
            studies.create_study(s, "x", "", gold_rate=2)
        with pytest.raises(InvalidInputError, match="key"):
            studies.create_study(s, "x", "", key="a b")
        studies.create_study(s, "x", "", key="taken")
        with pytest.raises(InvalidInputError, match="already the key"):
            studies.create_study(s, "y", "", key="taken")
    with Session() as s, s.begin():
        kinds = studies.create_study(s, "captions", "", pair_source="caption", gold_rate=0.25)
        assert studies.pair_options(kinds) == {"kind": "caption", "pairs_of": None, "gold_rate": 0.25,
                                               "gold_key": kinds.key}


def test_the_exports_carry_study_reliability_and_time_per_label(catalog, tmp_path):
    import pandas as pd

    from annotation.export import CAPTION_COLUMNS, COVER_COLUMNS, export, export_dataset

    Session = catalog
    with Session() as s, s.begin():
        study = studies.create_study(s, "Captions", "", pair_source="own", key="caps-1")
        study_id = study.id
    own = _pairs(Session, 1, study_id=study_id, kind="caption")
    shared = _pairs(Session, 1, kind="caption")
    p1, other = _annotators(Session, "study:1:p1", "other")
    _label(Session, own[0], p1, "A", time_spent_ms=2100, study_id=study_id)
    _label(Session, shared[0], other, "B", time_spent_ms=900)
    with Session() as s, s.begin():
        queue.set_reliability(s, p1, 0.87, 12, False)
    with Session() as s:
        export(s, "preferences", "parquet", tmp_path / "prefs.parquet")
        export_dataset(s, tmp_path / "ds")
    prefs = pd.read_parquet(tmp_path / "prefs.parquet").set_index("annotator")
    assert prefs.loc["study:1:p1", ["study", "annotator_reliability", "time_spent_ms"]].tolist() == ["caps-1", 0.87, 2100]
    assert pd.isna(prefs.loc["other", "study"]) and pd.isna(prefs.loc["other", "annotator_reliability"])
    assert prefs.loc["other", "time_spent_ms"] == 900
    captions = pd.read_parquet(tmp_path / "ds" / "captions" / "train-00000-of-00001.parquet")
    assert list(captions.columns) == CAPTION_COLUMNS and "study" in COVER_COLUMNS
    captions = captions.set_index("annotator")
    assert captions.loc["study:1:p1", ["study", "annotator_reliability", "time_spent_ms"]].tolist() == [
        "caps-1", 0.87, 2100]
    assert "annotator_reliability" in (tmp_path / "ds" / "README.md").read_text()
