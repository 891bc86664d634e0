"""The generation loop's simulator: seeded, through the store, reachable as `python -m app.simulate --reward`."""

from __future__ import annotations

import json

import pytest

from annotation import store
from annotation.db import make_engine, make_session_factory
from app.simulate.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of the same small simulation (same seed, two databases) through the command line."""
    out = []
    for name in ("a", "b"):
        root = tmp_path_factory.mktemp(f"sim-{name}")
        url = f"sqlite:///{root / 'vitrine.db'}"
        mp = pytest.MonkeyPatch()
        mp.setenv("VITRINE_DATA_DIR", str(root / "data"))
        mp.delenv("DATABASE_URL", raising=False)
        try:
            code = main(["--reward", "--annotators", "careful:0.95,average:0.8,sloppy:0.6", "--labels", "40",
                         "--holdout", "10", "--checkpoints", "20,40", "--users", "8", "--trials", "10",
                         "--eval-pairs", "20", "--encoder", "hashing", "--seed", "5", "--database-url", url,
                         "--json", str(root / "report.json")])
        finally:
            mp.undo()
        assert code == 0
        out.append((url, json.loads((root / "report.json").read_text()), root))
    return out


def test_report_and_store_contents(runs) -> None:
    url, report, root = runs[0]
    assert report["labels"] == 50 and report["assets"] == 100
    assert [p["labels"] for p in report["learning_curve"]] == [20, 40]
    for point in report["learning_curve"]:
        for key in ("truth_accuracy", "label_accuracy", "fresh_truth_accuracy", "heldout_accuracy"):
            assert 0.0 <= point[key] <= 1.0
        assert point["n_test"] == 10 and point["version"].startswith("reward-")
    assert set(report["best_of_n"]) == {"cover", "caption"} and report["best_of_n"]["cover"]["n"] == 4
    assert report["policy"]["cover_rounds"] > 15 and report["policy"]["random_policy_regret_mean"] > 0
    assert [a["accuracy"] for a in report["config"]["annotators"]] == [0.95, 0.8, 0.6]
    captions = report["captions"]  # template captions: the two sides of a pair never share their trait set
    assert captions["source"] == "template" and captions["loop_pairs"] > 0 and captions["loop_pairs_same_traits"] == 0
    assert captions["later_pairs"] == report["learning_curve"][0]["n_test_by_kind"]["caption"]
    assert captions["later_pairs_same_traits"] == 0 and 0.0 <= captions["later_pairs_oracle_accuracy"] <= 1.0
    with make_session_factory(make_engine(url))() as s:
        prefs, assets, runs_frame = store.preferences_frame(s), store.assets_frame(s), store.eval_runs_frame(s)
    assert len(prefs) == 50 and set(prefs["annotator"]) == {"careful", "average", "sloppy"}
    covers = assets[assets["kind"] == "cover"]
    assert covers["params"].map(lambda p: "style" in p["policy"]).all()
    assert covers["path"].map(lambda p: p.startswith(str(root / "data" / "assets"))).all()
    reward_runs = runs_frame[runs_frame["model"] == "reward"]
    assert len(reward_runs) == 2 and reward_runs["config"].map(lambda c: c["version"]).str.startswith("reward-").all()


def test_same_seed_same_results(runs) -> None:
    (_, a, _), (_, b, _) = runs
    a.pop("seconds"), b.pop("seconds")
    assert a == b


def test_bad_arguments_exit_with_a_message(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--reward", "--labels", "5"])
    assert "labels" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--reward", "--labels", "100", "--checkpoints", "200"])
    assert "checkpoints" in capsys.readouterr().err
