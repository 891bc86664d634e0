"""The Label tab's handlers: an annotator signs in (name, password, their token), labels pairs with the keys
1 / 2 / 0 / s, and undoes with u."""

from __future__ import annotations

import logging
import time
from html import escape
from types import MappingProxyType
from typing import Any

import gradio as gr

from app.serving.services import Services
from app.web.cards import markdown_escape, render_pair_side
from app.web.discover_tab import profile_html
from app.web.errors import user_errors
from app.web.guards import password_ok
from app.web.routes import cover_url
from app.web.state import Visitor

log = logging.getLogger("vitrine")


KEY_CHOICES = MappingProxyType({"1": "A", "2": "B", "0": "tie", "s": "skip"})  # read-only


@user_errors
def sign_in(svc: Services, visitor: Visitor, name: str | None, password: str | None, token: str | None = None,
            request: Any = None) -> tuple[Visitor, str]:
    """An annotator signs in by name (and the shared password when VITRINE_LABEL_PASSWORD is set). The first
    sign-in with a name claims it and hands out its secret token; later ones need the token (the browser
    remembers it), so nobody else can label as them."""
    expected = svc.settings.label_password
    if expected is not None and not password_ok(svc, "label", password, expected, request):
        raise gr.Error("Wrong password for labeling.")
    name = (name or "").strip()
    if not name:
        raise gr.Error("Type your name to sign in.")
    annotator_id, new_token = svc.labeling.authenticate(name, token)
    visitor.annotator_id = annotator_id
    visitor.annotator_name = name
    visitor.annotator_token = new_token or token
    visitor.label_ids = []
    visitor.study = None  # signing in by name leaves a study opened by its link
    if new_token:
        return visitor, (f"Signed in as **{markdown_escape(name)}**. This name is yours now: your token is "
                         f"`{new_token}`. This browser remembers it; keep a copy to sign in from another one.")
    return visitor, f"Signed in as **{markdown_escape(name)}**."


def _pair_outputs(svc: Services, visitor: Visitor) -> tuple[Visitor, str, str, str, str]:
    done, remaining = svc.labeling.progress(visitor.annotator_id, visitor.study)
    if visitor.study is not None:  # a study: done of its quota (`app.web.study`)
        progress = f"**{min(done, remaining)}** of **{remaining}** labels"
    else:
        progress = f"**{done}** done · **{remaining}** remaining"
    pair = visitor.pair
    if pair is None and visitor.study is not None:
        return visitor, finished_html(svc, visitor), "", "", progress
    if pair is None:
        empty = ('<div class="vt-muted">Nothing left to label right now. Thank you! New pairs come from the '
                 "Create tab and from <i>Create label pairs</i> on the Status tab.</div>")
        return visitor, empty, "", "", progress
    target = pair.get("target_user_id")
    if target:
        visit = svc.events.visitor(target)
        head = profile_html(svc, visit.user_id, visit.kind, list(visit.liked) if visit.kind == "new" else [])
    else:
        head = '<div class="vt-muted">Generic pair (no target user)</div>'
    if pair.get("item_id"):
        head += f'<p class="vt-muted">{_esc(pair["kind"])} for <b>{_esc(svc.catalog.item_label(pair["item_id"]))}</b></p>'
    a, b = (render_pair_side(key, pair[side]["kind"], cover_url(svc.assets.cover_key(pair[side])), pair[side].get("text"))
            for key, side in (("1", "a"), ("2", "b")))
    return visitor, head, a, b, progress


def _esc(text: str) -> str:
    return escape(text, quote=True)


def _need_annotator(visitor: Visitor) -> int:
    if visitor.annotator_id is None:
        raise gr.Error("Sign in to label.")
    return visitor.annotator_id


@user_errors
def load_pair(svc: Services, visitor: Visitor) -> tuple[Visitor, str, str, str, str]:
    """The annotator's next pair (the same one again after a reload), with the target user's profile."""
    annotator_id = _need_annotator(visitor)
    pair = svc.labeling.next_pair(annotator_id, visitor.study)
    visitor.pair = None if pair is None else {**pair, "shown_at": time.time()}
    return _pair_outputs(svc, visitor)


@user_errors
def label_key(svc: Services, visitor: Visitor, key: str) -> tuple[Visitor, str, str, str, str]:
    """Keys 1 / 2 / 0 / s: A better, B better, tie, skip. Stores the label and shows the next pair."""
    annotator_id = _need_annotator(visitor)
    if key not in KEY_CHOICES:
        raise gr.Error(f"key must be one of {sorted(KEY_CHOICES)}, got {key!r}")
    if visitor.pair is None:
        raise gr.Error("No pair on screen to label.")
    spent = int(max(0.0, time.time() - visitor.pair.get("shown_at", time.time())) * 1000)
    label_id = svc.labeling.record_label(annotator_id, visitor.pair["pair_id"], KEY_CHOICES[key],
                                         time_spent_ms=min(spent, 86_400_000), study=visitor.study)
    visitor.label_ids.append(label_id)
    return load_pair.__wrapped__(svc, visitor)


@user_errors
def undo_label(svc: Services, visitor: Visitor) -> tuple[Visitor, str, str, str, str]:
    """Key u: clear the last label and show its pair again."""
    annotator_id = _need_annotator(visitor)
    pair_id = svc.labeling.undo(annotator_id)
    if pair_id is None:
        gr.Info("Nothing to undo.")
    elif visitor.label_ids:
        visitor.label_ids.pop()
    return load_pair.__wrapped__(svc, visitor)


def study_banner(svc: Services, visitor: Visitor) -> str:
    """The study's name, guidelines and the participant's progress bar ('' outside a study)."""
    study = visitor.study
    if study is None or visitor.annotator_id is None:
        return ""
    done, quota = svc.labeling.progress(visitor.annotator_id, study)
    shown = min(done, quota)
    guidelines = escape(study.guidelines).replace("\n", "<br>") if study.guidelines else ""
    return (f'<div class="vt-study"><b>{escape(study.name)}</b>'
            + (f'<p class="vt-study-guidelines">{guidelines}</p>' if guidelines else "")
            + f'<progress id="vt-study-progress" max="{quota}" value="{shown}"></progress> '
            f'<span class="vt-muted">{shown} of {quota} labels</span></div>')


def finished_html(svc: Services, visitor: Visitor) -> str | None:
    """What the Label tab shows instead of a pair when a study participant has nothing left: the completion code
    once their quota is done, else a note that the study has no pair for them now. None outside a study."""
    study = visitor.study
    if study is None or visitor.annotator_id is None:
        return None
    done, quota = svc.labeling.progress(visitor.annotator_id, study)
    if done >= quota:
        return (f'<div class="vt-done" id="vt-completion">All {quota} labels done. Thank you! Your completion code '
                f'is <b><code id="vt-completion-code">{escape(study.completion_code)}</code></b>.</div>')
    return ('<div class="vt-muted">This study has no pair for you right now: please come back later by the same '
            "link.</div>")
