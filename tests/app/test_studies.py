"""Labeling studies in the app (issue 26): study admin fails closed; a study link signs a participant in, gives
them their quota, a progress bar and at the end the completion code; gold pairs; reliability flags and weights;
active pair selection."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest
from sqlalchemy import select

from annotation import queue, store
from annotation.models import Annotator, PairAssignment, PairTask, PreferenceLabel
from app import checks
from app.web import label_tab
from app.web import study as st
from app.web.state import Visitor


def _request(**params):
    return SimpleNamespace(query_params=params, headers={}, client=SimpleNamespace(host="10.0.0.7"))


def _rows(svc, model, *where):
    with svc.events.ReadSession() as s:
        return list(s.scalars(select(model).where(*where)))


def _key_of(markdown: str) -> str:
    return markdown.split("(key `", 1)[1].split("`", 1)[0]


def test_study_admin_fails_closed(services_factory):
    closed = services_factory(admin_open=False)
    for call in (lambda svc: st.create_study(svc, "s", "", "any", 5, 0.1, None),
                 lambda svc: st.list_studies(svc, None),
                 lambda svc: st.make_study_pairs(svc, "k", 1, None)):
        with pytest.raises(gr.Error, match="Admin actions are off"):
            call(closed)
    guarded = services_factory(admin_open=False, admin_password="pw")
    with pytest.raises(gr.Error, match="admin password"):
        st.create_study(guarded, "s", "", "any", 5, 0.1, "wrong", request=_request())
    made = st.create_study(guarded, "Covers", "Pick the better one.", "cover", 5, 0.1, "pw", request=_request())
    assert "Created study **Covers**" in made and "PROLIFIC_PID" in made and "completion code" in made
    listed, picker = st.list_studies(guarded, "pw")
    assert _key_of(made) in listed and picker["choices"][0][1] == _key_of(made)
    with pytest.raises(gr.Error, match="pair source"):
        st.create_study(guarded, "s", "", "everything", 5, 0.1, "pw")


def test_a_participant_follows_the_link_to_the_completion_code(fresh_svc):
    svc = fresh_svc
    made = st.create_study(svc, "Round 1", "Choose the cover <b>this</b> person would click.", "own", 3, 0.0)
    key = _key_of(made)
    assert "Made" in st.make_study_pairs(svc, key, 3, None)
    svc.labeling.make_pairs(2, seed=9)  # shared pairs: never handed to the study's participants
    study_pairs = {p.id for p in _rows(svc, PairTask, PairTask.study_id.is_not(None))}
    assert len(study_pairs) >= 3
    # no study in the link: nothing happens
    untouched = st.open_study(svc, Visitor(), {}, request=_request())
    assert untouched[0].study is None and all(isinstance(x, type(gr.skip())) for x in untouched[1:])
    with pytest.raises(gr.Error, match="participant id"):
        st.open_study(svc, Visitor(), {}, request=_request(study=key))
    with pytest.raises(gr.Error, match="does not exist"):
        st.open_study(svc, Visitor(), {}, request=_request(study="nope", pid="p1"))

    visitor, note, target, a, b, progress, banner, remembered = st.open_study(
        svc, Visitor(), {"annotator": ""}, request=_request(study=key, PROLIFIC_PID="5f1cabc"))
    assert "Round 1" in note and "5f1cabc" in note and visitor.study.key == key
    assert visitor.pair["pair_id"] in study_pairs and "vt-key" in a
    assert "**0** of **3** labels" in progress
    assert 'max="3" value="0"' in banner and "&lt;b&gt;this&lt;/b&gt;" in banner  # guidelines escaped
    token = remembered["studies"][f"{key}:5f1cabc"]
    assert token and remembered["annotator"] == ""
    for n, keypress in enumerate(("1", "s", "2", "0"), start=1):
        visitor, target, a, b, progress = label_tab.label_key(svc, visitor, keypress)
    # a skip does not count: 3 labels done after 4 keys, the quota is met and the code shown
    assert visitor.pair is None and "**3** of **3** labels" in progress
    assert "vt-completion-code" in target and svc.labeling.study(key).completion_code in target
    assert 'value="3"' in label_tab.study_banner(svc, visitor)
    labels = _rows(svc, PreferenceLabel, PreferenceLabel.annotator_id == visitor.annotator_id)
    assert len(labels) == 4 and {l.study_id for l in labels} == {visitor.study.study_id}
    assert all(l.time_spent_ms is not None and l.time_spent_ms >= 0 for l in labels)
    assert {l.pair_id for l in labels} <= study_pairs
    # the same participant comes back with their token: the same annotator, still done
    again = st.open_study(svc, Visitor(), remembered, request=_request(study=key, pid="5f1cabc"))
    assert again[0].annotator_id == visitor.annotator_id and "vt-completion-code" in again[2]
    # someone else with that participant id, without the token, is refused
    with pytest.raises(gr.Error, match="token"):
        st.open_study(svc, Visitor(), {}, request=_request(study=key, pid="5f1cabc"))
    # an annotator signing in by name cannot take the study's reserved names
    with pytest.raises(gr.Error, match="reserved"):
        label_tab.sign_in(svc, Visitor(), f"study:{visitor.study.study_id}:5f1cabc", "")


def test_gold_pairs_are_mixed_into_a_study(fresh_svc):
    svc = fresh_svc
    key = _key_of(st.create_study(svc, "Gold", "", "any", 2, 1.0))  # every turn a gold turn while gold is left
    svc.labeling.make_pairs(2, seed=3)
    pairs = sorted(p.id for p in _rows(svc, PairTask))
    with svc.events.Session() as s, s.begin():
        queue.set_gold(s, pairs[-1], "B")
    visitor = st.open_study(svc, Visitor(), {}, request=_request(study=key, pid="g1"))[0]
    assert visitor.pair["pair_id"] == pairs[-1]  # the gold pair, shown like any other
    visitor = label_tab.label_key(svc, visitor, "2")[0]
    assert visitor.pair["pair_id"] != pairs[-1]


def test_reliability_flags_an_adversary_and_returns_their_lease(fresh_svc):
    svc = fresh_svc
    svc.labeling.make_pairs(10, seed=4)
    pairs = sorted(p.id for p in _rows(svc, PairTask))
    names = ("good-1", "good-2", "flipper")
    with svc.events.Session() as s, s.begin():
        ids = {n: store.get_or_create_annotator(s, n).id for n in names}
        for pair_id in pairs:
            for n in names:
                queue.record_preference(s, checks.new_event_id(), pair_id, ids[n], "B" if n == "flipper" else "A")
        queue.set_gold(s, pairs[0], "A")
    extra = svc.labeling.make_pairs(1, seed=5)
    assert extra and svc.labeling.next_pair(ids["flipper"]) is not None  # the flipper holds a lease
    summary = svc.update_quality()
    assert summary["flagged"] == [] and summary["reliability"]["flipper"] < 0.5  # too few labels to flag yet
    assert summary["settled"] > 0  # pairs the labels settle (the flipper's answer is evidence too) became gold
    assert len(queue_gold(svc)) == 1 + summary["settled"]
    summary = st_quality(svc, min_labels=5)
    assert summary["flagged"] == ["flipper"] and summary["settled"] == 0
    (flipper,) = _rows(svc, Annotator, Annotator.name == "flipper")
    assert flipper.flagged and flipper.reliability < 0.5 and flipper.reliability_labels >= 5
    assert _rows(svc, PairAssignment, PairAssignment.annotator_id == ids["flipper"],
                 PairAssignment.completed_at.is_(None)) == []
    assert svc.labeling.next_pair(ids["flipper"]) is None
    from app.learning.quality import weights_for

    weights = weights_for(summary["reliability"])
    assert weights["flipper"] == 0.0 and weights["good-1"] > 0.5


def queue_gold(svc) -> dict:
    with svc.events.ReadSession() as s:
        return queue.gold_answers(s)


def st_quality(svc, min_labels: int):
    from app.learning.quality import update_quality

    return update_quality(svc.events.Session, threshold=svc.settings.reliability_min, min_labels=min_labels)


def test_active_selection_ranks_the_waiting_pairs_with_the_served_model(services_factory, monkeypatch):
    from app.learning import reward
    from generation.reward import HashingEncoder

    monkeypatch.setattr(reward, "encoder_for", lambda name, text_model=None: HashingEncoder(16))
    # no gold turn: the first pair is the top-ranked one
    svc = services_factory(model_poll_s=3600.0, gold_rate=0.0, pair_selection="active")
    svc.labeling.make_pairs(12, seed=6)
    pairs = sorted(p.id for p in _rows(svc, PairTask))
    labelled, waiting = pairs[: len(pairs) // 2 + 4], pairs[len(pairs) // 2 + 4:]
    with svc.events.Session() as s, s.begin():
        a, b = (store.get_or_create_annotator(s, n).id for n in ("x", "y"))
        for pair_id in labelled:  # both prefer the personalized side (sides are in random order)
            pair = queue.get_pair(s, pair_id)
            for who in (a, b):
                queue.record_preference(s, checks.new_event_id(), pair_id, who,
                                        "A" if pair.asset_a.personalized else "B")
    assert svc.rank_pairs() == 0  # no preference model served yet: the queue's own order
    result = svc.train_preference()
    assert result["promoted"] and svc.assets.learner.reward is not None
    assert result["ranked_pairs"] > 0
    ranked = {p.id: p.priority for p in _rows(svc, PairTask) if p.priority > 0}
    assert set(ranked) <= set(waiting) and len(ranked) == result["ranked_pairs"]
    top = max(ranked, key=ranked.get)
    fresh = svc.labeling.sign_in("fresh")
    assert svc.labeling.next_pair(fresh)["pair_id"] == top
    random_svc = services_factory(pair_selection="random")
    assert random_svc.rank_pairs() == 0
