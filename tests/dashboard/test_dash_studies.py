"""The dashboard's Studies page (issue 26): a study's progress, agreement and participants' reliability, flagged
annotators, and the preference model's learning curve; as pure views and rendered by Streamlit's AppTest."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from annotation import queue, store, studies
from annotation.db import make_engine, make_session_factory, upgrade
from app.dashboard import studies_page
from app.dashboard.data import load_frames
from dash_helpers import DASHBOARD

ITEMS = pd.DataFrame({"item_id": [str(i) for i in range(1, 7)], "title": [f"Film {i}" for i in range(1, 7)],
                      "year": [1990] * 6, "genres": [["Drama"]] * 6})
NOW = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def _asset(item: str, personalized: bool) -> dict:
    return dict(event_id=str(uuid.uuid4()), kind="caption", item_id=item, user_id="196" if personalized else None,
                generator="sim/good" if personalized else "fallback", fallback=not personalized, prompt="p",
                negative_prompt=None, seed=1, params={}, path=None, text=f"caption {uuid.uuid4().hex[:6]}",
                content_hash=uuid.uuid4().hex, latency_ms=5.0, personalized=personalized, cache_hit=False)


@pytest.fixture(scope="module")
def study_db(tmp_path_factory):
    """A study with three participants (one done, one labeling, one flagged) labelling its own pairs with
    overlap, and two preference-model evaluations."""
    url = f"sqlite:///{tmp_path_factory.mktemp('studies') / 'vitrine.db'}"
    upgrade(url)
    Session = make_session_factory(make_engine(url))
    with Session() as s, s.begin():
        store.sync_items(s, ITEMS)
        store.ensure_user(s, "196")
        study = studies.create_study(s, "Captions, round 1", "Pick the better caption.", pair_source="own",
                                     labels_per_annotator=4, gold_rate=0.0, key="round-1", at=NOW)
        pairs = []
        for i in range(6):
            a, b = store.record_asset(s, _asset(str(i + 1), True)), store.record_asset(s, _asset(str(i + 1), False))
            pairs.append(queue.create_pair(s, a.id, b.id, "196", study_id=study.id).id)
        people = {}
        for pid in ("P-done", "P-half", "P-bad"):
            who = store.get_or_create_annotator(s, f"study:{study.id}:{pid.lower()}")
            studies.join_study(s, "round-1", who.id, pid, at=NOW)
            people[pid] = who.id
        at = NOW
        for pid, n, answer in (("P-done", 4, "A"), ("P-half", 2, "A"), ("P-bad", 3, "B")):
            for pair_id in pairs[:n]:
                at += dt.timedelta(seconds=30)
                queue.record_preference(s, str(uuid.uuid4()), pair_id, people[pid], answer, time_spent_ms=2500,
                                        at=at, study_id=study.id)
        queue.set_reliability(s, people["P-done"], 0.93, 8, False)
        queue.set_reliability(s, people["P-half"], 0.81, 4, False)
        queue.set_reliability(s, people["P-bad"], 0.18, 6, True)
        for n, acc in ((40, 0.61), (120, 0.7)):
            store.record_eval_run(s, "reward", "tiny", "time", {"heldout_accuracy": acc, "n_pairs": float(n)},
                                  config={"version": f"reward-{n}"}, at=NOW)
    return url, study.id


def test_the_views(study_db):
    url, study_id = study_db
    frames = load_frames(make_engine(url))
    table = studies_page.studies_table(frames)
    assert table.loc[0, ["name", "participants", "completed", "labels", "quota"]].tolist() == [
        "Captions, round 1", 3, 1, 9, 4]
    progress = studies_page.study_progress_view(frames, study_id)
    assert "1 of 3 participants finished their 4 labels" in progress.reading and "2.5 s per label" in progress.reading
    assert sorted(progress.table["labels"]) == [2, 3, 4]
    agreement = studies_page.study_agreement_view(frames, study_id)
    assert agreement.empty is None and "Fleiss' κ" in agreement.reading
    reliability = studies_page.reliability_view(frames, 0.6, study_id)
    assert "Flagged" in reliability.reading and "(0.18)" in reliability.reading
    assert reliability.table["flagged"].sum() == 1
    curve = studies_page.learning_curve_view(frames)
    assert curve.table["labels"].tolist() == [40, 120] and "0.700" in curve.reading
    assert studies_page.study_progress_view(frames, study_id + 1).empty  # another study: nobody yet


def test_empty_states(empty_frames):
    assert studies_page.studies_table(empty_frames).empty
    for view in (studies_page.reliability_view(empty_frames, 0.6), studies_page.learning_curve_view(empty_frames),
                 studies_page.study_agreement_view(empty_frames, 1)):
        assert view.empty


def test_the_studies_page_renders(monkeypatch, study_db):
    url, _ = study_db
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("VITRINE_DASHBOARD_PASSWORD", raising=False)
    monkeypatch.setenv("VITRINE_DASHBOARD_OPEN", "1")
    at = AppTest.from_file(DASHBOARD, default_timeout=90)
    at.query_params["page"] = "Studies"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.header[0].value == "Studies"
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(figures) == 3 and all(f["data"] for f in figures)  # progress, reliability, learning curve
    text = " ".join(c.value for c in at.caption)
    assert "1 of 3 participants" in text and "Flagged" in text and "Fleiss" in text
    at.query_params["page"] = "Annotators"
    at.run()
    assert not at.exception and any("Flagged" in c.value for c in at.caption)
