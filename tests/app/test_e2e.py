"""End to end: the app served on a port, driven through its named endpoints with gradio_client."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
from gradio_client import Client
from sqlalchemy import select

from annotation.models import FeedbackEvent, PreferenceLabel


@pytest.fixture(scope="module")
def client(live_app):
    url, _ = live_app
    return Client(url, verbose=False)


def _is_image(live_app, cover_url: str | None) -> bool:
    """True when the app serves a JPEG at `cover_url` (relative to its root), as an API client would fetch it."""
    url, _ = live_app
    if not cover_url:
        return False
    got = httpx.get(url + cover_url, timeout=10)
    return got.status_code == 200 and got.headers["content-type"] == "image/jpeg" and got.content[:2] == b"\xff\xd8"


def test_named_endpoints_are_listed(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/recommend", "/feedback", "/generate_covers", "/generate_caption", "/next_pair", "/label"} <= names


def test_recommend_then_feedback_is_stored_once(client, live_app):
    _, svc = live_app
    slate = client.predict("5", "ease", 4, api_name="/recommend")
    assert slate["user_id"] == "5" and slate["impression_id"] >= 1 and len(slate["items"]) == 4
    # the first answer does not wait for covers: they are made in the background, and there next time
    assert slate["pending"] == 4 and all(item["pending"] and item["cover_url"] is None for item in slate["items"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        again = client.predict("5", "ease", 4, api_name="/recommend")
        if again["pending"] == 0:
            break
        time.sleep(0.2)
    assert [i["item_id"] for i in again["items"]] == [i["item_id"] for i in slate["items"]]
    assert again["impression_id"] > slate["impression_id"]
    for item in again["items"]:
        assert {"item_id", "title", "score", "cover_key", "cover_url", "caption", "why"} <= set(item)
        assert _is_image(live_app, item["cover_url"]) and item["cover_fallback"] is True and item["caption"]
    scores = [item["score"] for item in slate["items"]]
    assert scores == sorted(scores, reverse=True)
    item_id = slate["items"][0]["item_id"]
    event = str(uuid.uuid4())
    first = client.predict("5", item_id, "like", slate["impression_id"], event, api_name="/feedback")
    retry = client.predict("5", item_id, "like", slate["impression_id"], event, api_name="/feedback")
    assert first["feedback_id"] == retry["feedback_id"]
    with svc.events.Session() as s:
        rows = s.scalars(select(FeedbackEvent).where(FeedbackEvent.event_id == event)).all()
    assert [(r.user_id, r.item_id, r.kind, r.impression_id) for r in rows] == [
        ("5", item_id, "like", slate["impression_id"])
    ]


def test_recommend_can_wait_for_the_assets(client, live_app):
    slate = client.predict("11", "pop", 3, True, api_name="/recommend")
    assert slate["pending"] == 0
    assert all(_is_image(live_app, item["cover_url"]) and item["caption"] for item in slate["items"])


def test_compare_slate_credits_two_models(client):
    slate = client.predict("9", "compare:ease|pop", 6, api_name="/recommend")
    assert {item["contributor"] for item in slate["items"]} == {"ease", "pop"}


@pytest.mark.parametrize(
    "args, message",
    [
        (("nobody", "ease", 5), "user_id: expected a user"),
        (("", "ease", 5), "user_id: expected a non-empty string"),
        (("x" * 300, "ease", 5), "user_id: expected at most 64 characters"),
        (("5", "ease", 0), "k: expected an integer between 1 and 50"),
        (("5", "ease", 51), "k: expected an integer between 1 and 50"),
        (("5", "nope", 5), "model: expected one of"),
    ],
)
def test_recommend_rejects_bad_input(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/recommend")


@pytest.mark.parametrize(
    "args, message",
    [
        (("5", "9999", "like", 1), "item_id: expected an item"),
        (("5", "1", "love", 1), "kind: expected one of"),
        (("5", "1", "like", 987654), "impression"),
        (("5", "1", "dislike", 0), "impression_id: expected the impression_id that /recommend returned"),
    ],
)
def test_feedback_rejects_bad_input(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/feedback")


def test_generation_endpoints(client, live_app):
    covers = client.predict("3", "6", 2, 11, api_name="/generate_covers")  # a Sci-Fi fan, a Drama film
    assert sorted(v["personalized"] for v in covers["variants"]) == [False, True]
    assert all(_is_image(live_app, v["cover_url"]) and v["generator"] == "fallback" for v in covers["variants"])
    caption = client.predict("3", "7", api_name="/generate_caption")
    assert caption["text"] and caption["fallback"] is True
    with pytest.raises(Exception, match="n: expected an integer between 2 and 8"):
        client.predict("3", "7", 99, 0, api_name="/generate_covers")
    with pytest.raises(Exception, match="item_id: expected an item"):
        client.predict("3", "nope", api_name="/generate_caption")


def test_label_endpoints(client, live_app):
    _, svc = live_app
    svc.labeling.make_pairs(1, seed=3)
    pair = client.predict("e2e-annotator", api_name="/next_pair")
    assert pair["pair_id"] > 0 and pair["a"]["asset_id"] != pair["b"]["asset_id"]
    assert pair["target_user_id"] and (_is_image(live_app, pair["a"]["cover_url"]) or pair["a"]["text"])
    done = client.predict("e2e-annotator", pair["pair_id"], "2", api_name="/label")
    assert done["choice"] == "B"
    with svc.events.Session() as s:
        label = s.get(PreferenceLabel, done["label_id"])
        assert (label.pair_id, label.choice) == (pair["pair_id"], "B")
    with pytest.raises(Exception, match="choice: expected one of"):
        client.predict("e2e-annotator", pair["pair_id"], "maybe", api_name="/label")
    with pytest.raises(Exception, match="annotator: expected a non-empty string"):
        client.predict("  ", api_name="/next_pair")


def test_slow_generation_does_not_block_recommend_or_feedback(client, live_app, monkeypatch):
    _, svc = live_app
    release = threading.Event()
    real = svc.assets.generate_cover

    def slow(*args, **kwargs):
        release.wait(timeout=30)
        return real(*args, **kwargs)

    monkeypatch.setattr(svc.assets, "generate_cover", slow)
    job = client.submit("4", "9", 2, 77, api_name="/generate_covers")
    try:
        time.sleep(0.3)
        slate = client.predict("4", "ease", 3, api_name="/recommend")
        client.predict("4", slate["items"][0]["item_id"], "click", slate["impression_id"], api_name="/feedback")
        assert not job.done(), "the generation is still running while /recommend and /feedback answered"
    finally:
        release.set()
    assert len(job.result(timeout=30)["variants"]) == 2
