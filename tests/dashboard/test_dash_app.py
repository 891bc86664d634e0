"""The Streamlit dashboard itself, run headless by `streamlit.testing.v1.AppTest` on a seeded and an empty DB."""

from __future__ import annotations

import datetime as dt
import io
import json

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app.dashboard.data import export_bytes
from dash_helpers import DASHBOARD

PAGES = ("Overview", "Recommenders", "Generation", "Annotators", "Data")
MIN_CHARTS = {"Overview": 1, "Recommenders": 4, "Generation": 4, "Annotators": 3, "Data": 0}


def run_page(monkeypatch, url: str, page: str, password: str | None = None) -> AppTest:
    monkeypatch.setenv("DATABASE_URL", url)
    if password is None:
        monkeypatch.delenv("VITRINE_DASHBOARD_PASSWORD", raising=False)
        monkeypatch.setenv("VITRINE_DASHBOARD_OPEN", "1")  # a private machine, as `make dashboard` sets it
    else:
        monkeypatch.delenv("VITRINE_DASHBOARD_OPEN", raising=False)
        monkeypatch.setenv("VITRINE_DASHBOARD_PASSWORD", password)
    at = AppTest.from_file(DASHBOARD, default_timeout=90)
    at.query_params["page"] = page
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def chart_by_key(at: AppTest, key: str) -> dict:
    found = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith(key)]
    assert found, f"no chart with key {key!r}"
    return found[0]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_its_figures_on_a_seeded_db(monkeypatch, sim_db, page):
    at = run_page(monkeypatch, sim_db[0], page)
    assert at.header[0].value == page
    figures = charts(at)
    assert len(figures) >= MIN_CHARTS[page]
    assert all(fig["data"] for fig in figures)  # no blank figure
    assert len(at.caption) >= len(figures)  # each figure has its one-line reading
    assert not at.info  # seeded: no empty state anywhere
    if page == "Data":
        assert len(at.get("download_button")) == 10  # 5 tables x (JSONL, Parquet)


def test_model_filter_changes_the_figures(monkeypatch, sim_db):
    at = run_page(monkeypatch, sim_db[0], "Recommenders")
    before = chart_by_key(at, "rec-online")
    assert sorted(set(before["data"][0]["x"])) == ["ease", "pop"]
    at.sidebar.multiselect(key="f-models").set_value(["pop"]).run()
    assert not at.exception
    after = chart_by_key(at, "rec-online")
    assert after["data"][0]["x"] == ["pop"]
    # interleaved slates with pop on either side stay: the pair's chart is still there
    assert chart_by_key(at, "rec-interleaving")["data"]


def test_date_and_annotator_filters_change_the_figures(monkeypatch, sim_db):
    at = run_page(monkeypatch, sim_db[0], "Annotators")
    before = chart_by_key(at, "ann-throughput")
    assert len(before["data"]) == 3  # one bar trace per annotator
    at.sidebar.multiselect(key="f-annotators").set_value(["ann-careful", "ann-sloppy"]).run()
    after = chart_by_key(at, "ann-throughput")
    assert sorted(trace["name"] for trace in after["data"]) == ["ann-careful", "ann-sloppy"]

    at = run_page(monkeypatch, sim_db[0], "Overview")
    start, end = at.sidebar.date_input(key="f-dates").value
    total_before = at.metric[0].value
    day = end - dt.timedelta(days=1)  # a full simulated day, without today's generated assets
    at.sidebar.date_input(key="f-dates").set_value((day, day)).run()
    assert not at.exception
    assert at.metric[0].value != total_before  # fewer feedback events in one day than in five


def test_empty_db_renders_the_empty_states(monkeypatch, empty_db):
    for page in PAGES:
        at = run_page(monkeypatch, empty_db, page)
        assert not charts(at), page
        messages = " ".join(i.value for i in at.info)
        assert "python -m app.simulate" in messages, page


def test_missing_database_says_what_to_do(monkeypatch, tmp_path):
    at = run_page(monkeypatch, f"sqlite:///{tmp_path / 'never-migrated.db'}", "Overview")
    assert at.error and "Could not read the database" in at.error[0].value
    assert not charts(at)


