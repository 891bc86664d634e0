"""Annotators' identity (issue 28 item 6): with the shared label password anyone could label as any existing
name ("frank") and take leases as them. The first sign-in with a name claims it and hands out a secret token;
later sign-ins (UI and API) need it."""

from __future__ import annotations

import concurrent.futures

import gradio as gr
import pytest
from sqlalchemy import func, select

from annotation.models import Annotator, PairAssignment, PreferenceLabel
from app.errors import AppInputError
from app.web import label_tab
from app.web.api import ApiHandlers
from app.web.state import Visitor


def _count(svc, model) -> int:
    with svc.events.ReadSession() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def test_a_name_cannot_be_claimed_twice_through_the_api(fresh_svc):
    svc, api = fresh_svc, ApiHandlers(fresh_svc)
    svc.labeling.make_pairs(2, seed=5)
    frank = api.next_pair("frank")
    token = frank["token"]
    assert token and len(token) >= 32
    leases = _count(svc, PairAssignment)
    for given in ("", "guess", token[:-1] + ("x" if token[-1] != "x" else "y")):  # no token, a wrong one
        with pytest.raises(AppInputError, match="token: expected the token 'frank' was given"):
            api.next_pair("frank", token=given)
        with pytest.raises(AppInputError, match="token: expected the token 'frank' was given"):
            api.next_pair("FRANK ", token=given)  # the same name, however spelled
        with pytest.raises(AppInputError, match="token"):
            api.label("frank", frank["pair_id"], "A", token=given)
    assert _count(svc, PairAssignment) == leases and _count(svc, PreferenceLabel) == 0  # no lease taken as him
    again = api.next_pair("frank", token=token)
    assert again["token"] is None and again["pair_id"] == frank["pair_id"]  # his lease, handed back
    assert api.label("frank", frank["pair_id"], "A", token=token)["choice"] == "A"


def test_a_name_cannot_be_claimed_twice_in_the_label_tab(fresh_svc):
    visitor, message = label_tab.sign_in(fresh_svc, Visitor(), "Frank", "")
    token = visitor.annotator_token
    assert token and f"`{token}`" in message  # shown once, remembered by the browser
    for given in ("", None, "guess"):
        with pytest.raises(gr.Error, match="the name is taken"):
            label_tab.sign_in(fresh_svc, Visitor(), "frank", "", given)
    back, message = label_tab.sign_in(fresh_svc, Visitor(), "frank", "", token)
    assert back.annotator_id == visitor.annotator_id and token not in message


def test_a_name_from_before_tokens_is_claimed_by_its_next_sign_in(fresh_svc):
    legacy = fresh_svc.labeling.sign_in("olga")  # a row without a token, as every name had before
    annotator_id, token = fresh_svc.labeling.authenticate("olga")
    assert annotator_id == legacy and token
    with pytest.raises(AppInputError, match="the name is taken"):
        fresh_svc.labeling.authenticate("olga")


def test_two_first_sign_ins_with_one_name_give_one_token(fresh_svc):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: _try(fresh_svc, "race"), range(8)))
    assert sum(1 for o in outcomes if isinstance(o, tuple) and o[1]) == 1
    assert all(isinstance(o, AppInputError) for o in outcomes if not isinstance(o, tuple))
    with fresh_svc.events.ReadSession() as s:
        assert s.scalar(select(func.count()).select_from(Annotator).where(Annotator.name == "race")) == 1


def _try(svc, name):
    try:
        return svc.labeling.authenticate(name)
    except AppInputError as exc:
        return exc


def test_oauth_names_keep_their_own_sign_in(fresh_svc):
    """Hugging Face OAuth proves who signs in as "hf:<user>" (the Label tab's LoginButton); the token sign-in
    refuses those names, so nobody can claim one by typing it."""
    assert fresh_svc.labeling.sign_in("hf:someone", reserved_ok=True)
    with pytest.raises(AppInputError, match="reserved"):
        fresh_svc.labeling.authenticate("hf:someone")
    with pytest.raises(AppInputError, match="reserved"):
        ApiHandlers(fresh_svc).label("hf:someone", 1, "A")  # nor label as one through the API


def test_a_token_outlives_a_rebuild_from_the_event_sink(services_factory, tmp_path):
    """The store keeps the token's sha256 and ships it to the sink, so a store rebuilt from it still knows whose
    name is whose."""
    from annotation import restore, sync

    svc = services_factory()
    _, token = svc.labeling.authenticate("zoe")
    sink = str(tmp_path / "sink")
    assert sync.sync_once(svc.events.Session, sink, sync.SyncState()).shipped["annotators"] == 1
    rebuilt = services_factory()
    restore.restore(rebuilt.events.Session, sink)
    assert rebuilt.labeling.authenticate("zoe", token)[1] is None
    with pytest.raises(AppInputError, match="the name is taken"):
        rebuilt.labeling.authenticate("zoe", "guess")
