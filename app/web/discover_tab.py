"""The Discover tab's handlers: pick (or become) a user, a page of cards, like / dislike / open / undo on a card,
more pages, and the covers and captions streaming in. Plain functions (services, visitor state, inputs) ->
(visitor state, outputs), wired by `app.web.ui`; tests call them directly."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr

from app import checks
from app.errors import AppInputError
from app.serving.catalog import SEARCH_HITS
from app.serving.ranking import ModelChoice
from app.serving.services import Services
from app.serving.events import Visit
from app.web.cards import CardView, markdown_escape, render_card, render_detail, render_profile
from app.web.errors import need_user, nothing_to_do, rejected, user_errors
from app.web.routes import cover_url, item_image_url
from app.web.state import PAGE_SIZE, Visitor

log = logging.getLogger("vitrine")


NO_COMPARE = "(no comparison)"
CARD_KINDS = ("like", "dislike", "open", "undo")  # what a card's buttons send


def model_choice(svc: Services, model: str | None, compare_with: str | None) -> ModelChoice:
    """The model dropdowns -> the visitor's `ModelChoice` (one model, or two interleaved)."""
    if not model:
        raise gr.Error("Pick a model.")
    if compare_with and compare_with != NO_COMPARE:
        if compare_with == model:
            raise gr.Error(f"Compare needs two different models; both are {model!r}.")
        return ModelChoice(svc.ranking.parse(model).a, svc.ranking.parse(compare_with).a)
    return svc.ranking.parse(model)


def profile_html(svc: Services, user_id: str, kind: str, liked: Sequence[str]) -> str:
    catalog = svc.catalog
    profile = catalog.profile(user_id, liked)
    return render_profile(user_id, profile.top_genres, profile.liked_titles, catalog.n_ratings(user_id) + len(liked),
                          kind=kind, extra=catalog.profile_facts(user_id))


@user_errors
def suggest_users(svc: Services, typed: object) -> Any:
    """The user picker's suggestions for what was typed so far: up to `SEARCH_HITS` dataset users whose id starts
    with it, the exact id first (`Catalog.suggest_users`); never the whole list of users."""
    if not isinstance(typed, (str, type(None))):
        raise gr.Error(f"user id: expected text, got {type(typed).__name__}")
    return gr.update(choices=_padded(svc.catalog.suggest_users(typed), svc.catalog.suggest_users("")))


@user_errors
def search_items(svc: Services, query: object, chosen: object = None, mode: str = "title") -> Any:
    """An item picker's choices for a search: up to `SEARCH_HITS` matches, then the items already chosen (so they
    keep their labels) by title or by meaning (`Catalog.search_items`); a note (meaning search unavailable)
    comes as an info pop-up. An empty query gives the popular items."""
    if not isinstance(query, (str, type(None))):
        raise gr.Error(f"search: expected text, got {type(query).__name__}")
    kept = [chosen] if isinstance(chosen, str) else [c for c in chosen if isinstance(c, str)] \
        if isinstance(chosen, (list, tuple)) else []
    hits, note = svc.catalog.search_items(query, mode) if query and query.strip() else (svc.catalog.popular_items(), "")
    if note:
        gr.Info(note)
    keep = svc.catalog.item_labels(kept)  # after the matches: Enter takes the first match shown
    ids = {i for _, i in keep}
    hits = _padded(hits, svc.catalog.popular_items(SEARCH_HITS + len(keep)))
    return gr.update(choices=[hit for hit in hits if hit[1] not in ids][:SEARCH_HITS] + keep)


