"""app.simulate.learning_loop (the learning-loop simulation) and app.dashboard.learning_page (its figures), on a
synthetic world.

The world: 4 tastes over 120 items (30 each); every user rates 24 items of their taste 4-5 and 8 others 1-3.
Small enough for seconds; the ml-100k figures are in BENCHMARKS.md.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from app.dashboard import learning_page as dl
from app.learning.retrain import json_safe
from app.simulate import learning_loop as sim_loop
from recommenders.data import Dataset
from byo_helpers import write_folder

N_ITEMS, N_USERS = 120, 300


def synthetic(seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({"item_id": [str(i) for i in range(N_ITEMS)], "title": [f"Film {i}" for i in range(N_ITEMS)],
                          "text": ["a film"] * N_ITEMS, "genres": [["Drama"]] * N_ITEMS,
                          "year": pd.array([2000] * N_ITEMS, dtype="Int64"), "image": [None] * N_ITEMS})
    rows = []
    for u in range(N_USERS):
        taste = u % 4
        own = rng.choice(30, 24, replace=False) + 30 * taste
        other = rng.choice(np.setdiff1d(np.arange(N_ITEMS), np.arange(30) + 30 * taste), 8, replace=False)
        for i in own:
            rows.append((str(u), str(i), float(rng.integers(4, 6)), int(rng.integers(0, 10**6))))
        for i in other:
            rows.append((str(u), str(i), float(rng.integers(1, 4)), int(rng.integers(0, 10**6))))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Dataset("synthetic", items, pd.DataFrame({"user_id": [str(u) for u in range(N_USERS)]}), inter)


CONFIG = dict(users=60, rounds=3, slate=10, min_ratings=20, ips_replicates=3, ips_candidates=("pop",), n_boot=200,
              seed=1)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    ds = synthetic()
    return sim_loop.run_loop(ds, sim_loop.LoopConfig(**CONFIG), tmp_path_factory.mktemp("loop"))


def test_the_world_keeps_the_truth_out_of_training():
    ds = synthetic()
    world = sim_loop.make_world(ds, sim_loop.LoopConfig(**CONFIG))
    base = set(zip(world.base.interactions["user_id"], world.base.interactions["item_id"]))
    for u in world.visitors:
        assert len(world.known[u]) == 5 and not set(world.truth[u]) & set(world.known[u])
        assert all((u, i) in base for i in world.known[u])
        assert not any((u, i) in base for i in world.truth[u])
    first = ds.interactions[ds.interactions["user_id"] == world.visitors[0]].sort_values("timestamp")
    assert world.known[world.visitors[0]] == first["item_id"].head(5).tolist()  # the earliest five


def test_report_shape_and_same_draws(report):
    rounds, control = report["rounds"], report["control"]["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3] and len(control) == 3
    for r in rounds + control:
        assert {"round", "like_rate", "ndcg@10", "promoted"} <= set(r)
        assert 0 <= r["like_rate"] <= 1 and 0 <= r["ndcg@10"] <= 1
    assert all(r["promoted"] is None for r in control)  # the control never retrains
    assert all(isinstance(r["promoted"], bool) for r in rounds)
    # before any feedback every arm serves the same slates under the same draws: round 1 is identical
    first = {arm: body["rounds"][0] for arm, body in report["arms"].items()}
    assert len({(r["like_rate"], r["ndcg@10"]) for r in first.values()}) == 1
    assert len(report["retrain"]) == 3 and all("reason" in r for r in report["retrain"])
    json.dumps(json_safe(report), allow_nan=False)  # the --json output is valid JSON


def test_folding_likes_in_beats_the_static_control(report):
    final = {arm: body["rounds"][-1] for arm, body in report["arms"].items()}
    assert final["fold-in"]["ndcg@10_loved"] > final["static"]["ndcg@10_loved"]
    comp = report["comparisons"]["retrain - static"]["ndcg@10_loved@final"]
    assert comp["diff"] > 0 and comp["lo"] <= comp["diff"] <= comp["hi"]


def test_the_visit_arm_and_the_comparisons(report):
    """The visit arm plays with what the visitor passed over; the comparisons name each arm's own share."""
    assert report["treatment"] == "retrain"
    assert set(report["comparisons"]) == {"fold-in - static", "visit - static", "retrain - static",
                                          "visit - fold-in", "retrain - visit"}
    for comp in report["comparisons"].values():
        c = comp["cumulative_likes"]
        assert c["lo"] <= c["diff"] <= c["hi"] and c["n_users"] == CONFIG["users"]
    final = {arm: body["rounds"][-1] for arm, body in report["arms"].items()}
    assert final["visit"]["ndcg@10_loved"] > final["static"]["ndcg@10_loved"]