def test_wrong_password_shows_no_data(monkeypatch, sim_db):
    at = run_page(monkeypatch, sim_db[0], "Recommenders", password="s3cret")
    assert not charts(at) and not at.dataframe and not at.metric
    at.text_input(key="dashboard_password").input("guess").run()
    assert at.error[0].value == "Wrong password."
    assert not charts(at) and not at.dataframe and not at.metric and not at.sidebar.multiselect
    at.text_input(key="dashboard_password").input("s3cret").run()
    assert not at.exception and len(charts(at)) >= MIN_CHARTS["Recommenders"]


def test_exports_round_trip():
    frame = pd.DataFrame({"user_id": ["1", "2"], "item_ids": [["a", "b"], ["c"]],
                          "created_at": pd.to_datetime(["2026-03-01 10:00", "2026-03-02 11:30"])})
    lines = export_bytes(frame, "jsonl").decode().splitlines()
    assert json.loads(lines[0]) == {"user_id": "1", "item_ids": ["a", "b"], "created_at": "2026-03-01T10:00:00.000"}
    back = pd.read_parquet(io.BytesIO(export_bytes(frame, "parquet")))
    assert back["item_ids"].map(list).tolist() == [["a", "b"], ["c"]]
    assert back["created_at"].tolist() == frame["created_at"].tolist()
    with pytest.raises(ValueError, match="fmt must be one of"):
        export_bytes(frame, "csv")


def test_the_dashboard_fails_closed_without_a_password_or_the_opt_in(monkeypatch, sim_db):
    monkeypatch.setenv("DATABASE_URL", sim_db[0])
    monkeypatch.delenv("VITRINE_DASHBOARD_PASSWORD", raising=False)
    monkeypatch.delenv("VITRINE_DASHBOARD_OPEN", raising=False)
    at = AppTest.from_file(DASHBOARD, default_timeout=90)
    at.run()
    assert not at.exception and not at.get("plotly_chart") and not at.get("download_button")
    assert any("VITRINE_DASHBOARD_PASSWORD" in e.value and "VITRINE_DASHBOARD_OPEN=1" in e.value for e in at.error)


def test_a_database_error_never_shows_the_password(monkeypatch):
    url = "postgresql+psycopg://vitrine:hunter2secret@127.0.0.1:1/nowhere"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("VITRINE_DASHBOARD_OPEN", "1")
    monkeypatch.delenv("VITRINE_DASHBOARD_PASSWORD", raising=False)
    at = AppTest.from_file(DASHBOARD, default_timeout=90)
    at.run()
    shown = " ".join(e.value for e in at.error)
    assert "Could not read the database" in shown and "127.0.0.1" in shown
    assert "hunter2secret" not in shown and "***" in shown


def test_learning_page_shows_versions_and_the_simulation_report(monkeypatch, sim_db, tmp_path):
    import json

    data_dir = tmp_path / "data"
    monkeypatch.setenv("VITRINE_DATA_DIR", str(data_dir))
    empty = run_page(monkeypatch, sim_db[0], "Learning")
    assert not charts(empty) and any("app.simulate --rounds" in i.value for i in empty.info)
    assert any("No retrained versions yet" in c.value for c in empty.caption)
    rounds = [{"round": r, "like_rate": 0.05 + 0.01 * r, "like_rate_ci": [0.04, 0.07 + 0.01 * r], "ndcg@10": 0.3,
               "ndcg@10_ci": [0.28, 0.32], "promoted": r % 2 == 0} for r in range(1, 4)]
    report = {"arms": {"static": {"rounds": rounds}, "retrain": {"rounds": rounds}},
              "ips": {"candidates": {"pop": {"truth": 0.1, "ips": 0.11, "snips": 0.1, "ips_ci": [0.08, 0.14],
                                             "snips_ci": [0.09, 0.12], "support": 0.9}}}}
    (data_dir / "reports").mkdir(parents=True)
    (data_dir / "reports" / "learning.json").write_text(json.dumps(report))
    shown = run_page(monkeypatch, sim_db[0], "Learning")
    assert len(charts(shown)) == 3  # like rate and NDCG curves (treatment vs control), IPS vs truth
    (data_dir / "reports" / "learning.json").write_text('{"arms": {"x": {"rounds": [{"like_rate": 1}]}}}')  # malformed
    broken = run_page(monkeypatch, sim_db[0], "Learning")
    assert any("could not be read" in e.value for e in broken.error)
