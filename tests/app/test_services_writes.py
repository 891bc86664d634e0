"""How Services logs events: a user is written to the store once per process, and only once it committed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import annotation.store as store_module
from annotation.models import User
from app.errors import AppInputError
from app.serving.ranking import ModelChoice


def _slate(svc, user_id, k):
    return svc.ranking.slate(user_id, ModelChoice("ease"), k, profile=svc.catalog.profile(user_id))


def _count_ensures(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = store_module.ensure_user
    monkeypatch.setattr(store_module, "ensure_user", lambda s, user_id, **kw: calls.append(user_id) or real(s, user_id, **kw))
    return calls


def test_a_dataset_user_is_stored_once(fresh_svc, monkeypatch):
    svc = fresh_svc
    calls = _count_ensures(monkeypatch)
    slate = _slate(svc, "5", 3)
    first = svc.events.record_impression("5", slate, ModelChoice("ease"))
    svc.events.record_feedback("5", slate[0].item_id, "like", first)
    svc.events.record_impression("5", slate, ModelChoice("ease"))
    assert calls == ["5"]
    with svc.events.ReadSession() as s:
        assert s.scalars(select(User.user_id).where(User.user_id == "5")).all() == ["5"]


def test_a_user_is_not_taken_as_stored_when_the_transaction_failed(fresh_svc, monkeypatch):
    svc = fresh_svc
    calls = _count_ensures(monkeypatch)
    with pytest.raises(AppInputError):
        svc.events.record_feedback("6", "1", "like", impression_id=10**9)  # no such impression: rolled back
    with svc.events.ReadSession() as s:
        assert s.get(User, "6") is None
    slate = _slate(svc, "6", 2)
    svc.events.record_impression("6", slate, ModelChoice("ease"))
    assert calls == ["6", "6"]  # written again, since the first write did not stay
    with svc.events.ReadSession() as s:
        assert s.get(User, "6") is not None
