"""The app's flows on PostgreSQL (the scale-out store): a fresh database per test module."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from annotation.models import FeedbackEvent, Impression, PreferenceLabel
from app import handlers as h
from app.state import Visitor


def _admin(url: str) -> str:
    return make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def pg_svc(pg_url, tmp_path_factory):
    import psycopg

    from vitrine_app_fixtures import make_services

    name = f"vitrine_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_admin(pg_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    svc = make_services(tmp_path_factory.mktemp("pg"), database_url=url)
    yield svc
    svc.close()
    with psycopg.connect(_admin(pg_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_discover_create_label_on_postgresql(pg_svc):
    svc = pg_svc
    visitor, _ = h.select_user(svc, Visitor(), "5")
    visitor, cards, _ = h.recommend(svc, visitor, "ease", "pop")
    visitor, _, _, _ = h.card_feedback(svc, visitor, 0, "like")
    list(h.fill_assets(svc, visitor))
    with svc.events.Session() as s:
        imp = s.get(Impression, visitor.impression_id)
        assert imp.model_b == "pop" and len(imp.contributors) == len(imp.item_ids)
        like = s.scalars(select(FeedbackEvent).where(FeedbackEvent.user_id == "5")).one()
        assert like.impression_id == imp.id
    visitor, _, _, _ = h.create_variants(svc, visitor, "6", 2)
    h.pick_variant(svc, visitor, 0)
    assert svc.labeling.make_pairs(1, seed=2) == 2
    annotator, _ = h.sign_in(svc, Visitor(), "pg-annotator", "")
    annotator, *_ = h.load_pair(svc, annotator)
    annotator, *_, progress = h.label_key(svc, annotator, "2")
    assert "**1** done" in progress
    with svc.events.Session() as s:
        assert len(s.scalars(select(PreferenceLabel)).all()) == 2  # the Create pick and the labeled pair
    assert "PostgreSQL" in h.status_html(svc)
