"""The Create tab's handlers: cover variants for the current user (personalized and generic, on trial) and the
pick that stores them as preference labels."""

from __future__ import annotations

import logging
from collections.abc import Callable

import gradio as gr

from app import checks
from app.serving.services import Services
from app.web.cards import markdown_escape
from app.web.discover_tab import visit_of
from app.web.errors import need_user, user_errors
from app.web.routes import public_root, cover_url
from app.web.state import Visitor

log = logging.getLogger("vitrine")


@user_errors
def create_variants(
    svc: Services, visitor: Visitor, item_id: str | None, n: int, progress: Callable | None = None,
    request: gr.Request | None = None,
) -> tuple[Visitor, list[tuple[str, str]], str, str]:
    """N cover variants (personalized and generic mixed, shuffled) and a caption for the current user."""
    user_id = need_user(visitor)
    if not item_id:
        raise gr.Error("Pick an item to make covers for.")
    svc.rates.check(request, "generate")
    seed = checks.new_seed()

    def on_step(done: int, total: int) -> None:
        if progress is not None:
            progress(done / max(total, 1), desc=f"cover {min(done + 1, total)} of {total}")

    learner = svc.assets.learner
    profile = svc.catalog.profile(user_id, visit_of(svc, visitor).liked, preferred_prompts=(
        learner.preferred_prompts(user_id) if learner is not None else ()))
    variants = svc.assets.variants.create(profile, item_id, n, seed=seed, callback=on_step)
    if progress is not None:
        progress(1.0, desc="writing the caption")
    caption = svc.assets.caption_for(item_id, profile)
    visitor.variants = [dict(v) for v in variants]  # on trial: a pick stores them (`Assets.keep`)
    visitor.picked = None
    root = public_root(svc, request)
    # by URL (the cover route serves variants on trial), so that no server path reaches the page: a local file
    # would be copied into Gradio's temp dir and named by its path there; without a request (a test, a bench),
    # the file itself
    gallery = [(f"{root}/{cover_url(svc.assets.cover_key(v))}" if root else svc.assets.file(v["path"]), f"#{i + 1}")
               for i, v in enumerate(variants)]
    flag = " *(template fallback)*" if caption["fallback"] else ""
    info = (f"{len(variants)} variants of **{markdown_escape(svc.catalog.item_label(item_id))}** for user "
            f"{markdown_escape(user_id)}. "
            "Click the one you like best, then *Save my pick*.")
    return visitor, gallery, f"> {markdown_escape(caption['text'])}{flag}", info


@user_errors
def pick_variant(svc: Services, visitor: Visitor, index: int | None) -> tuple[Visitor, str]:
    """Log the picked variant as preferred over every other one (preference labels); the variants, made on trial,
    are stored now."""
    user_id = need_user(visitor)
    if not visitor.variants:
        raise gr.Error("Generate variants first.")
    if index is None or not 0 <= int(index) < len(visitor.variants):
        raise gr.Error(f"Click one of the {len(visitor.variants)} variants first.")
    index = int(index)
    visitor.variants = svc.assets.variants.keep(visitor.variants)  # stored now that they are labelled
    pairs = svc.labeling.record_pick(user_id, visitor.variants, index)
    visitor.picked = index
    kind = "personalized" if visitor.variants[index]["personalized"] else "generic"
    return visitor, f"Saved: #{index + 1} preferred over {len(pairs)} others. It was a **{kind}** cover."
