"""Gated retraining in the running app: the admin action registers a version, a promotion is served at once and
followed by another replica (same database, same artifacts) at its next poll, and a restart serves it too."""

from __future__ import annotations

import pytest

from app.web import discover_tab
from app.web.state import Visitor
from vitrine_app_fixtures import make_services


def test_a_promotion_is_served_here_by_a_replica_and_after_a_restart(tmp_path):
    one = make_services(tmp_path)
    two = make_services(tmp_path)  # a replica: the same data dir (database and registry)
    try:
        one.retrain("ease")  # registers version 1 (served) and a gated version 2
        served_id = one.watchers["ease"].version_id
        assert served_id is not None and one.ranking.model("ease") is one.watchers["ease"].model
        assert two.ranking.model("ease") is not one.ranking.model("ease")
        assert two.serve_promoted() == ["ease"]  # what its upkeep thread does every VITRINE_MODEL_POLL_S
        assert two.watchers["ease"].version_id == served_id
        assert two.serve_promoted() == []  # nothing new: nothing loaded
    finally:
        one.close()
        two.close()
    again = make_services(tmp_path)  # a restart serves the promoted version from the registry
    try:
        assert again.watchers["ease"].version_id == served_id
        assert any("promoted versions" in note for note in again.notes)
    finally:
        again.close()


def test_the_schedule_retrains_after_enough_new_events(services_factory):
    svc = services_factory(retrain_every_events=3)
    svc.tick_schedule()
    assert svc.schedule.last_event_id == 0  # no events yet: nothing to learn from
    discover_tab.start_new_user(svc, Visitor(), ["1", "5", "9"])  # three likes
    svc.tick_schedule()
    assert svc.schedule.last_event_id == 3 and svc.watchers["ease"].version_id is not None


def test_schedule_is_off_by_default(fresh_svc):
    assert fresh_svc.schedule is not None and not fresh_svc.schedule.enabled
    assert fresh_svc.upkeep is not None


@pytest.mark.parametrize("value", ["-1", "abc"])
def test_loop_settings_are_validated(value):
    from app.settings import load_settings

    with pytest.raises(ValueError, match="VITRINE_RETRAIN_EVERY_EVENTS"):
        load_settings({"VITRINE_RETRAIN_EVERY_EVENTS": value})


def test_the_app_serves_the_best_model_of_the_validation_search(tmp_path):
    import json

    from app.serving.services import build_services
    from vitrine_app_fixtures import make_settings, make_tiny_dataset, make_tiny_features

    selection = tmp_path / "selection.json"
    selection.write_text(json.dumps({"best": {"model": "itemknn", "params": {"k": 5}}, "trials": []}))
    dataset = make_tiny_dataset()
    svc = build_services(make_settings(tmp_path, model=None, selection=selection, extra_models=("pop",)),
                         dataset=dataset, features=make_tiny_features(dataset), say=lambda m: None)
    try:
        assert svc.ranking.default_model == "itemknn" and svc.ranking.model("itemknn").params["k"] == 5
        assert any("best validation" in note for note in svc.notes)
    finally:
        svc.close()
    selection.write_text("{not json")
    svc = build_services(make_settings(tmp_path, model=None, selection=selection, extra_models=()),
                         dataset=dataset, features=make_tiny_features(dataset), say=lambda m: None)
    try:
        assert svc.ranking.default_model != "itemknn" and any("ignored" in note for note in svc.notes)
    finally:
        svc.close()
