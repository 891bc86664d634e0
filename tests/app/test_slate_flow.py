"""The one slate flow: the Discover handlers and /recommend (over gradio_client) agree, dislikes never come back,
and a like changes the next page, for a dataset user and for a new user."""

from __future__ import annotations

import pytest
from gradio_client import Client

from app.web import discover_tab
from app.web.state import PAGE_SIZE, Visitor


@pytest.fixture(scope="module")
def client(live_app):
    url, _ = live_app
    return Client(url, verbose=False)


def _ui_page(svc, user_id: str | None = None, picks=None) -> Visitor:
    if user_id is None:
        visitor, _ = discover_tab.start_new_user(svc, Visitor(), picks)
    else:
        visitor, _ = discover_tab.select_user(svc, Visitor(), user_id)
    visitor, _, _ = discover_tab.recommend(svc, visitor, "ease", None)
    return visitor


def _api_ids(client, user_id: str, k: int = PAGE_SIZE) -> list[str]:
    return [item["item_id"] for item in client.predict(user_id, "ease", k, api_name="/recommend")["items"]]


@pytest.mark.parametrize("kind", ["dataset", "new"])
def test_ui_and_api_give_the_same_page(live_app, client, kind):
    _, svc = live_app
    visitor = _ui_page(svc, "9") if kind == "dataset" else _ui_page(svc, picks=["2", "6", "10"])
    ui = [row["item_id"] for row in visitor.slate]
    assert len(ui) == PAGE_SIZE
    assert _api_ids(client, visitor.user_id) == ui


@pytest.mark.parametrize("kind", ["dataset", "new"])
def test_a_disliked_item_never_comes_back(live_app, client, kind):
    _, svc = live_app
    visitor = _ui_page(svc, "10") if kind == "dataset" else _ui_page(svc, picks=["3", "7", "11"])
    user_id = visitor.user_id
    disliked = visitor.slate[0]["item_id"]
    visitor, *_ = discover_tab.card_feedback(svc, visitor, 0, "dislike")
    # through the UI: a fresh first page for the same user (another tab), and every later page
    again, _ = discover_tab.select_user(svc, Visitor(), user_id)
    assert disliked in again.disliked
    again, _, _ = discover_tab.recommend(svc, again, "ease", None)
    seen = [row["item_id"] for row in again.slate]
    while again.slate:
        again, _, _ = discover_tab.more(svc, again)
        seen += [row["item_id"] for row in again.slate]
    assert disliked not in seen and len(seen) > PAGE_SIZE
    # through the API, at any depth: the whole remaining catalog is asked for
    assert disliked not in _api_ids(client, user_id, 50)
    # the API's own dislike is honoured by the UI too
    slate = client.predict(user_id, "ease", 1, api_name="/recommend")
    other = slate["items"][0]["item_id"]
    client.predict(user_id, other, "dislike", slate["impression_id"], api_name="/feedback")
    assert other not in _api_ids(client, user_id, 50)
    fresh, _ = discover_tab.select_user(svc, Visitor(), user_id)
    fresh, _, _ = discover_tab.recommend(svc, fresh, "ease", None)
    assert other not in [row["item_id"] for row in fresh.slate]


def test_a_like_changes_the_next_page_of_a_dataset_user(live_app, client):
    _, svc = live_app
    user_id = "12"  # user 12 likes genre 12 % 4 = 0 (Comedy) in the tiny dataset
    before = _api_ids(client, user_id)
    visitor = _ui_page(svc, user_id)
    assert [row["item_id"] for row in visitor.slate] == before
    # like three items far from the user's taste: the next first page folds them into the history
    liked = [row["item_id"] for row in visitor.slate if row["genres"] != ["Comedy"]][:3] or before[-3:]
    for item_id in liked:
        slot = [row["item_id"] for row in visitor.slate].index(item_id)
        visitor, _, _, info = discover_tab.card_feedback(svc, visitor, slot, "like")
        assert "next page takes it into account" in info
    after = _api_ids(client, user_id)
    assert not set(liked) & set(after)
    ranked, _ = svc.ranking.model("ease").recommend(user_id, PAGE_SIZE + len(liked))  # the history alone
    unchanged = [i for i in ranked if i not in liked][:PAGE_SIZE]
    assert after != unchanged, "the likes are folded in: the ranking changed, not just the liked items removed"
