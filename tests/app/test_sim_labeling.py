"""The labeling-study simulations (app.simulate.labeling_loop): pair selection arms and annotator quality, small,
through the command line and the store."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from annotation import store
from annotation.db import make_engine, make_session_factory
from annotation.models import GoldPair, PairTask
from app.simulate import cli, labeling_loop
from app.simulate.cli import main


def _run(tmp_path, monkeypatch, *args):
    monkeypatch.setenv("VITRINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    out = tmp_path / "report.json"
    assert main(["--reward", *args, "--encoder", "hashing", "--users", "12", "--eval-pairs", "60",
                 "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_pair_selection_arms_through_the_queue(tmp_path, monkeypatch, capsys):
    report = _run(tmp_path, monkeypatch, "--pair-selection", "random,active", "--seeds", "4", "--pool", "80",
                  "--step", "20", "--max-labels", "60", "--full-curves", "--workdir", str(tmp_path / "w"))
    run = report["seeds"]["4"]
    for arm in ("random", "active"):
        curve = run["arms"][arm]["curve"]
        assert [p["labels"] for p in curve] == [20, 40, 60]
        assert all(0.0 <= p["truth_accuracy"] <= 1.0 and p["n_pairs"] == p["labels"] for p in curve)
    assert run["arms"]["active"]["seconds_ranking"] > 0 and run["arms"]["random"]["seconds_ranking"] == 0
    assert set(report["summary"]["mean_labels_to_target"]) == {"random", "active"}
    assert "sim-selection seed 4" in capsys.readouterr().out
    # one store per arm; the active arm's waiting pairs carry the ranking, the random arm's none
    for arm, ranked in (("active", True), ("random", False)):
        with make_session_factory(make_engine(f"sqlite:///{tmp_path / 'w' / f'selection-seed4-{arm}.db'}"))() as s:
            assert len(store.preferences_frame(s)) == 60
            priorities = s.scalar(select(func.count()).select_from(PairTask).where(PairTask.priority > 0))
        assert (priorities > 0) == ranked


def test_pair_selection_with_a_low_rank_preference_model(tmp_path, monkeypatch):
    """--reward-rank / --reward-l2: both arms train that model (the report carries its config)."""
    report = _run(tmp_path, monkeypatch, "--pair-selection", "random,active", "--seeds", "4", "--pool", "80",
                  "--step", "20", "--max-labels", "40", "--full-curves", "--reward-rank", "3", "--reward-l2", "0.1")
    run = report["seeds"]["4"]
    assert run["config"]["reward"] == {**run["config"]["reward"], "rank": 3, "l2_grid": [0.1]}
    for arm in ("random", "active"):
        assert [p["l2"] for p in run["arms"][arm]["curve"]] == [0.1, 0.1]
    assert labeling_loop.SelectionSimConfig().reward is None  # the app's default model unless asked
    _, full = cli.parse_reward(["--reward", "--pair-selection", "random", "--reward-rank", "full", "--reward-l2", "1,3"])
    assert full[0].reward.rank is None and full[0].reward.l2_grid == (1.0, 3.0)
    with pytest.raises(ValueError, match="RewardConfig"):
        labeling_loop.SelectionSimConfig(reward={"rank": 3})


def test_labels_to_reach_and_the_summary():
    curve = [{"labels": 100, "truth_accuracy": 0.7}, {"labels": 200, "truth_accuracy": 0.76},
             {"labels": 300, "truth_accuracy": 0.74}]
    assert labeling_loop.labels_to_reach(curve, 0.75) == 200
    assert labeling_loop.labels_to_reach(curve, 0.8) is None
    runs = {"0": {"arms": {"random": {"labels_to_target": 1000}, "active": {"labels_to_target": 600}}},
            "1": {"arms": {"random": {"labels_to_target": 1200}, "active": {"labels_to_target": 800}}}}
    summary = labeling_loop.selection_summary(runs)
    assert summary["mean_labels_to_target"] == {"active": 700.0, "random": 1100.0}
    assert summary["fewer_labels"] == pytest.approx(1 - 700 / 1100)
    runs["1"]["arms"]["active"]["labels_to_target"] = None
    assert labeling_loop.selection_summary(runs)["mean_labels_to_target"]["active"] is None


def test_quality_weighted_and_unweighted_on_the_same_labels(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    report = _run(tmp_path, monkeypatch, "--quality", "--labels", "300", "--pool", "200", "--gold", "10",
                  "--gold-rate", "0.2", "--database-url", url)
    assert report["labels"] == 300
    by_name = {a["name"]: a for a in report["annotators"]}
    assert set(by_name) == {"careful", "average", "sloppy", "spammer", "adversary"}
    assert by_name["careful"]["reliability"] > 0.7 > 0.4 > by_name["adversary"]["reliability"]
    assert by_name["adversary"]["weight"] == 0.0 and by_name["adversary"]["flagged"]
    assert all(a["gold_labels"] > 0 for a in report["annotators"])
    assert report["weighted"]["pairs"] < report["unweighted"]["pairs"]  # weight-0 labels are left out
    assert report["gain_points"] == pytest.approx(
        100 * (report["weighted"]["truth_accuracy"] - report["unweighted"]["truth_accuracy"]))
    with make_session_factory(make_engine(url))() as s:
        assert s.scalar(select(func.count()).select_from(GoldPair)) == 10
    assert "sim-quality" in capsys.readouterr().out


def test_bad_study_arguments_exit_with_a_message(capsys):
    with pytest.raises(SystemExit):
        main(["--reward", "--pair-selection", "random,clever"])
    assert "arms" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--reward", "--pair-selection", "random", "--quality"])
    assert "one" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--reward", "--pair-selection", "random", "--pool", "50", "--max-labels", "100"])
    assert "pool" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--reward", "--pair-selection", "random", "--reward-rank", "0"])
    assert "rank" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--reward", "--pair-selection", "random", "--reward-l2", "big"])
    assert "--reward-l2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--reward", "--pair-selection", "random", "--reward-rank", "low"])
    assert "--reward-rank" in capsys.readouterr().err
