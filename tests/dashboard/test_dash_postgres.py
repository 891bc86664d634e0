"""The dashboard's SQL (daily aggregates, user-days, chunked interleaved clicks, slate sample) gives the same
frames on PostgreSQL as on SQLite for the same simulated traffic. Skips without `VITRINE_TEST_PG_URL`."""

from __future__ import annotations


import pandas as pd
import pytest

from app.dashboard import views as views
from app.dashboard.data import date_bounds, load_frames
from app.simulate.traffic import AnnotatorSpec, SimConfig, simulate
from dash_helpers import SIM_NOW
from pg_databases import pg_database


@pytest.fixture()
def pg_db(pg_url):
    with pg_database(pg_url, "dash") as url:
        yield url


def test_same_frames_on_postgres_and_sqlite(pg_db, ml100k, tmp_path):
    from annotation.db import make_engine, make_session_factory, upgrade

    config = SimConfig(users=6, days=3, asset_items=2, evaluate=False, seed=3, now=SIM_NOW, interleave=0.5,
                       annotators=(AnnotatorSpec("a", 0.9), AnnotatorSpec("b", 0.6, 0.3)), overlap=2)
    frames = {}
    for name, url in (("sqlite", f"sqlite:///{tmp_path / 'dash.db'}"), ("postgresql", pg_db)):
        upgrade(url)
        engine = make_engine(url)
        simulate(make_session_factory(engine), ml100k, config, log=lambda m: None)
        frames[name] = (load_frames(engine), date_bounds(engine))
        engine.dispose()
    (lite, lite_bounds), (pg, pg_bounds) = frames["sqlite"], frames["postgresql"]
    assert lite_bounds == pg_bounds
    key = ["day", "series", "model", "model_b"]
    pd.testing.assert_frame_equal(lite.daily.fillna("-").sort_values(key, ignore_index=True),
                                  pg.daily.fillna("-").sort_values(key, ignore_index=True), check_dtype=False)
    assert len(lite.user_days) == len(pg.user_days) > 0
    pd.testing.assert_frame_equal(lite.rates, pg.rates, check_dtype=False)
    assert len(lite.interleaved_clicks) == len(pg.interleaved_clicks) > 0
    assert sorted(map(sorted, lite.slates["item_ids"])) == sorted(map(sorted, pg.slates["item_ids"]))
    for build in (views.interleaving_view, views.online_rates_view, views.agreement_view):
        assert build(lite).reading == build(pg).reading
