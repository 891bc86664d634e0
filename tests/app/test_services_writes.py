"""How Services logs events: a dataset user is written to the store by their first visit, once per process, and
only taken as stored once that write committed; the writes of a page and of feedback then write no user."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import annotation.store as store_module
from annotation.models import User
from app.errors import AppInputError
from app.serving.ranking import ModelChoice


def _slate(svc, user_id, k):
    return svc.ranking.slate(user_id, ModelChoice("ease"), k, profile=svc.catalog.profile(user_id))


def _count_user_writes(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = store_module.insert_user
    monkeypatch.setattr(store_module, "insert_user",
                        lambda s, user_id, kind: calls.append(user_id) or real(s, user_id, kind))
    return calls


def test_a_dataset_user_is_stored_once_by_their_first_visit(fresh_svc, monkeypatch):
    svc = fresh_svc
    calls = _count_user_writes(monkeypatch)
    visit = svc.events.visitor("5")
    with svc.events.ReadSession() as s:
        assert s.get(User, "5").kind == "dataset"  # stored by the visit, before any page
    slate = _slate(svc, visit.user_id, 3)
    first = svc.events.record_impression(visit.user_id, slate, ModelChoice("ease"))
    svc.events.record_feedback("5", slate[0].item_id, "like", first)
    svc.events.visitor("5")
    svc.events.record_impression("5", slate, ModelChoice("ease"))
    assert calls == ["5"]
    with svc.events.ReadSession() as s:
        assert s.scalars(select(User.user_id).where(User.user_id == "5")).all() == ["5"]


def test_a_user_is_not_taken_as_stored_when_the_write_failed(fresh_svc, monkeypatch):
    svc = fresh_svc
    real = store_module.insert_user

    def failing(s, user_id, kind):
        real(s, user_id, kind)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(store_module, "insert_user", failing)
    with pytest.raises(RuntimeError):
        svc.events.visitor("6")
    with svc.events.ReadSession() as s:
        assert s.get(User, "6") is None  # rolled back
    monkeypatch.setattr(store_module, "insert_user", real)
    calls = _count_user_writes(monkeypatch)
    svc.events.visitor("6")
    assert calls == ["6"]  # written again, since the first write did not stay
    with svc.events.ReadSession() as s:
        assert s.get(User, "6") is not None


def test_feedback_writes_no_user(fresh_svc):
    svc = fresh_svc
    with pytest.raises(AppInputError, match="impression_id"):
        svc.events.record_feedback("7", "1", "like", impression_id=10**9)  # no such impression
    with svc.events.ReadSession() as s:
        assert s.get(User, "7") is None


def test_an_unknown_id_is_refused_and_stores_nothing(fresh_svc):
    svc = fresh_svc
    with pytest.raises(AppInputError, match="user_id: expected a user of the"):
        svc.events.visitor("nobody-knows-me")
    with svc.events.ReadSession() as s:
        assert s.get(User, "nobody-knows-me") is None
