"""Feedback floods (issue 28 item 7): /feedback and onboarding had no rate limit (2,000 likes in 48 s; 2,000
fake new users in 48 s), and the same like sent 50 times gave 50 rows. Both are rate-limited per client, and a
repeated identical signal on the same impression is one signal."""

from __future__ import annotations

import concurrent.futures
from types import SimpleNamespace

import gradio as gr
import pytest
from sqlalchemy import func, select

from annotation.models import FeedbackEvent, User
from app.errors import AppInputError
from app.web import discover_tab
from app.web.api import ApiHandlers
from app.web.state import Visitor


def _count(svc, model, *where) -> int:
    with svc.events.ReadSession() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)))


def _client(address: str) -> SimpleNamespace:
    return SimpleNamespace(headers={}, client=SimpleNamespace(host=address))


def test_the_same_like_on_the_same_slate_is_one_signal(fresh_svc):
    svc, api = fresh_svc, ApiHandlers(fresh_svc)
    slate = api.recommend("5", "ease", 3)
    item, imp = slate["items"][0]["item_id"], slate["impression_id"]
    first = api.feedback("5", item, "like", imp)
    assert not first["repeated"]
    for _ in range(49):
        again = api.feedback("5", item, "like", imp)
        assert again["repeated"] and again["feedback_id"] == first["feedback_id"]
        assert again["event_id"] == first["event_id"]
    assert _count(svc, FeedbackEvent, FeedbackEvent.kind == "like") == 1
    # a change of mind is a new signal, and so is liking it again afterwards
    api.feedback("5", item, "dislike", imp)
    assert not api.feedback("5", item, "like", imp)["repeated"]
    assert _count(svc, FeedbackEvent) == 3
    # the same item liked on another slate is another signal
    other = api.recommend("5", "pop", 10)
    if item in [i["item_id"] for i in other["items"]]:
        assert not api.feedback("5", item, "like", other["impression_id"])["repeated"]


def test_concurrent_identical_likes_are_stored_once(fresh_svc):
    svc, api = fresh_svc, ApiHandlers(fresh_svc)
    slate = api.recommend("6", "ease", 3)
    item, imp = slate["items"][1]["item_id"], slate["impression_id"]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: api.feedback("6", item, "like", imp), range(12)))
    assert len({a["feedback_id"] for a in answers}) == 1
    assert _count(svc, FeedbackEvent, FeedbackEvent.user_id == "6") == 1


def test_a_retry_with_its_event_id_is_still_a_retry(fresh_svc):
    api = ApiHandlers(fresh_svc)
    slate = api.recommend("7", "ease", 3)
    item, imp = slate["items"][0]["item_id"], slate["impression_id"]
    event = "0f6b8f4e-8a55-4f39-9d0e-3cdb0b9b1f11"
    done = api.feedback("7", item, "like", imp, event_id=event)
    assert done["event_id"] == event and api.feedback("7", item, "like", imp, event_id=event) == {**done,
                                                                                                  "repeated": True}


def test_likes_from_the_cards_count_once_too(fresh_svc):
    svc = fresh_svc
    visitor, _ = discover_tab.select_user(svc, Visitor(), "5")
    visitor, _, _ = discover_tab.recommend(svc, visitor, "ease", None)
    for _ in range(5):
        visitor, *_ = discover_tab.card_feedback(svc, visitor, 0, "like")
    assert _count(svc, FeedbackEvent, FeedbackEvent.kind == "like") == 1


def test_feedback_is_rate_limited_per_client(services_factory):
    svc = services_factory(rate_feedback="3/minute")
    api, flooder = ApiHandlers(svc), _client("203.0.113.5")
    slate = api.recommend("5", "ease", 5)
    items, imp = [i["item_id"] for i in slate["items"]], slate["impression_id"]
    for item in items[:3]:
        api.feedback("5", item, "click", imp, request=flooder)
    with pytest.raises(AppInputError, match="too many requests: at most 3 per 1 minute .* for feedback"):
        api.feedback("5", items[3], "click", imp, request=flooder)
    visitor, _ = discover_tab.select_user(svc, Visitor(), "5")
    visitor, _, _ = discover_tab.recommend(svc, visitor, "ease", None)
    with pytest.raises(gr.Error, match="for feedback"):
        discover_tab.card_feedback(svc, visitor, 0, "like", request=flooder)  # the same client, through the cards
    api.feedback("5", items[3], "click", imp, request=_client("198.51.100.3"))  # another client


def test_onboarding_is_rate_limited_per_client(services_factory):
    svc = services_factory(rate_onboard="2/hour")
    flooder = _client("203.0.113.6")
    before = _count(svc, User)
    for _ in range(2):
        discover_tab.start_new_user(svc, Visitor(), ["1", "2", "3"], request=flooder)
    with pytest.raises(gr.Error, match="for onboard"):
        discover_tab.start_new_user(svc, Visitor(), ["1", "2", "3"], request=flooder)
    assert _count(svc, User) == before + 2
    discover_tab.start_new_user(svc, Visitor(), ["1", "2", "3"], request=_client("198.51.100.4"))
