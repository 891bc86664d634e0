"""The app's flows on PostgreSQL (the scale-out store): a fresh database per test module."""

from __future__ import annotations


import pytest
from sqlalchemy import select

from annotation.models import FeedbackEvent, Impression, PreferenceLabel
from app.web import create_tab, discover_tab, label_tab, status_tab
from app.web.state import Visitor
from pg_databases import pg_database


@pytest.fixture(scope="module")
def pg_svc(pg_url, tmp_path_factory):
    from vitrine_app_fixtures import make_services

    with pg_database(pg_url, "vitrine_app") as url:
        svc = make_services(tmp_path_factory.mktemp("pg"), database_url=url)
        yield svc
        svc.close()


def test_discover_create_label_on_postgresql(pg_svc):
    svc = pg_svc
    visitor, _ = discover_tab.select_user(svc, Visitor(), "5")
    visitor, cards, _ = discover_tab.recommend(svc, visitor, "ease", "pop")
    visitor, _, _, _ = discover_tab.card_feedback(svc, visitor, 0, "like")
    list(discover_tab.fill_assets(svc, visitor))
    with svc.events.Session() as s:
        imp = s.get(Impression, visitor.impression_id)
        assert imp.model_b == "pop" and len(imp.contributors) == len(imp.item_ids)
        like = s.scalars(select(FeedbackEvent).where(FeedbackEvent.user_id == "5")).one()
        assert like.impression_id == imp.id
    visitor, _, _, _ = create_tab.create_variants(svc, visitor, "6", 2)
    create_tab.pick_variant(svc, visitor, 0)
    assert svc.labeling.make_pairs(1, seed=2) == 2
    annotator, _ = label_tab.sign_in(svc, Visitor(), "pg-annotator", "")
    annotator, *_ = label_tab.load_pair(svc, annotator)
    annotator, *_, progress = label_tab.label_key(svc, annotator, "2")
    assert "**1** done" in progress
    with svc.events.Session() as s:
        assert len(s.scalars(select(PreferenceLabel)).all()) == 2  # the Create pick and the labeled pair
    assert "PostgreSQL" in status_tab.status_html(svc)
