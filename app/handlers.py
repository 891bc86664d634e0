"""The Gradio handlers, as plain functions: (services, visitor state, inputs) -> (visitor state, outputs).

They hold no state of their own: the loaded world comes in as `svc` (one `Services` per process), the
visitor's state as `visitor` (a `gr.State`), and everything they show is returned. Bad input raises
`gr.Error` with a message that names what was wrong; that is the only way an exception reaches a person.
`app.ui` binds `svc` and wires these to components; tests call them directly.
"""

from __future__ import annotations

import functools
import time
import uuid
from types import MappingProxyType
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gradio as gr

from annotation.errors import AnnotationError
from app.cards import CardView, render_card, render_detail, render_pair_side, render_profile, render_status
from app.errors import AppInputError
from app.services import COMPARE_PREFIX, Services
from app.settings import password_matches
from app.state import PAGE_SIZE, Visitor
from generation.errors import GenerationError
from recommenders.errors import RecommendersError

__all__ = [
    "NO_COMPARE",
    "model_choice",
    "select_user",
    "start_new_user",
    "recommend",
    "more",
    "card_feedback",
    "fill_assets",
    "render_cards",
    "create_variants",
    "pick_variant",
    "sign_in",
    "load_pair",
    "label_key",
    "undo_label",
    "status_html",
    "retrain",
    "make_pairs",
    "KEY_CHOICES",
]

NO_COMPARE = "(no comparison)"
KEY_CHOICES = MappingProxyType({"1": "A", "2": "B", "0": "tie", "s": "skip"})  # read-only
INPUT_ERRORS = (AppInputError, AnnotationError, GenerationError, RecommendersError)