def _padded(found: list[tuple[str, str]], more: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`found`, then entries of `more` not in it, up to SEARCH_HITS. A picker's list keeps one length: Gradio's
    dropdown draws its open list for a moment with the positions of the previous matches, and a shorter list made
    that fail (a page error). The extra entries do not show: the dropdown lists only labels with the typed text."""
    have = {value for _, value in found}
    return (found + [entry for entry in more if entry[1] not in have])[:max(SEARCH_HITS, len(found))]


@user_errors
def select_user(svc: Services, visitor: Visitor, user_id: str | None) -> tuple[Visitor, str]:
    """Switch to an existing user, chosen from the suggestions or typed in full: their profile summary; the slate
    starts over. An unknown id gets one message that says what to do. The picker also sends its value when it
    loses the focus: an empty one, or the user already shown, changes nothing (and nothing is shown)."""
    if user_id is None or (isinstance(user_id, str) and not user_id.strip()):
        raise nothing_to_do("no user id typed")
    if isinstance(user_id, str) and user_id.strip() == visitor.user_id:
        raise nothing_to_do(f"user {visitor.user_id} is already shown")
    try:
        visit = svc.events.visitor(user_id)
    except AppInputError as exc:
        raise gr.Error(f"{exc}. Type a user id from the suggestions, or start as a new user.") from exc
    visitor.reset_user(visit.user_id, visit.kind, liked=list(visit.liked), disliked=list(visit.disliked))
    visitor.seed = checks.new_seed()
    return visitor, profile_html(svc, visit.user_id, visit.kind, visitor.liked)


@user_errors
def start_new_user(svc: Services, visitor: Visitor, picks: Sequence[str] | None,
                   request: Any = None) -> tuple[Visitor, str]:
    """Onboard a new user from at least three liked items (each logged as a like); at most VITRINE_RATE_ONBOARD
    new users per client."""
    picks = list(picks or [])
    if len(set(picks)) < 3:
        raise gr.Error(f"Pick at least 3 items you like (you picked {len(set(picks))}).")
    svc.rates.check(request, "onboard")
    user_id = svc.events.create_new_user(picks)
    visitor.reset_user(user_id, "new", liked=list(dict.fromkeys(picks)))
    visitor.seed = checks.new_seed()
    return visitor, profile_html(svc, user_id, "new", visitor.liked)


def choose_user(svc: Services, visitor: Visitor, user_id: str | None, model: str | None,
                compare_with: str | None = None, request: gr.Request | None = None):
    """The user picker's event: `select_user`, then the first page (`recommend`) -> (visitor, profile, cards, info).
    When the picker only lost the focus (empty, or the user already shown), nothing changes: every output is
    `gr.skip()` and cards is None."""
    try:
        visitor, profile = select_user(svc, visitor, user_id)
    except gr.Error as exc:
        if exc.visible:
            raise
        return gr.skip(), gr.skip(), None, gr.skip()
    visitor, cards, info = recommend(svc, visitor, model, compare_with, request=request)
    return visitor, profile, cards, info


def render_cards(visitor: Visitor) -> list[str]:
    """PAGE_SIZE card HTML strings ('' for an empty slot). An interleaved slate hides which model placed an
    item and its score (scores of two models are not comparable, and knowing the source biases the clicks)."""
    blind = visitor.model_choice is not None and visitor.model_choice.interleaved
    liked, disliked = set(visitor.liked), set(visitor.disliked)
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
            cover_src=cover["src"] if cover else None,
            cover_fallback=bool(cover and cover["fallback"]),
            caption=caption["text"] if caption else None,
            caption_fallback=bool(caption and caption["fallback"]),
            feedback="like" if row["item_id"] in liked else "dislike" if row["item_id"] in disliked else None,
            item_image_src=item_image_url(row["item_id"]) if row.get("image") else None,
        )
        cards.append(render_card(view, position=row.get("position", pos), lead=visitor.card_lead, slot=pos))
    return cards + [""] * (PAGE_SIZE - len(cards))


def _slate_info(visitor: Visitor) -> str:
    choice = visitor.model_choice
    if not visitor.slate or choice is None:
        return "No recommendations left for this user."
    a, b = markdown_escape(choice.a), markdown_escape(choice.b or "")
    how = f"**{a}** vs **{b}**, team-draft interleaved" if choice.interleaved else f"**{a}**"
    user = markdown_escape(visitor.user_id)
    return f"Page {visitor.page + 1} for user {user} from {how} · impression #{visitor.impression_id}"


def visit_of(svc: Services, visitor: Visitor) -> Visit:
    """The visitor as the store knows them now (`EventLog.visitor`: the one rule for their current likes and dislikes,
    whichever tab or endpoint sent them); the state keeps a copy for the cards' marks."""
    visit = svc.events.visitor(need_user(visitor))
    visitor.user_kind, visitor.liked, visitor.disliked = visit.kind, list(visit.liked), list(visit.disliked)
    return visit


def _keep_assets(svc: Services, visitor: Visitor, covers: dict[str, dict], captions: dict[str, dict]) -> None:
    """Copy recorded assets into the visitor's state (what the cards show): a cover by its blob key and the URL
    that serves it (`app.web.routes`), never a path on the server."""
    for item_id, cover in covers.items():
        key = svc.assets.cover_key(cover)
        visitor.covers[item_id] = {"key": key, "src": cover_url(key), "fallback": cover["fallback"],
                                   "asset_id": cover["asset_id"]}
    for item_id, caption in captions.items():
        visitor.captions[item_id] = {"text": caption["text"], "fallback": caption["fallback"],
                                     "asset_id": caption["asset_id"]}


def _show_page(svc: Services, visitor: Visitor, choice: ModelChoice) -> tuple[Visitor, list[str], str]:
    seed = (visitor.seed + visitor.page) % (checks.SEED_MAX + 1)
    visit = visit_of(svc, visitor)
    page = svc.slates.page(visit, choice, PAGE_SIZE, seed=seed, exclude=visitor.shown, tab="discover",
                           context={"page": visitor.page})
    svc.slates.prefetch(visit, page, PAGE_SIZE, exclude=visitor.shown)  # "More" is ready when the visitor pages on
    visitor.model_choice = choice
    visitor.card_lead = svc.settings.card_lead
    visitor.slate = [{**r.to_dict(), "image": svc.catalog.item_image(r.item_id)} for r in page.rows]
    visitor.impression_id = page.impression_id
    visitor.pending = list(page.pending)
    visitor.shown.extend(page.item_ids)
    visitor.opened = None
    _keep_assets(svc, visitor, page.covers, page.captions)
    for item_id, text in page.templates.items():  # until the caption is made (fill_assets replaces it)
        visitor.captions.setdefault(item_id, {"text": text, "fallback": True, "asset_id": None})
    return visitor, render_cards(visitor), _slate_info(visitor)


@user_errors
def recommend(svc: Services, visitor: Visitor, model: str | None, compare_with: str | None = None,
              request: gr.Request | None = None):
    """First page for the current user and model choice."""
    choice = model_choice(svc, model, compare_with)
    need_user(visitor)
    svc.rates.check(request, "slate")
    visitor.shown = []
    visitor.page = 0
    return _show_page(svc, visitor, choice)


@user_errors
def more(svc: Services, visitor: Visitor, request: gr.Request | None = None):
    """The next page: items not shown yet, as a new impression."""
    need_user(visitor)
    if visitor.model_choice is None:
        raise gr.Error("Press Recommend first.")
    svc.rates.check(request, "slate")
    visitor.page += 1
    return _show_page(svc, visitor, visitor.model_choice)


@user_errors
def card_feedback(svc: Services, visitor: Visitor, slot: int, kind: str,
                  request: Any = None) -> tuple[Visitor, list[str], str, str]:
    """Like / dislike / open / undo the card in `slot`, logged with the slate's impression. A disliked card shows as
    removed (with Undo) and never comes back on a later page; a like is folded into the next page's ranking; an
    undo takes the like or dislike back (an event of its own: the store's log is append-only, and the latest of
    an item's like / dislike / undo is its state). At most VITRINE_RATE_FEEDBACK per client."""
    svc.rates.check(request, "feedback")
    user_id = need_user(visitor)
    if kind not in CARD_KINDS:
        raise gr.Error(f"kind must be one of {', '.join(CARD_KINDS)}, got {kind!r}")
    if not 0 <= slot < len(visitor.slate):
        raise gr.Error(f"There is no card in slot {slot + 1} any more; the slate has {len(visitor.slate)} cards.")
    row = visitor.slate[slot]
    item_id = row["item_id"]
    title = markdown_escape(row["title"])
    detail = gr.skip()
    if kind == "undo":
        visit = visit_of(svc, visitor)
        was = "like" if item_id in visit.liked else "dislike" if item_id in visit.disliked else None
        if was is None:
            raise gr.Error(f"There is no like or dislike of {row['title']} to undo.")
        svc.slates.feedback(user_id, item_id, "undo", visitor.impression_id)
        visit_of(svc, visitor)
        info = f"Took back your {was} of **{title}**."
        return visitor, render_cards(visitor), detail, info
    svc.slates.feedback(user_id, item_id, kind, visitor.impression_id)
    if kind == "like":
        visit_of(svc, visitor)
        info = f"Liked **{title}**: your next page takes it into account."
    elif kind == "dislike":
        visit_of(svc, visitor)
        info = f"Removed **{title}**; it will not be recommended to this user again (Undo on its card brings it back)."
    else:  # open
        visitor.opened = item_id
        item = svc.catalog.item(item_id)
        cover = visitor.covers.get(item_id)
        detail = render_detail(row["title"], row.get("year"), row.get("genres") or [], item.get("text") or "",
                               cover["src"] if cover else None,
                               item_image_src=item_image_url(item_id) if row.get("image") else None,
                               lead=svc.settings.card_lead)
        info = f"Opened **{title}**."
    return visitor, render_cards(visitor), detail, info


def card_action(svc: Services, visitor: Visitor, data: object,
                request: Any = None) -> tuple[Visitor, list[str], str, str]:
    """A click on a card's button, as the page sends it: {"action": one of CARD_KINDS, "slot": the card's place}.
    Anything else is refused with a message naming what was wrong."""
    data = data if isinstance(data, dict) else {}
    action, slot = data.get("action"), data.get("slot")
    if action not in CARD_KINDS:
        raise rejected("card_action", gr.Error(f"card action: expected one of {', '.join(CARD_KINDS)}, got "
                                               f"{str(action)[:40]!r}"))
    if isinstance(slot, str) and slot.isdigit():
        slot = int(slot)
    if not isinstance(slot, int) or isinstance(slot, bool) or not 0 <= slot < PAGE_SIZE:
        raise rejected("card_action", gr.Error(f"card slot: expected a whole number from 0 to {PAGE_SIZE - 1}, got "
                                               f"{str(slot)[:40]!r}"))
    return card_feedback(svc, visitor, slot, action, request=request)


FILL_POLL_S = 0.25  # how often the page looks for covers the background worker has made
FILL_MAX_S = 600.0  # the longest the page waits for them (a real model on CPU takes seconds per cover)


def fill_assets(svc: Services, visitor: Visitor, poll_s: float = FILL_POLL_S,
                max_s: float = FILL_MAX_S) -> Iterator[tuple[Visitor, list[str]]]:
    """Show the covers and captions of the slate's pending cards as the background worker makes them, yielding
    after each batch that arrives; ends when none is pending, when the worker dropped the rest, or at `max_s`."""
    on_screen = {r["item_id"] for r in visitor.slate}
    pending = [i for i in visitor.pending if i in on_screen]
    if not visitor.user_id or not pending:
        yield visitor, render_cards(visitor)
        return
    user_id = visitor.user_id
    deadline = time.monotonic() + max_s
    while pending and time.monotonic() < deadline:
        queued = svc.slates.queued(user_id, pending)
        covers, captions, still = svc.assets.made(user_id, pending)
        if len(still) < len(pending):
            _keep_assets(svc, visitor, covers, captions)
            visitor.pending = pending = still
            yield visitor, render_cards(visitor)
        elif not queued:
            break  # the worker is done with them and nothing arrived: it failed (and logged why)
        else:
            time.sleep(poll_s)
    yield visitor, render_cards(visitor)
