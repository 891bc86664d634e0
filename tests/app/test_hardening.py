"""The public surface, probed as an attacker would: forged labels, claimed identities, odd unicode, passwords."""

from __future__ import annotations

import gradio as gr
import pytest
from sqlalchemy import func, select

from annotation.models import Annotator, PairTask, PreferenceLabel
from app import handlers as h
from app.api import ApiHandlers
from app.errors import AppInputError
from app.labeling import annotator_name
from app.settings import password_matches
from app.state import Visitor


def _count(svc, model) -> int:
    with svc.events.ReadSession() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def test_a_label_needs_a_pair_leased_to_that_annotator(fresh_svc):
    svc, api = fresh_svc, ApiHandlers(fresh_svc)
    assert svc.labeling.make_pairs(2, seed=4) == 4
    mine = api.next_pair("alice")
    other = next(pid for pid in range(1, 5) if pid != mine["pair_id"])
    with pytest.raises(AppInputError, match="not leased to annotator"):
        api.label("alice", other, "A")  # never handed to alice
    api.next_pair("bob")
    for name in ("mallory", "user:196", "hf:someone"):  # made-up annotators, reserved forms
        with pytest.raises(AppInputError):
            api.label(name, mine["pair_id"], "A")
    assert _count(svc, PreferenceLabel) == 0
    done = api.label("alice", mine["pair_id"], "A")
    assert api.label("alice", mine["pair_id"], "A", event_id=done["event_id"]) == done  # a retry is answered
    with pytest.raises(AppInputError, match="not leased"):
        api.label("alice", mine["pair_id"], "B")  # finished: the lease is gone
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
        h.sign_in(fresh_svc, Visitor(), name, "")
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
        h.sign_in(svc, Visitor(), "ann", "\ud800")
    with pytest.raises(gr.Error, match="expected the admin password"):
        h.retrain(svc, "ease", "\ud800")


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
    assert shown in svc.slates.visit("5").disliked and shown not in svc.slates.visit("6").disliked
