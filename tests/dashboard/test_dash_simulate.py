"""`app.simulate.traffic`: arguments, what it writes through the store, and that the same seed gives the same data."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import func, select

from app.simulate.traffic import AnnotatorSpec, SimConfig, main, parse_args, simulate
from dash_helpers import SIM_NOW


def test_annotator_specs_parse_and_reject_nonsense():
    assert AnnotatorSpec.parse("ann:0.9") == AnnotatorSpec("ann", 0.9, 0.0)
    assert AnnotatorSpec.parse("lazy:0.6:0.4") == AnnotatorSpec("lazy", 0.6, 0.4)
    for bad in ("ann", "ann:high", ":0.9", "a:0.9:0.1:2"):
        with pytest.raises(ValueError, match="name:accuracy"):
            AnnotatorSpec.parse(bad)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        AnnotatorSpec.parse("ann:1.5")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"users": 0}, "users must be an integer between 1"),
    ({"days": 2.5}, "days must be an integer"),
    ({"interleave": 1.5}, "interleave must be a probability"),
    ({"models": ("ease",), "interleave": 0.3}, "needs at least two models"),
    ({"models": ("ease", "ease")}, "distinct model names"),
    ({"annotators": ()}, "at least one simulated annotator"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimConfig(**kwargs)


def test_cli_errors_name_the_argument(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--users", "0"])
    assert "users must be an integer between 1 and 100000, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--annotators", "bob:2"])
    assert "accuracy and bias must be in [0, 1]" in capsys.readouterr().err
    _, config = parse_args(["--users", "7", "--models", "ease, itemknn", "--annotators", "a:0.9,b:0.7:0.2",
                            "--no-eval"])
    assert config.users == 7 and config.models == ("ease", "itemknn") and not config.evaluate
    assert [a.name for a in config.annotators] == ["a", "b"]


def test_what_the_simulation_wrote_matches_its_report(sim_db):
    from annotation.db import make_engine
    from annotation.models import EvalRun, FeedbackEvent, Impression, PairTask, PreferenceLabel

    url, report = sim_db
    engine = make_engine(url)
    with engine.connect() as conn:
        count = lambda model: conn.execute(select(func.count()).select_from(model)).scalar_one()  # noqa: E731
        assert count(Impression) == report.impressions > 0
        assert count(FeedbackEvent) == report.feedback > 0
        assert count(PairTask) == report.pairs == 20 * 6  # 3 personalized-vs-generic + 3 cross-generator pairs
        assert count(PreferenceLabel) == report.labels == report.pairs * 3  # overlap 3, three annotators
        assert count(EvalRun) == report.eval_runs == 4  # 2 models x (random, cold-item)
        interleaved = conn.execute(select(func.count()).select_from(Impression)
                                   .where(Impression.model_b.is_not(None))).scalar_one()
        assert interleaved == report.interleaved > 0
        latest = conn.execute(select(func.max(Impression.created_at))).scalar_one()
    assert latest <= SIM_NOW  # nothing happens after "now"
    assert report.truth["best_model"] == "ease" and report.truth["best_annotator"] == "ann-careful"


def test_same_seed_same_traffic(ml100k, tmp_path):
    from annotation import store
    from annotation.db import make_engine, make_session_factory, upgrade

    def run(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        url = f"sqlite:///{tmp_path / name}"
        upgrade(url)
        factory = make_session_factory(make_engine(url))
        config = SimConfig(users=4, days=2, asset_items=1, evaluate=False, seed=7, now=SIM_NOW,
                           annotators=(AnnotatorSpec("a", 0.9), AnnotatorSpec("b", 0.7)), overlap=2)
        simulate(factory, ml100k, config, log=lambda m: None)
        with factory() as s:
            imps = store.impressions_frame(s)[["user_id", "model", "model_b", "item_ids", "created_at"]]
            labels = store.preferences_frame(s)[["annotator", "choice", "pair_id"]]
        return imps, labels

    first, second = run("one.db"), run("two.db")
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    assert len(first[0]) > 0 and len(first[1]) == 6 * 2


def test_main_seeds_the_configured_database(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VITRINE_DATA_DIR", str(tmp_path / "data"))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["--users", "3", "--days", "1", "--asset-items", "1", "--no-eval", "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "simulate: done" in out and "3 users" in out and url in out
