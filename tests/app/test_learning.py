"""app.learning.retrain: the recent holdout, the gate, gated retraining with the registry, rollback, the schedule.

A toy world of 20 pairs of items (2j, 2j+1 go together). Dataset users show it weakly (2 pairs and 2 random
items each); app visitors like whole pairs, one item after the other, so their latest like - the recent
holdout - is the partner of an earlier one. A model that learns from the logs ranks it higher; one trained
on shuffled logs loses the pairs.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid

import numpy as np
import pandas as pd
import pytest

from annotation import registry, store
from annotation.db import make_engine, make_session_factory, upgrade
from app.learning import retrain as learning
from app.learning.served import ServedModelWatcher, load_promoted
from app.learning.schedule import RetrainSchedule
from recommenders.data import Dataset
from recommenders.signals import to_signal
from byo_helpers import write_folder

N_ITEMS = 40
T0 = dt.datetime(2026, 11, 29, 9, 0, 0)


def toy_dataset(seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({"item_id": [str(i) for i in range(N_ITEMS)], "title": [f"Film {i}" for i in range(N_ITEMS)],
                          "text": ["a film"] * N_ITEMS, "genres": [["Drama"]] * N_ITEMS,
                          "year": pd.array([2000] * N_ITEMS, dtype="Int64"), "image": [None] * N_ITEMS})
    rows = []
    for u in range(40):  # dataset users: two pairs and two random items
        pairs = rng.choice(20, 2, replace=False)
        own = np.concatenate([2 * pairs, 2 * pairs + 1])
        rest = rng.choice(np.setdiff1d(np.arange(N_ITEMS), own), 2, replace=False)
        rows += [(f"b{u}", str(i)) for i in np.concatenate([own, rest])]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(rating=4.0, timestamp=1)
    users = pd.DataFrame({"user_id": sorted(set(inter["user_id"]))})
    return Dataset("toy", items, users, inter)


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    upgrade(url)
    engine = make_engine(url)
    Session = make_session_factory(engine)
    ds = toy_dataset()
    with Session() as s, s.begin():
        store.sync_items(s, ds.items[["item_id", "title", "year", "genres"]])
    yield Session, ds, tmp_path / "artifacts"
    engine.dispose()


def log_likes(Session, round_: int, n_users: int = 30, pairs_per_round: int = 2) -> None:
    # rounds 0 and 1 like 2 pairs each (8 likes: the holdout is 1 like, a partner); a round 2 of 1 pair makes
    # 10 likes, still a holdout of one partner
    """Visitor v likes `pairs_per_round` fresh pairs (item, then its partner) and dislikes one other item."""
    events = []
    with Session() as s, s.begin():
        for v in range(n_users):
            user = f"v{v}"
            store.ensure_user(s, user, kind="new")
            order = np.random.default_rng(v).permutation(20)  # each visitor's own order: fresh pairs every round
            pairs = order[2 * round_: 2 * round_ + pairs_per_round]
            for n, item in enumerate(np.ravel([(2 * p, 2 * p + 1) for p in pairs])):
                events.append({"event_id": str(uuid.uuid4()), "user_id": user, "item_id": str(item), "kind": "like",
                               "at": T0 + dt.timedelta(hours=round_, minutes=v, seconds=n)})
            events.append({"event_id": str(uuid.uuid4()), "user_id": user, "item_id": str(2 * order[-1 - round_]),
                           "kind": "dislike", "at": T0 + dt.timedelta(hours=round_, minutes=v, seconds=30)})
        store.record_feedback_batch(s, events)


def shuffle_items(seed: int = 0):
    def corrupt(signal: pd.DataFrame) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return signal.assign(item_id=rng.permutation(signal["item_id"].to_numpy()))
    return corrupt


def test_recent_holdout_takes_the_last_tenth_of_each_users_likes():
    events = pd.DataFrame({
        "user_id": ["a"] * 12 + ["b"] * 3,
        "item_id": [f"i{n}" for n in range(12)] + ["x", "y", "z"],
        "kind": ["like"] * 11 + ["click"] + ["like", "rating", "dislike"],
        "value": [np.nan] * 13 + [5.0, np.nan],
        "created_at": list(range(100, 112)) + [5, 6, 7],
        "id": list(range(1, 16)),
    })
    rest, held = learning.recent_holdout(to_signal(events), 0.1)
    # a: 11 liked items (the click is not a like) -> ceil(1.1) = 2 latest likes; b: 2 liked -> the latest one
    assert sorted(zip(held["user_id"], held["item_id"])) == [("a", "i10"), ("a", "i9"), ("b", "y")]
    assert len(rest) + len(held) == 15 and not set(zip(rest["user_id"], rest["item_id"])) & set(
        zip(held["user_id"], held["item_id"]))
    with pytest.raises(ValueError, match="fraction"):
        learning.recent_holdout(to_signal(events), 1.5)


def test_gate_promotes_only_when_not_worse_on_both():
    cfg = learning.GateConfig()
    ok, why = learning.gate({"offline": {"ndcg@10": 0.30}, "holdout": {"ndcg@10": 0.20}},
                            {"offline": {"ndcg@10": 0.30}, "holdout": {"ndcg@10": 0.19}}, cfg)
    assert ok and "not worse on both" in why
    ok, why = learning.gate({"offline": {"ndcg@10": 0.31}, "holdout": {"ndcg@10": 0.18}},
                            {"offline": {"ndcg@10": 0.30}, "holdout": {"ndcg@10": 0.19}}, cfg)
    assert not ok and "holdout ndcg@10 0.1800 vs served 0.1900 (-0.0100, worse)" in why
    ok, _ = learning.gate({"offline": {"ndcg@10": 0.29}, "holdout": {"ndcg@10": 0.25}},
                          {"offline": {"ndcg@10": 0.30}, "holdout": {"ndcg@10": 0.19}}, cfg)
    assert not ok
    ok, _ = learning.gate({"offline": {"ndcg@10": 0.29}, "holdout": {"ndcg@10": 0.25}},
                          {"offline": {"ndcg@10": 0.30}, "holdout": {"ndcg@10": 0.19}},
                          learning.GateConfig(tolerance=0.02))
    assert ok
    ok, why = learning.gate({"offline": {"ndcg@10": 0.30}, "holdout": {"ndcg@10": math.nan}},
                            {"offline": {"ndcg@10": 0.30}, "holdout": {}}, cfg)
    assert ok and "not compared" in why
    with pytest.raises(ValueError, match="tolerance"):
        learning.GateConfig(tolerance=-0.1)


def test_retrain_promotes_a_better_candidate_and_rejects_one_trained_on_shuffled_logs(world):
    Session, ds, artifacts = world
    cfg = learning.GateConfig()
    log_likes(Session, 0)
    log_likes(Session, 1)
    first = learning.retrain(Session, ds, "ease", artifacts, params={"reg": 5.0}, config=cfg)
    # version 1 (dataset alone) was registered and promoted first; the candidate learned the two tastes
    assert first.version == 2 and first.promoted, first.reason
    cand, served = first.metrics["candidate"], first.metrics["served"]
    assert cand["holdout"]["ndcg@10"] > served["holdout"]["ndcg@10"] + 0.1
    assert cand["holdout"]["n_users"] == 30
    with Session() as s:
        assert first.watermark == registry.latest_event_id(s)
    # the candidate never trained on its held-out likes
    rest, held = learning.recent_holdout(to_signal(registry_events(Session)), cfg.holdout_fraction)
    for user, item in zip(held["user_id"], held["item_id"]):
        u = first.model.user_index(user)
        assert first.model.item_index(item) not in set(first.model.seen_items(u))
    log_likes(Session, 2, pairs_per_round=1)
    worse = learning.retrain(Session, ds, "ease", artifacts, params={"reg": 5.0}, config=cfg, corrupt=shuffle_items())
    assert not worse.promoted and worse.reason.startswith("worse than the served version")
    cand, served = worse.metrics["candidate"], worse.metrics["served"]
    assert cand["holdout"]["ndcg@10"] < served["holdout"]["ndcg@10"] - 0.1  # the pairs are lost: worse on both
    assert cand["offline"]["valid"]["ndcg@10"] < served["offline"]["valid"]["ndcg@10"]
    assert worse.metrics["served_version"] == 2
    with Session() as s:
        frame = registry.versions_frame(s, "ease")
        assert frame["decision"].tolist() == ["promoted", "promoted", "rejected"]
        assert frame["promoted"].tolist() == [False, True, False]
        assert frame["config"].iloc[2]["corrupted"] is True
        assert registry.promoted_version(s, "ease").version == 2
        evals = registry.version_evals_frame(s, "ease")
    # every evaluation is in eval_runs with its version: offline valid/test and the holdout, both sides
    assert {"random:valid", "random:test", "recent-holdout"} <= set(evals["split"])
    assert set(evals[evals["split"] == "recent-holdout"]["version"]) == {1, 2, 3}
    # the served model is loaded from the registry; a rollback returns to version 1 in one call
    version, model = load_promoted(Session, "ease", artifacts)
    assert version.version == 2 and model.recommend_with_feedback(None, liked=["0"], k=3)[0]
    watcher = ServedModelWatcher(Session, "ease", artifacts)
    assert watcher.refresh() and not watcher.refresh()
    back = learning.rollback(Session, "ease")
    assert back.version == 1 and watcher.refresh() and watcher.version_id == back.id


def registry_events(Session) -> pd.DataFrame:
    with Session() as s:
        return registry.training_events(s)


def test_retrain_with_an_empty_log_compares_offline_only(world):
    Session, ds, artifacts = world
    result = learning.retrain(Session, ds, "ease", artifacts, params={"reg": 5.0})
    assert result.version == 2 and result.watermark is None
    assert "not compared" in result.reason and result.promoted  # the same recipe on the same data: equal


def test_schedule():
    calls = []
    off = RetrainSchedule(run=lambda: calls.append(1))
    assert not off.enabled and off.tick(1000) is None
    by_events = RetrainSchedule(run=lambda: calls.append("e") or "ran", every_events=100)
    assert by_events.tick(99, T0) is None and by_events.tick(100, T0) == "ran" and by_events.last_event_id == 100
    assert by_events.tick(150, T0) is None and by_events.tick(200, T0) == "ran"
    by_time = RetrainSchedule(run=lambda: calls.append("t"), every_minutes=30)
    by_time.tick(1, T0)
    assert by_time.tick(2, T0 + dt.timedelta(minutes=10)) is None and calls[-1] == "t" and len(calls) == 3
    by_time.tick(2, T0 + dt.timedelta(minutes=31))
    assert len(calls) == 4
    assert by_time.tick(2, T0 + dt.timedelta(hours=3)) is None  # no new events: nothing to learn
    with pytest.raises(ValueError, match="every_events"):
        RetrainSchedule(run=lambda: None, every_events=0)
    from app.settings import load_settings

    settings = load_settings({"VITRINE_GATE_TOLERANCE": "0.01", "VITRINE_RETRAIN_EVERY_EVENTS": "500"})
    assert (settings.gate_tolerance, settings.retrain_every_events, settings.retrain_every_minutes) == (0.01, 500, None)
    with pytest.raises(ValueError, match="VITRINE_GATE_TOLERANCE"):
        load_settings({"VITRINE_GATE_TOLERANCE": "-1"})


def test_cli_retrain_list_and_rollback(tmp_path, monkeypatch, capsys):
    from app import train

    ds = toy_dataset()
    folder = write_folder(ds, tmp_path / "toy")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VITRINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VITRINE_DATASET", str(folder))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("VITRINE_GATE_TOLERANCE", "0")
    upgrade(url)
    engine = make_engine(url)
    Session = make_session_factory(engine)
    with Session() as s, s.begin():
        store.sync_items(s, ds.items[["item_id", "title", "year", "genres"]])
    log_likes(Session, 0)
    log_likes(Session, 1)
    assert train.main(["--model", "ease"]) == 0
    assert "ease v2 PROMOTED" in capsys.readouterr().out
    assert train.main(["--model", "ease", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "initial version" in listed and "not worse on both" in listed
    assert train.main(["--model", "ease", "--rollback"]) == 0
    assert "version 1 is served again" in capsys.readouterr().out
    assert train.main(["--model", "ease", "--rollback"]) == 2  # nothing earlier than version 1
    assert "no earlier version" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--model", "ease", "--tolerance", "-1"])
    engine.dispose()


def test_an_iterative_model_goes_through_the_same_gate(world):
    Session, ds, artifacts = world
    log_likes(Session, 0)
    result = learning.retrain(Session, ds, "bpr", artifacts, params={"epochs": 3, "dim": 8, "batch_size": 256})
    assert result.version == 2 and result.metrics["candidate"]["holdout"]["n_users"] == 30
    version, model = load_promoted(Session, "bpr", artifacts)
    assert version.version in (1, 2) and model.name == "bpr"


def test_fit_on_hands_the_datasets_ratings_to_the_model():
    """The gate's models see the dataset's ratings as the served one does (ease-text's centred-rating term)."""
    from app.learning.gate import fit_on
    from recommenders.models import create_model

    ds = toy_dataset()
    rng = np.random.default_rng(3)
    base = ds.interactions.assign(rating=rng.integers(1, 6, len(ds.interactions)).astype(float))
    feats = {"text": rng.normal(size=(N_ITEMS, 8)).astype(np.float32)}
    rated = fit_on("ease-text", base, ds.item_ids, features=feats)
    direct = create_model("ease-text").fit(base, ds.item_ids, feats)
    np.testing.assert_allclose(rated.B, direct.B)
    assert not np.allclose(rated.B, fit_on("ease-text", base.drop(columns="rating"), ds.item_ids, features=feats).B)
