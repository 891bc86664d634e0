"""Gated retraining at scale (issue 23): at most `GateConfig.eval_users` users ranked per comparison (a seeded
sample, the same for the candidate and the served version), and a time budget checked before anything is fitted.

The toy world of tests/app/test_learning.py: 40 dataset users, 30 visitors who like pairs of items.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from annotation import registry
from annotation.db import make_engine, make_session_factory, upgrade
from app.learning import retrain as learning
from app.learning.schedule import RetrainSchedule
from recommenders.splits import Split
from test_learning import log_likes, toy_dataset, world  # noqa: F401 - `world` is a fixture

REG = {"reg": 5.0}


def versions(Session, name: str = "ease") -> list[int]:
    with Session() as s:
        return registry.versions_frame(s, name)["version"].tolist()


def test_the_sample_is_drawn_above_eval_users_and_not_below(world):  # noqa: F811
    Session, ds, artifacts = world
    log_likes(Session, 0)
    log_likes(Session, 1)
    every = learning.retrain(Session, ds, "ease", artifacts, params=REG)  # default: at most 5,000 users
    spec = every.metrics["offline_users"]
    assert spec["seed"] is None and spec["users"] == spec["of"] > 12  # every valid user, no sample
    assert every.metrics["candidate"]["offline"]["valid"]["n_users"] == spec["of"]
    assert every.metrics["holdout_users"] == {"users": 30, "of": 30, "seed": None}
    assert every.metrics["candidate"]["holdout"]["n_users"] == 30

    small = learning.GateConfig(eval_users=12, tolerance=1.0)  # promoted whatever it scores
    sampled = learning.retrain(Session, ds, "ease", artifacts, params=REG, config=small)
    assert sampled.metrics["offline_users"] == {"users": 12, "of": spec["of"], "seed": 0}
    cand, served = sampled.metrics["candidate"], sampled.metrics["served"]
    # the served version's recorded figure was on every user: it is fitted again on the same 12 (paired)
    assert "served_offline" in sampled.seconds
    assert cand["offline"]["valid"]["n_users"] == served["offline"]["valid"]["n_users"] == 12
    assert cand["holdout"]["n_users"] == served["holdout"]["n_users"] == 12
    assert sampled.metrics["holdout_users"] == {"users": 12, "of": 30, "seed": 0}
    assert sampled.promoted  # now served, its recorded figure is on the same 12 users: reused, not fitted again
    again = learning.retrain(Session, ds, "ease", artifacts, params=REG, config=small)
    assert "served_offline" not in again.seconds and "served_offline" not in again.estimate["steps"]
    assert again.metrics["served"]["offline"] == cand["offline"]


def test_the_sample_is_seeded_and_drawn_from_the_valid_users():
    users = [f"u{i}" for i in range(100)] * 3
    a = learning.sample_users(users, 10, seed=0)
    assert a == learning.sample_users(list(reversed(users)), 10, seed=0)  # the order of rows does not matter
    assert len(a) == 10 and a <= set(users) and a != learning.sample_users(users, 10, seed=1)
    assert learning.sample_users(users, 100, seed=0) is None  # not more than the limit: everyone, no sample
    assert learning.sample_users(users, None, seed=0) is None
    with pytest.raises(ValueError, match="eval_users"):
        learning.GateConfig(eval_users=0)


def test_the_default_keeps_every_user_of_an_ml100k_sized_split():
    # ml-100k: 943 users, each with valid items: evaluated exactly as before the sample existed
    rng = np.random.default_rng(0)
    frame = lambda n: pd.DataFrame({"user_id": [str(u) for u in range(943) for _ in range(n)],  # noqa: E731
                                    "item_id": [str(i) for i in rng.integers(0, 1682, 943 * n)]})
    split = Split("random", 2020, frame(8), frame(1), frame(1))
    users, spec = learning.offline_sample(split, learning.GateConfig())
    assert users is None and spec == {"users": 943, "of": 943, "seed": None}


def test_a_retrain_over_its_budget_is_refused_before_anything_is_fitted(world, monkeypatch):  # noqa: F811
    Session, ds, artifacts = world
    log_likes(Session, 0)
    import recommenders.training

    fits = []
    real = recommenders.training.train_model
    monkeypatch.setattr(recommenders.training, "train_model", lambda *a, **k: fits.append(1) or real(*a, **k))
    with pytest.raises(learning.RetrainBudgetError) as refused:
        learning.retrain(Session, ds, "ease", artifacts, params=REG, config=learning.GateConfig(time_budget_s=1e-6))
    msg = str(refused.value)
    assert "retrain ease: estimated" in msg and "over the retrain time budget of 0 s" in msg
    assert "40 items" in msg and "VITRINE_RETRAIN_BUDGET_MIN" in msg and "bootstrap" in msg
    assert versions(Session) == [] and fits == []  # nothing registered, nothing fitted

    done = learning.retrain(Session, ds, "ease", artifacts, params=REG, config=learning.GateConfig(time_budget_s=600))
    assert done.budget_s == 600 and 0 < done.estimate["total"] < 600
    assert set(done.estimate["steps"]) == {"bootstrap", "fit", "offline", "holdout"}
    assert {"read", "bootstrap", "fit", "offline", "holdout", "register", "evaluate", "total"} <= set(done.seconds)
    assert done.timing().startswith("estimated ") and "(budget 10.0 min); took" in done.timing()
    with Session() as s:
        row = registry.promoted_version(s, "ease") if done.promoted else None
        config = registry.versions_frame(s, "ease")["config"].iloc[-1]
    assert config["estimate"]["total"] == done.estimate["total"] and config["budget_s"] == 600
    assert row is None or row.version == 2


def test_a_model_without_a_fit_time_estimate_is_not_refused(world):  # noqa: F811
    Session, ds, artifacts = world
    log_likes(Session, 0)
    result = learning.retrain(Session, ds, "bpr", artifacts, params={"epochs": 1, "dim": 4, "batch_size": 256},
                              config=learning.GateConfig(time_budget_s=1e-6))
    assert result.estimate["total"] is None and "estimated unknown" in result.timing()


def test_a_refused_scheduled_retrain_waits_for_the_next_round():
    def refuse():
        raise learning.RetrainBudgetError("retrain ease: estimated 2.0 h, over the retrain time budget of 60.0 min")

    schedule = RetrainSchedule(run=refuse, every_events=10)
    with pytest.raises(learning.RetrainBudgetError):
        schedule.tick(10)
    assert schedule.last_event_id == 10 and schedule.tick(15) is None  # not tried again at every poll


def test_the_cli_reports_the_time_and_refuses_over_the_budget(tmp_path, monkeypatch, capsys):
    from app import train
    from annotation import store
    from byo_helpers import write_folder

    ds = toy_dataset()
    folder = write_folder(ds, tmp_path / "toy")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VITRINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VITRINE_DATASET", str(folder))
    monkeypatch.setenv("DATABASE_URL", url)
    upgrade(url)
    engine = make_engine(url)
    Session = make_session_factory(engine)
    with Session() as s, s.begin():
        store.sync_items(s, ds.items[["item_id", "title", "year", "genres"]])
    log_likes(Session, 0)
    monkeypatch.setenv("VITRINE_RETRAIN_BUDGET_MIN", "0.000001")
    assert train.main(["--model", "ease"]) == 2
    err = capsys.readouterr().err
    assert "over the retrain time budget" in err and "Raise VITRINE_RETRAIN_BUDGET_MIN" in err
    monkeypatch.setenv("VITRINE_RETRAIN_BUDGET_MIN", "30")
    assert train.main(["--model", "ease"]) == 0
    out = capsys.readouterr().out
    assert "ease v2 PROMOTED" in out and "time: estimated" in out and "(budget 30.0 min); took" in out
    engine.dispose()


def test_the_budget_setting():
    from app.settings import load_settings

    assert load_settings({}).retrain_budget_min == 60.0
    assert load_settings({"VITRINE_RETRAIN_BUDGET_MIN": "0"}).retrain_budget_min is None  # 0: no budget
    cfg = learning.gate_config(load_settings({"VITRINE_RETRAIN_BUDGET_MIN": "5", "VITRINE_GATE_TOLERANCE": "0.01"}))
    assert (cfg.time_budget_s, cfg.tolerance) == (300.0, 0.01)
    with pytest.raises(ValueError, match="VITRINE_RETRAIN_BUDGET_MIN"):
        load_settings({"VITRINE_RETRAIN_BUDGET_MIN": "-1"})
    with pytest.raises(ValueError, match="time_budget_s"):
        learning.GateConfig(time_budget_s=0)
