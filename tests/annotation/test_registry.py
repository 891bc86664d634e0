"""annotation.registry: versions, the gate's decisions, promotion, rollback, evaluations of versions, watermarks.

Runs on SQLite and PostgreSQL (the `db_url` fixture); the migration 0003 round trip is in test_store_migrations.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import inspect

from annotation import db, registry, store
from annotation.errors import InvalidInputError
from ann_helpers import new_id

T0 = dt.datetime(2026, 11, 29, 10, 0, 0)


def test_register_decide_promote_rollback(Session):
    with Session() as s, s.begin():
        v1 = registry.register(s, "ease", "models/ease/v1", watermark=None, metrics={"offline": {"ndcg@10": 0.3}},
                               at=T0)
        assert (v1.version, v1.decision, v1.promoted) == (1, None, False)
        registry.decide(s, v1.id, "promoted", "initial version", at=T0)
        v2 = registry.register(s, "ease", "models/ease/v2", watermark=10, at=T0 + dt.timedelta(minutes=1))
        registry.decide(s, v2.id, "promoted", "not worse on both", metrics={"holdout": {"ndcg@10": 0.2}})
        v3 = registry.register(s, "ease", "models/ease/v3", watermark=20, at=T0 + dt.timedelta(minutes=2))
        registry.decide(s, v3.id, "rejected", "worse on the recent holdout (-0.05)")
        other = registry.register(s, "pop", "models/pop/v1")
        registry.promote(s, other.id)
        ids = (v1.id, v2.id, v3.id)
    with Session() as s:
        served = registry.promoted_version(s, "ease")
        assert served.version == 2 and served.watermark == 10 and served.metrics["holdout"]["ndcg@10"] == 0.2
        assert registry.promoted_version(s, "pop").version == 1  # names are independent
        assert registry.promoted_version(s, "ease", kind="preference") is None
        frame = registry.versions_frame(s, "ease")
        assert frame["version"].tolist() == [1, 2, 3]
        assert frame["decision"].tolist() == ["promoted", "promoted", "rejected"]
        assert frame["promoted"].tolist() == [False, True, False]
        assert frame["watermark"].tolist()[1:] == [10, 20] and frame["watermark"].isna().iloc[0]
        assert "holdout" in frame["reason"].iloc[2]
    with Session() as s, s.begin():
        back = registry.rollback(s, "ease", at=T0 + dt.timedelta(hours=1))
        assert back.id == ids[0] and back.promoted
    with Session() as s:
        v2 = registry.get_version(s, ids[1])
        assert not v2.promoted and v2.decision == "rejected" and v2.reason.startswith("rolled back")
        assert [r.version for r in registry.list_versions(s, "ease") if r.promoted] == [1]
    with Session() as s, s.begin(), pytest.raises(registry.UnknownModelVersionError, match="no earlier version"):
        registry.rollback(s, "ease")
    with Session() as s, s.begin(), pytest.raises(registry.UnknownModelVersionError, match="no served version"):
        registry.rollback(s, "lightgcn")


def test_bad_input_is_rejected(Session):
    with Session() as s, s.begin():
        with pytest.raises(InvalidInputError, match="kind"):
            registry.register(s, "ease", "a", kind="ranker")
        with pytest.raises(InvalidInputError, match="watermark"):
            registry.register(s, "ease", "a", watermark=-1)
        v = registry.register(s, "ease", "a")
        with pytest.raises(InvalidInputError, match="decision"):
            registry.decide(s, v.id, "maybe", "why not")
        with pytest.raises(registry.UnknownModelVersionError):
            registry.get_version(s, 999)
        with pytest.raises(InvalidInputError, match="metrics"):
            registry.record_version_eval(s, v.id, "ml-100k", "random", {})


def test_version_evals_and_training_events(catalog):
    Session = catalog
    with Session() as s, s.begin():
        v = registry.register(s, "ease", "models/ease/v1")
        registry.record_version_eval(s, v.id, "ml-100k", "random", {"ndcg@10": 0.31, "recall@10": 0.2},
                                     config={"role": "candidate"})
        registry.record_version_eval(s, v.id, "ml-100k", "recent-holdout", {"ndcg@10": 0.12})
        store.record_eval_run(s, "pop", "ml-100k", "random", {"ndcg@10": 0.1})  # no version: not listed
        assert registry.latest_event_id(s) is None
        imp = store.record_impression(s, new_id(), "196", "ease", ["1", "2", "3"], at=T0)
        store.record_feedback(s, new_id(), "196", "2", "like", impression_id=imp.id, at=T0)
        store.record_feedback(s, new_id(), "196", "3", "rating", value=4, at=T0)
        store.record_feedback(s, new_id(), "186", "1", "dislike", at=T0)
    with Session() as s:
        evals = registry.version_evals_frame(s)
        assert evals["split"].tolist() == ["random", "recent-holdout"]
        assert evals["ndcg@10"].tolist() == [0.31, 0.12] and evals["version"].tolist() == [1, 1]
        assert evals["config"].iloc[0] == {"version": 1, "role": "candidate"}
        events = registry.training_events(s)
        assert events["kind"].tolist() == ["like", "rating", "dislike"]
        assert events["position"].iloc[0] == 1 and events["model"].iloc[0] == "ease"
        top = registry.latest_event_id(s)
        assert top == events["id"].max()
        assert registry.training_events(s, after=int(events["id"].iloc[0]), up_to=int(events["id"].iloc[1]))[
            "kind"].tolist() == ["rating"]


def test_migration_0003_round_trip(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    db.upgrade(url, "0002")
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        assert "model_versions" in inspect(engine).get_table_names()
        assert "model_version_id" in {c["name"] for c in inspect(engine).get_columns("eval_runs")}
    finally:
        engine.dispose()
    db.downgrade(url, "0002")
    engine = db.make_engine(url)
    try:
        assert "model_versions" not in inspect(engine).get_table_names()
        assert "model_version_id" not in {c["name"] for c in inspect(engine).get_columns("eval_runs")}
    finally:
        engine.dispose()
