"""The public surface, probed as an attacker would: forged labels, claimed identities, odd unicode, passwords."""

from __future__ import annotations

import gradio as gr
import pytest
from sqlalchemy import func, select

from annotation.models import Annotator, PairTask, PreferenceLabel
from app.web import discover_tab, label_tab, status_tab
from app.web.api import ApiHandlers
from app.errors import AppInputError
from app.serving.labeling import annotator_name
from app.settings import password_matches
from app.web.state import Visitor


def _count(svc, model) -> int:
    with svc.events.ReadSession() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def test_a_label_needs_a_pair_leased_to_that_annotator(fresh_svc):
    svc, api = fresh_svc, ApiHandlers(fresh_svc)
    assert svc.labeling.make_pairs(2, seed=4) == 4
    mine = api.next_pair("alice")
    alice = mine["token"]  # her first call claimed the name
    other = next(pid for pid in range(1, 5) if pid != mine["pair_id"])
    with pytest.raises(AppInputError, match="not leased to annotator"):
        api.label("alice", other, "A", token=alice)  # never handed to alice
    api.next_pair("bob")
    for name in ("mallory", "user:196", "hf:someone"):  # made-up annotators, reserved forms
        with pytest.raises(AppInputError):
            api.label(name, mine["pair_id"], "A")
    assert _count(svc, PreferenceLabel) == 0
    done = api.label("alice", mine["pair_id"], "A", token=alice)
    assert api.label("alice", mine["pair_id"], "A", event_id=done["event_id"], token=alice) == done  # a retry
    with pytest.raises(AppInputError, match="not leased"):
        api.label("alice", mine["pair_id"], "B", token=alice)  # finished: the lease is gone
    with svc.events.ReadSession() as s:
        assert max(s.scalars(select(PairTask.slots_taken))) <= svc.settings.label_overlap


def test_a_label_for_a_missing_pair_writes_nothing(fresh_svc):
    api = ApiHandlers(fresh_svc)
    before = _count(fresh_svc, Annotator)
    with pytest.raises(AppInputError, match="call next_pair first"):
        api.label("carol", 999, "A")
    assert _count(fresh_svc, Annotator) == before


@pytest.mark.parametrize("spelling", ["Alice", "alice", "ALICE ", "\u202eAlice", "Al\u200bice", "\uff21lice"])
def test_one_annotator_per_person_whatever_the_spelling(fresh_svc, spelling):
    assert annotator_name(spelling) == "alice"
    assert fresh_svc.labeling.sign_in(spelling) == fresh_svc.labeling.sign_in("alice")


@pytest.mark.parametrize("name", ["user:196", "User:5", "hf:someone", "\u200bhf:x"])
def test_reserved_prefixes_belong_to_their_sign_ins(fresh_svc, name):
    with pytest.raises(AppInputError, match="reserved"):
        fresh_svc.labeling.sign_in(name)
    with pytest.raises(gr.Error, match="reserved"):
        label_tab.sign_in(fresh_svc, Visitor(), name, "")
    assert fresh_svc.labeling.sign_in("hf:someone", reserved_ok=True)  # the OAuth sign-in owns it


@pytest.mark.parametrize("bad", ["\ud800", "a\udfffb", "x\x00y"])
def test_lone_surrogates_and_nul_are_refused_clearly(fresh_svc, bad):
    api = ApiHandlers(fresh_svc)
    with pytest.raises(AppInputError, match="lone surrogates"):
        api.recommend(bad)
    with pytest.raises(AppInputError, match="lone surrogates"):
        api.next_pair(bad)
    assert password_matches(bad, "secret") is False  # a wrong password, not an error


def test_a_surrogate_password_is_a_wrong_password(services_factory):
    svc = services_factory(label_password="s3cret", admin_password="adm1n")
    with pytest.raises(gr.Error, match="Wrong password"):
        label_tab.sign_in(svc, Visitor(), "ann", "\ud800")
    with pytest.raises(gr.Error, match="expected the admin password"):
        status_tab.retrain(svc, "ease", "\ud800")


def test_feedback_must_name_a_slate_that_showed_the_item_to_that_user(fresh_svc):
    from annotation.models import FeedbackEvent

    svc, api = fresh_svc, ApiHandlers(fresh_svc)
    slate = api.recommend("5", "ease", 3)
    shown, imp = slate["items"][0]["item_id"], slate["impression_id"]
    unseen = next(i for i in svc.catalog.item_ids if i not in {it["item_id"] for it in slate["items"]})
    with pytest.raises(AppInputError, match="impression_id: expected the impression_id"):
        api.feedback("5", shown, "dislike", 0)  # anonymous
    with pytest.raises(AppInputError, match="an impression that showed item"):
        api.feedback("6", shown, "dislike", imp)  # another user's slate
    with pytest.raises(AppInputError, match="an impression that showed item"):
        api.feedback("5", unseen, "dislike", imp)  # not on that slate
    assert _count(svc, FeedbackEvent) == 0
    api.feedback("5", shown, "dislike", imp)
    assert _count(svc, FeedbackEvent) == 1
    assert shown not in [i["item_id"] for i in api.recommend("5", "ease", 10)["items"]]
    assert shown in svc.events.visitor("5").disliked and shown not in svc.events.visitor("6").disliked