def user_errors(fn: Callable) -> Callable:
    """Turn the input errors of the app and the libraries into `gr.Error` (shown to the person)."""

    if _is_generator(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except INPUT_ERRORS as exc:
                raise gr.Error(str(exc)) from exc

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except INPUT_ERRORS as exc:
            raise gr.Error(str(exc)) from exc

    return wrapper


def _is_generator(fn: Callable) -> bool:
    import inspect

    return inspect.isgeneratorfunction(fn)


def _need_user(visitor: Visitor) -> str:
    if not visitor.user_id:
        raise gr.Error("Pick a user (or start as a new user) first.")
    return visitor.user_id


def _fresh_seed() -> int:
    """A seed for one visitor's coin flips; recorded with every impression, so each slate can be replayed."""
    return uuid.uuid4().int % (2**31)


# --------------------------------------------------------------------------------------------------------
# Discover
# --------------------------------------------------------------------------------------------------------
def model_choice(model: str | None, compare_with: str | None) -> str:
    """The model dropdowns -> 'ease' or 'compare:ease|pop'."""
    if not model:
        raise gr.Error("Pick a model.")
    if compare_with and compare_with != NO_COMPARE:
        if compare_with == model:
            raise gr.Error(f"Compare needs two different models; both are {model!r}.")
        return f"{COMPARE_PREFIX}{model}|{compare_with}"
    return model


def profile_html(svc: Services, user_id: str, kind: str, liked: Sequence[str]) -> str:
    profile = svc.profile(user_id, liked)
    return render_profile(
        user_id,
        profile.top_genres,
        profile.liked_titles,
        svc.n_ratings(user_id) + len(liked),
        kind=kind,
        extra=svc.profile_facts(user_id),
    )


@user_errors
def select_user(svc: Services, visitor: Visitor, user_id: str | None) -> tuple[Visitor, str]:
    """Switch to an existing user: their profile summary; the slate starts over."""
    if not user_id:
        raise gr.Error("Pick a user id from the list.")
    kind = svc.user_kind(user_id)
    liked, disliked = svc.app_likes(user_id)
    visitor.reset_user(user_id, kind, liked=list(reversed(liked)))
    visitor.disliked = disliked
    visitor.seed = _fresh_seed()
    return visitor, profile_html(svc, user_id, kind, visitor.liked)


@user_errors
def start_new_user(svc: Services, visitor: Visitor, picks: Sequence[str] | None) -> tuple[Visitor, str]:
    """Onboard a new user from at least three liked items (each logged as a like)."""
    picks = list(picks or [])
    if len(set(picks)) < 3:
        raise gr.Error(f"Pick at least 3 items you like (you picked {len(set(picks))}).")
    user_id = svc.create_new_user(picks)
    visitor.reset_user(user_id, "new", liked=list(dict.fromkeys(picks)))
    visitor.seed = _fresh_seed()
    return visitor, profile_html(svc, user_id, "new", visitor.liked)


def render_cards(visitor: Visitor) -> list[str]:
    """PAGE_SIZE card HTML strings ('' for an empty slot). An interleaved slate hides which model placed an
    item and its score (scores of two models are not comparable, and knowing the source biases the clicks)."""
    blind = visitor.model_choice.startswith(COMPARE_PREFIX)
    cards = []
    for pos, row in enumerate(visitor.slate[:PAGE_SIZE]):
        cover = visitor.covers.get(row["item_id"])
        caption = visitor.captions.get(row["item_id"])
        view = CardView(
            item_id=row["item_id"],
            title=row["title"],
            year=row.get("year"),
            genres=row.get("genres") or [],
            score=None if blind else row.get("score"),
            why=row.get("why") or "",
            model="" if blind else row.get("contributor") or "",
            cover_path=cover["path"] if cover else None,
            cover_fallback=bool(cover and cover["fallback"]),
            caption=caption["text"] if caption else None,
            caption_fallback=bool(caption and caption["fallback"]),
            feedback="like" if row["item_id"] in visitor.liked else None,
        )
        cards.append(render_card(view, position=row.get("position", pos)))
    return cards + [""] * (PAGE_SIZE - len(cards))


def _slate_info(visitor: Visitor) -> str:
    a_b = visitor.model_choice.removeprefix(COMPARE_PREFIX).split("|")
    how = f"**{a_b[0]}** vs **{a_b[1]}**, team-draft interleaved" if len(a_b) == 2 else f"**{a_b[0]}**"
    return (
        f"Page {visitor.page + 1} for user `{visitor.user_id}` from {how} · impression #{visitor.impression_id}"
        if visitor.slate
        else "No recommendations left for this user."
    )


def _show_page(svc: Services, visitor: Visitor, choice: str) -> tuple[Visitor, list[str], str]:
    user_id = _need_user(visitor)
    seed = (visitor.seed + visitor.page) % (2**31)
    with svc.interactive():
        rows = svc.recommend(
            user_id, choice, PAGE_SIZE, liked=visitor.liked, exclude=[*visitor.shown, *visitor.disliked], seed=seed
        )
        if not rows:
            visitor.slate = []
            return visitor, render_cards(visitor), _slate_info(visitor)
        visitor.impression_id = svc.record_impression(
            user_id, rows, choice, context={"tab": "discover", "page": visitor.page, "seed": seed}
        )
    visitor.model_choice = choice
    visitor.slate = [r.to_dict() for r in rows]
    visitor.shown.extend(r.item_id for r in rows)
    visitor.opened = None
    return visitor, render_cards(visitor), _slate_info(visitor)


@user_errors
def recommend(svc: Services, visitor: Visitor, model: str | None, compare_with: str | None = None):
    """First page for the current user and model choice."""
    choice = model_choice(model, compare_with)
    visitor.shown = []
    visitor.page = 0
    return _show_page(svc, visitor, choice)


@user_errors
def more(svc: Services, visitor: Visitor):
    """The next page: items not shown yet, as a new impression."""
    _need_user(visitor)
    if not visitor.model_choice:
        raise gr.Error("Press Recommend first.")
    visitor.page += 1
    return _show_page(svc, visitor, visitor.model_choice)


@user_errors
def card_feedback(svc: Services, visitor: Visitor, slot: int, kind: str) -> tuple[Visitor, list[str], str, str]:
    """Like / dislike / open the card in `slot`, logged with the slate's impression. A disliked card leaves."""
    user_id = _need_user(visitor)
    if not 0 <= slot < len(visitor.slate):
        raise gr.Error(f"There is no card in slot {slot + 1} any more; the slate has {len(visitor.slate)} cards.")
    row = visitor.slate[slot]
    item_id = row["item_id"]
    with svc.interactive():
        svc.record_feedback(user_id, item_id, kind, visitor.impression_id)
    detail = gr.skip()
    if kind == "like":
        if item_id not in visitor.liked:
            visitor.liked.append(item_id)
        if item_id in visitor.disliked:
            visitor.disliked.remove(item_id)
        info = f"Liked **{_esc(row['title'])}**: your next page takes it into account."
    elif kind == "dislike":
        visitor.slate.pop(slot)
        if item_id not in visitor.disliked:
            visitor.disliked.append(item_id)
        if item_id in visitor.liked:
            visitor.liked.remove(item_id)
        info = f"Removed **{_esc(row['title'])}**; it will not be recommended again in this session."
    elif kind == "open":
        visitor.opened = item_id
        item = svc.item(item_id)
        cover = visitor.covers.get(item_id)
        detail = render_detail(row["title"], row.get("year"), row.get("genres") or [], item.get("text") or "",
                               cover["path"] if cover else None)
        info = f"Opened **{_esc(row['title'])}**."
    else:
        raise gr.Error(f"kind must be like, dislike or open, got {kind!r}")
    return visitor, render_cards(visitor), detail, info


def fill_assets(svc: Services, visitor: Visitor) -> Iterator[tuple[Visitor, list[str]]]:
    """Generate the personalized cover and caption of each card on the slate, yielding after each card,
    so the page shows covers as they arrive and never waits for all of them."""
    if not visitor.user_id or not visitor.slate:
        yield visitor, render_cards(visitor)
        return
    try:
        profile = svc.profile(visitor.user_id, visitor.liked)
        for row in list(visitor.slate):
            item_id = row["item_id"]
            changed = False
            if item_id not in visitor.covers:
                cover = svc.covers_for(item_id, profile, seed=0)[0]
                visitor.covers[item_id] = {"path": cover["path"], "fallback": cover["fallback"],
                                           "asset_id": cover["asset_id"]}
                changed = True
            if item_id not in visitor.captions:
                caption = svc.caption_for(item_id, profile)
                visitor.captions[item_id] = {"text": caption["text"], "fallback": caption["fallback"],
                                             "asset_id": caption["asset_id"]}
                changed = True
            if changed:
                yield visitor, render_cards(visitor)
    except INPUT_ERRORS as exc:
        raise gr.Error(str(exc)) from exc
    yield visitor, render_cards(visitor)


# --------------------------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------------------------
@user_errors
def create_variants(
    svc: Services, visitor: Visitor, item_id: str | None, n: int, progress: Callable | None = None
) -> tuple[Visitor, list[tuple[str, str]], str, str]:
    """N cover variants (personalized and generic mixed, shuffled) and a caption for the current user."""
    user_id = _need_user(visitor)
    if not item_id:
        raise gr.Error("Pick an item to make covers for.")
    seed = _fresh_seed()

    def on_step(done: int, total: int) -> None:
        if progress is not None:
            progress(done / max(total, 1), desc=f"cover {min(done + 1, total)} of {total}")

    variants = svc.create_variants(user_id, item_id, n, liked=visitor.liked, seed=seed, callback=on_step)
    if progress is not None:
        progress(1.0, desc="writing the caption")
    caption = svc.caption_for(item_id, svc.profile(user_id, visitor.liked))
    visitor.create_item = item_id
    visitor.variants = [
        {"asset_id": v["asset_id"], "path": v["path"], "personalized": v["personalized"], "seed": v["seed"]}
        for v in variants
    ]
    visitor.picked = None
    gallery = [(v["path"], f"#{i + 1}") for i, v in enumerate(variants)]
    flag = " *(template fallback)*" if caption["fallback"] else ""
    info = (f"{len(variants)} variants of **{_esc(svc.item_label(item_id))}** for user `{user_id}`. "
            "Click the one you like best, then *Save my pick*.")
    return visitor, gallery, f"> {caption['text']}{flag}", info


@user_errors
def pick_variant(svc: Services, visitor: Visitor, index: int | None) -> tuple[Visitor, str]:
    """Log the picked variant as preferred over every other one (preference labels)."""
    user_id = _need_user(visitor)
    if not visitor.variants:
        raise gr.Error("Generate variants first.")
    if index is None or not 0 <= int(index) < len(visitor.variants):
        raise gr.Error(f"Click one of the {len(visitor.variants)} variants first.")
    index = int(index)
    pairs = svc.record_pick(user_id, visitor.variants, index)
    visitor.picked = index
    kind = "personalized" if visitor.variants[index]["personalized"] else "generic"
    return visitor, f"Saved: #{index + 1} preferred over {len(pairs)} others. It was a **{kind}** cover."


# --------------------------------------------------------------------------------------------------------
# Label
# --------------------------------------------------------------------------------------------------------
@user_errors
def sign_in(svc: Services, visitor: Visitor, name: str | None, password: str | None) -> tuple[Visitor, str]:
    """An annotator signs in by name (and the shared password when VITRINE_LABEL_PASSWORD is set)."""
    expected = svc.settings.label_password
    if expected is not None and not password_matches(password, expected):
        raise gr.Error("Wrong password for labeling.")
    name = (name or "").strip()
    if not name:
        raise gr.Error("Type your name to sign in.")
    visitor.annotator_id = svc.sign_in(name)
    visitor.annotator_name = name
    visitor.label_ids = []
    return visitor, f"Signed in as **{_esc(name)}**."


def _pair_outputs(svc: Services, visitor: Visitor) -> tuple[Visitor, str, str, str, str]:
    done, remaining = svc.label_progress(visitor.annotator_id)
    progress = f"**{done}** done · **{remaining}** remaining"
    pair = visitor.pair
    if pair is None:
        empty = ('<div class="vt-muted">Nothing left to label right now. Thank you! New pairs come from the '
                 "Create tab and from <i>Create label pairs</i> on the Status tab.</div>")
        return visitor, empty, "", "", progress
    target = pair.get("target_user_id")
    if target:
        kind = svc.user_kind(target)
        head = profile_html(svc, target, kind, svc.app_likes(target)[0] if kind == "new" else [])
    else:
        head = '<div class="vt-muted">Generic pair (no target user)</div>'
    if pair.get("item_id"):
        head += f'<p class="vt-muted">{pair["kind"]} for <b>{_esc(svc.item_label(pair["item_id"]))}</b></p>'
    a = render_pair_side("1", pair["a"]["kind"], pair["a"].get("path"), pair["a"].get("text"))
    b = render_pair_side("2", pair["b"]["kind"], pair["b"].get("path"), pair["b"].get("text"))
    return visitor, head, a, b, progress


def _esc(text: str) -> str:
    from html import escape

    return escape(text, quote=True)


def _need_annotator(visitor: Visitor) -> int:
    if visitor.annotator_id is None:
        raise gr.Error("Sign in to label.")
    return visitor.annotator_id


@user_errors
def load_pair(svc: Services, visitor: Visitor) -> tuple[Visitor, str, str, str, str]:
    """The annotator's next pair (the same one again after a reload), with the target user's profile."""
    annotator_id = _need_annotator(visitor)
    pair = svc.next_pair(annotator_id)
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
    label_id = svc.record_label(annotator_id, visitor.pair["pair_id"], KEY_CHOICES[key],
                                time_spent_ms=min(spent, 86_400_000))
    visitor.label_ids.append(label_id)
    return load_pair.__wrapped__(svc, visitor)


@user_errors
def undo_label(svc: Services, visitor: Visitor) -> tuple[Visitor, str, str, str, str]:
    """Key u: clear the last label and show its pair again."""
    annotator_id = _need_annotator(visitor)
    pair_id = svc.undo_label(annotator_id)
    if pair_id is None:
        gr.Info("Nothing to undo.")
    elif visitor.label_ids:
        visitor.label_ids.pop()
    return load_pair.__wrapped__(svc, visitor)


# --------------------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------------------
def status_html(svc: Services) -> str:
    return render_status(svc.status_sections())


def check_admin(svc: Services, password: object) -> None:
    """The Status tab's actions (retrain, create label pairs) cost minutes of CPU and change what everyone
    sees: they need VITRINE_ADMIN_PASSWORD when it is set; without it they are open only while the app is
    bound to this machine (`make demo`), and closed on a public address (a Space)."""
    expected = svc.settings.admin_password
    if expected is None:
        if not svc.settings.serves_locally:
            raise gr.Error("Admin actions are off on a public address: set VITRINE_ADMIN_PASSWORD to enable them.")
        return
    if not password_matches(password, expected):
        raise gr.Error("admin password: expected the admin password (VITRINE_ADMIN_PASSWORD), got a wrong one")


@user_errors
def retrain(svc: Services, model: str | None, password: str | None = None) -> tuple[str, str]:
    """Retrain a served model on the dataset plus the logged feedback (an admin action: `check_admin`)."""
    check_admin(svc, password)
    if not model:
        raise gr.Error("Pick a model to retrain.")
    result = svc.retrain(model)
    msg = f"Retrained **{result['model']}** with {result['extra_interactions']} logged interactions in {result['seconds']} s."
    return msg, status_html(svc)


@user_errors
def make_pairs(svc: Services, n: int, password: str | None = None) -> tuple[str, str]:
    """Fill the labeling queue with personalized-vs-generic cover and caption pairs (an admin action)."""
    check_admin(svc, password)
    created = svc.make_label_pairs(n, seed=_fresh_seed())
    return f"Created {created} pairs for labeling.", status_html(svc)