def test_visit_grid_plays_the_arms_of_run_loop(report):
    """`visit_grid` (bench/bench_visit_grid.py) is the same play as run_loop's arms, without the store: at the
    default setting it gives the visit arm's cumulative likes exactly, and mix 0 is fold-in again."""
    from recommenders.visit import DEFAULT_VISIT, VisitLearning

    got = sim_loop.visit_grid(synthetic(), sim_loop.LoopConfig(**CONFIG), [DEFAULT_VISIT, VisitLearning(mix=0.0)])
    final = {arm: body["rounds"][-1]["cumulative_likes"] for arm, body in report["arms"].items()}
    assert got["static"] == final["static"] and got["fold-in"] == final["fold-in"]
    assert got["visit"][0] == final["visit"]
    assert got["visit"][1] == pytest.approx(final["fold-in"])  # mix 0: the model's own ranking, z-scored


def test_ips_block(report):
    ips = report["ips"]
    assert ips["n_slates"] == 3 * 60 and 0 < ips["examination"]["eta"] < 3
    for c in ips["candidates"].values():
        assert 0 <= c["support"] <= 1 and c["truth"] > 0 and c["snips_ci"][0] <= c["snips_ci"][1]


def test_cli_dispatch_from_app_simulate(tmp_path, monkeypatch, capsys):
    from app.simulate.cli import main

    ds = synthetic()
    folder = write_folder(ds, tmp_path / "syn")
    monkeypatch.setenv("VITRINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VITRINE_DATASET", str(folder))
    out = tmp_path / "loop.json"
    assert main(["--rounds", "2", "--users", "20", "--retrain", "--json", str(out), "--min-ratings", "20",
                          "--ips-candidates", "pop", "--ips-replicates", "2"]) == 0
    report = json.loads(out.read_text())
    assert [r["round"] for r in report["rounds"]] == [1, 2] and "control" in report
    out = capsys.readouterr().out
    assert "retrain  round 2" in out and "% over static" in out
    # without --model: the model the app serves (its text features computed as the app does)
    assert report["config"]["model"] == "ease-text" and "model ease-text, treatment = retrain" in out
    with pytest.raises(SystemExit):
        main(["--rounds", "0"])


def test_learning_figures(report):
    curves = dl.curves_frame(report)
    assert set(curves["arm"]) == {"static", "fold-in", "visit", "retrain"} and curves["round"].max() == 3
    fig = dl.learning_curves_figure(curves, "ndcg@10")
    assert len(fig.data) == 8  # a band and a line per arm
    ips = dl.ips_frame(report)
    assert list(ips["candidate"]) == list(report["ips"]["candidates"])
    assert len(dl.ips_figure(ips).data) == 3
    versions = pd.DataFrame({
        "name": ["ease"] * 3, "version": [1, 2, 3],
        "created_at": pd.to_datetime(["2026-11-29 10:00", "2026-11-29 11:00", "2026-11-29 12:00"]),
        "decision": ["promoted", "promoted", "rejected"], "promoted": [False, True, False], "watermark": [None, 10, 20],
        "reason": ["initial", "not worse on both", "worse <b>than</b> served"],
        "metrics": [{"candidate": {"offline": {"valid": {"ndcg@10": 0.30}}}},
                    {"candidate": {"offline": {"valid": {"ndcg@10": 0.31}}, "holdout": {"ndcg@10": 0.2}},
                     "served": {"holdout": {"ndcg@10": 0.1}}},
                    {"candidate": {"offline": {"valid": {"ndcg@10": 0.29}}, "holdout": {"ndcg@10": 0.1}}}],
    })
    table = dl.versions_table(versions)
    assert table["offline"].tolist() == [0.30, 0.31, 0.29] and np.isnan(table["holdout"].iloc[0])
    assert table["served_holdout"].iloc[1] == 0.1
    fig = dl.versions_figure(table)
    assert len(fig.data) == 2
    assert "&lt;b&gt;" in fig.data[0].customdata[2][2]  # reasons are escaped for plotly