def test_names_and_titles_in_markdown_messages_cannot_inject_markup(fresh_svc):
    from markdown_it import MarkdownIt

    beacon = "![x](http://198.51.100.7/p.png) [click](javascript:alert(1)) <img src=x>"
    _, msg = label_tab.sign_in(fresh_svc, Visitor(), beacon, "")
    rendered = MarkdownIt().render(msg)
    assert "<img" not in rendered and "<a " not in rendered and "http://198.51.100.7/p.png" in rendered


def test_per_client_rate_limits_on_slates_and_generation(services_factory):
    svc = services_factory(rate_slate="3/minute", rate_generate="1/minute")
    api = ApiHandlers(svc)
    for _ in range(3):
        api.recommend("5", "ease", 2)
    with pytest.raises(AppInputError, match="too many requests: at most 3 per 1 minute .* for slate"):
        api.recommend("5", "ease", 2)
    visitor, _ = discover_tab.select_user(svc, Visitor(), "5")
    with pytest.raises(gr.Error, match="too many requests"):
        discover_tab.recommend(svc, visitor, "ease", None)  # the same client, through the UI
    api.generate_caption("5", "3")
    with pytest.raises(AppInputError, match="for generate"):
        api.generate_covers("5", "3", 2, 1)


def test_clients_behind_the_proxy_are_told_apart_by_the_address_it_saw():
    from types import SimpleNamespace

    from app.web.guards import RateLimits, client_key

    def req(forwarded, peer="127.0.0.1"):
        return SimpleNamespace(headers={"x-forwarded-for": forwarded}, client=SimpleNamespace(host=peer))

    assert client_key(req("1.2.3.4, 10.0.0.9"), trust_proxy=True) == "10.0.0.9"  # forged first entry ignored
    assert client_key(req("1.2.3.4"), trust_proxy=False) == "127.0.0.1"  # no proxy: the header is the client's
    limits = RateLimits({"slate": "1/minute"}, trust_proxy=True)
    limits.check(req("spoof, 10.0.0.1"), "slate")
    limits.check(req("spoof, 10.0.0.2"), "slate")  # another client
    with pytest.raises(AppInputError):
        limits.check(req("other, 10.0.0.1"), "slate")


def test_bodies_over_the_cap_get_413(live_app):
    import requests

    url, svc = live_app
    big = b"x" * (svc.settings.max_body_bytes + 1)
    for path in ("gradio_api/queue/join", "gradio_api/upload"):
        answer = requests.post(url + path, data=big, headers={"content-type": "application/json"}, timeout=30)
        assert answer.status_code == 413, (path, answer.status_code)
    chunked = requests.post(url + "gradio_api/queue/join", data=iter([big[: len(big) // 2], big[len(big) // 2:]]),
                            timeout=30)
    assert chunked.status_code == 413
    assert requests.get(url, timeout=30).status_code == 200  # and the app still serves


def test_a_rejected_request_is_one_log_line_without_traceback(live_app, capfd, caplog):
    from gradio_client import Client

    from app.web.guards import rejections

    url, _ = live_app
    client = Client(url, verbose=False)
    rejections.reset()  # the log's rate is process-wide: earlier tests' rejections may have used this minute's lines
    capfd.readouterr()
    caplog.clear()
    with caplog.at_level("INFO", logger="vitrine"):
        for _ in range(5):
            with pytest.raises(Exception, match="user_id"):
                client.predict("x" * 5000, "ease", 3, api_name="/recommend")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rejected")]
    assert len(lines) == 5 and all(len(line) < 300 for line in lines)


def test_the_public_status_page_shows_no_server_paths(services_factory):
    public = services_factory(admin_open=False)
    html = status_tab.status_html(public)
    assert str(public.settings.data_dir) not in html and "vitrine.db" not in html and "hidden" in html
    private = services_factory(admin_open=True)
    assert str(private.settings.data_dir) in status_tab.status_html(private)


@pytest.mark.parametrize("data, message", [
    (["\ud800", "ease", 3], "lone surrogates"),
    ([5, "ease", -135919514711783260160], "64-bit range"),
])
def test_json_that_gradio_cannot_encode_back_is_refused_clearly(live_app, data, message):
    import json as json_module

    import requests

    url, _ = live_app
    body = json_module.dumps({"data": data, "fn_index": 0, "session_hash": "x"})  # ensure_ascii escapes \ud800
    answer = requests.post(url + "gradio_api/queue/join", data=body, headers={"content-type": "application/json"},
                           timeout=30)
    assert answer.status_code == 400 and message in answer.json()["detail"]


def test_covers_are_recorded_by_key_and_only_cover_images_are_served(fresh_svc):
    import os

    from annotation.models import GeneratedAsset
    from app.web.launch import launch_kwargs

    svc = fresh_svc
    page = svc.slates.page(svc.events.visitor("5"), svc.ranking.parse("ease"), 2, seed=1, wait=True)
    with svc.events.ReadSession() as s:
        paths = [p for p in s.scalars(select(GeneratedAsset.path).where(GeneratedAsset.kind == "cover")) if p]
    assert paths and not any(os.path.isabs(p) for p in paths)  # keys, the same on every replica
    local = svc.assets.file(page.covers[page.item_ids[0]]["path"])
    allowed = launch_kwargs(svc)["allowed_paths"]
    assert local and any(local.startswith(a) for a in allowed)
    provenance = [str(p) for p in svc.assets.covers.store.root.rglob("*.json")]
    assert provenance and not any(p.startswith(a) for p in provenance for a in allowed)
