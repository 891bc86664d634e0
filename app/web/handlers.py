"""The Gradio handlers, as plain functions: (services, visitor state, inputs) -> (visitor state, outputs).

They hold no state of their own: the loaded world comes in as `svc` (one `Services` per process), the
visitor's state as `visitor` (a `gr.State`), and everything they show is returned. Bad input raises
`gr.Error` with a message that names what was wrong; that is the only way an exception reaches a person.
`app.web.ui` binds `svc` and wires these to components; tests call them directly.
"""

from __future__ import annotations

import functools
import logging
import time
from types import MappingProxyType
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gradio as gr

from annotation.errors import AnnotationError
from app import checks
from app.web.cards import CardView, markdown_escape, render_card, render_detail, render_pair_side, render_profile, render_status
from app.errors import AppInputError
from app.serving.ranking import ModelChoice
from app.web.routes import cover_url, item_image_url
from app.serving.services import Services
from app.serving.slates import Page, Visit  # noqa: F401 - Page: the type handlers adapt
from app.web.guards import client_key, rejections
from app.web.state import PAGE_SIZE, Visitor
from app.web.status import status_sections
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
CARD_KINDS = ("like", "dislike", "open")  # what a card's buttons send
PREFERENCE_MODEL = "preference model"  # the Retrain choice that trains the reward model from labels and picks
log = logging.getLogger("vitrine")
KEY_CHOICES = MappingProxyType({"1": "A", "2": "B", "0": "tie", "s": "skip"})  # read-only
INPUT_ERRORS = (AppInputError, AnnotationError, GenerationError, RecommendersError)


def shown_text(message: str) -> str:
    """`message` as text in Gradio's error pop-up, which renders HTML: `<`, `>` and `&` escaped, so that a message
    quoting what a client sent (`got '<img src=...>'`) shows it instead of loading it."""
    import html

    return html.escape(message, quote=False)


def rejected(fn_name: str, exc: Exception) -> gr.Error:
    """The `gr.Error` a person sees for bad input, logged as one line at a bounded rate (`app.web.guards.rejections`;
    no traceback: Gradio prints one for every `gr.Error` unless told not to, and a probe of bad requests would flood
    the log), the message truncated there."""
    message = str(exc.message if isinstance(exc, gr.Error) else exc)
    rejections.note(f"{fn_name}: {message}")
    error = exc if isinstance(exc, gr.Error) else gr.Error(message)
    error.message = shown_text(message)  # Gradio's pop-up renders a message as HTML, and messages quote input
    error.print_exception = False
    return error


def user_errors(fn: Callable) -> Callable:
    """Turn the input errors of the app and the libraries into `gr.Error` (shown to the person), one log line each."""

    if _is_generator(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except (gr.Error, *INPUT_ERRORS) as exc:
                raise rejected(fn.__name__, exc) from (None if isinstance(exc, gr.Error) else exc)

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (gr.Error, *INPUT_ERRORS) as exc:
            raise rejected(fn.__name__, exc) from (None if isinstance(exc, gr.Error) else exc)

    return wrapper


def _is_generator(fn: Callable) -> bool:
    import inspect

    return inspect.isgeneratorfunction(fn)


def _need_user(visitor: Visitor) -> str:
    if not visitor.user_id:
        raise gr.Error("Pick a user (or start as a new user) first.")
    return visitor.user_id


# --------------------------------------------------------------------------------------------------------
# Discover
# --------------------------------------------------------------------------------------------------------
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
def select_user(svc: Services, visitor: Visitor, user_id: str | None) -> tuple[Visitor, str]:
    """Switch to an existing user: their profile summary; the slate starts over."""
    if not user_id:
        raise gr.Error("Pick a user id from the list.")
    visit = svc.slates.visit(user_id)
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


def render_cards(visitor: Visitor) -> list[str]:
    """PAGE_SIZE card HTML strings ('' for an empty slot). An interleaved slate hides which model placed an
    item and its score (scores of two models are not comparable, and knowing the source biases the clicks)."""
    blind = visitor.model_choice is not None and visitor.model_choice.interleaved
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
            feedback="like" if row["item_id"] in visitor.liked else None,
            item_image_src=item_image_url(row["item_id"]) if row.get("image") else None,
        )
        cards.append(render_card(view, position=row.get("position", pos), lead=visitor.card_lead))
    return cards + [""] * (PAGE_SIZE - len(cards))


def _slate_info(visitor: Visitor) -> str:
    choice = visitor.model_choice
    if not visitor.slate or choice is None:
        return "No recommendations left for this user."
    a, b = markdown_escape(choice.a), markdown_escape(choice.b or "")
    how = f"**{a}** vs **{b}**, team-draft interleaved" if choice.interleaved else f"**{a}**"
    user = markdown_escape(visitor.user_id)
    return f"Page {visitor.page + 1} for user {user} from {how} · impression #{visitor.impression_id}"


def _visit(svc: Services, visitor: Visitor) -> Visit:
    """The visitor as the store knows them now (`Slates.visit`: the one rule for their current likes and dislikes,
    whichever tab or endpoint sent them); the state keeps a copy for the cards' marks."""
    visit = svc.slates.visit(_need_user(visitor))
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
    page = svc.slates.page(_visit(svc, visitor), choice, PAGE_SIZE, seed=seed, exclude=visitor.shown, tab="discover",
                           context={"page": visitor.page}, prefetch=True)
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
    _need_user(visitor)
    svc.rates.check(request, "slate")
    visitor.shown = []
    visitor.page = 0
    return _show_page(svc, visitor, choice)


@user_errors
def more(svc: Services, visitor: Visitor, request: gr.Request | None = None):
    """The next page: items not shown yet, as a new impression."""
    _need_user(visitor)
    if visitor.model_choice is None:
        raise gr.Error("Press Recommend first.")
    svc.rates.check(request, "slate")
    visitor.page += 1
    return _show_page(svc, visitor, visitor.model_choice)


@user_errors
def card_feedback(svc: Services, visitor: Visitor, slot: int, kind: str,
                  request: Any = None) -> tuple[Visitor, list[str], str, str]:
    """Like / dislike / open the card in `slot`, logged with the slate's impression. A disliked card leaves and
    never comes back; a like is folded into the next page's ranking. At most VITRINE_RATE_FEEDBACK per client."""
    svc.rates.check(request, "feedback")
    user_id = _need_user(visitor)
    if kind not in CARD_KINDS:
        raise gr.Error(f"kind must be one of {', '.join(CARD_KINDS)}, got {kind!r}")
    if not 0 <= slot < len(visitor.slate):
        raise gr.Error(f"There is no card in slot {slot + 1} any more; the slate has {len(visitor.slate)} cards.")
    row = visitor.slate[slot]
    item_id = row["item_id"]
    svc.slates.feedback(user_id, item_id, kind, visitor.impression_id)
    detail = gr.skip()
    title = markdown_escape(row["title"])
    if kind == "like":
        _visit(svc, visitor)
        info = f"Liked **{title}**: your next page takes it into account."
    elif kind == "dislike":
        _visit(svc, visitor)
        visitor.slate.pop(slot)
        info = f"Removed **{title}**; it will not be recommended to this user again."
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
        covers, captions, still = svc.slates.made(user_id, pending)
        if len(still) < len(pending):
            _keep_assets(svc, visitor, covers, captions)
            visitor.pending = pending = still
            yield visitor, render_cards(visitor)
        elif not queued:
            break  # the worker is done with them and nothing arrived: it failed (and logged why)
        else:
            time.sleep(poll_s)
    yield visitor, render_cards(visitor)


# --------------------------------------------------------------------------------------------------------
# Create
# --------------------------------------------------------------------------------------------------------
@user_errors
def create_variants(
    svc: Services, visitor: Visitor, item_id: str | None, n: int, progress: Callable | None = None,
    request: gr.Request | None = None,
) -> tuple[Visitor, list[tuple[str, str]], str, str]:
    """N cover variants (personalized and generic mixed, shuffled) and a caption for the current user."""
    user_id = _need_user(visitor)
    if not item_id:
        raise gr.Error("Pick an item to make covers for.")
    svc.rates.check(request, "generate")
    seed = checks.new_seed()

    def on_step(done: int, total: int) -> None:
        if progress is not None:
            progress(done / max(total, 1), desc=f"cover {min(done + 1, total)} of {total}")

    learner = svc.assets.learner
    profile = svc.catalog.profile(user_id, _visit(svc, visitor).liked, preferred_prompts=(
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
    user_id = _need_user(visitor)
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


# --------------------------------------------------------------------------------------------------------
# Label
# --------------------------------------------------------------------------------------------------------
def public_root(svc: Services, request: Any) -> str | None:
    """The app's root URL for this request, without a trailing slash: VITRINE_PUBLIC_URL when set, else what
    Gradio builds from the request (the address it came to); None without a request."""
    if svc.settings.public_url:
        return svc.settings.public_url
    raw = getattr(request, "request", None) if request is not None else None
    if raw is None:
        return None
    from gradio import route_utils

    try:
        route = route_utils.get_api_call_path(raw)
    except ValueError:  # not an event's request
        return None
    return route_utils.get_root_url(request=raw, route_path=route, root_path=raw.scope.get("root_path") or None)


def password_ok(svc: Services, target: str, given: object, expected: str, request: Any = None) -> bool:
    """`given` is `expected`, checked through the services' `PasswordGuard` (throttled per client and per target,
    logged): `AppInputError` when this client, or everyone, guessed wrong too often at `target` lately."""
    return svc.passwords.check(target, given, expected, client_key(request, svc.settings.trust_proxy))


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
    if new_token:
        return visitor, (f"Signed in as **{markdown_escape(name)}**. This name is yours now: your token is "
                         f"`{new_token}`. This browser remembers it; keep a copy to sign in from another one.")
    return visitor, f"Signed in as **{markdown_escape(name)}**."


def _pair_outputs(svc: Services, visitor: Visitor) -> tuple[Visitor, str, str, str, str]:
    done, remaining = svc.labeling.progress(visitor.annotator_id)
    progress = f"**{done}** done · **{remaining}** remaining"
    pair = visitor.pair
    if pair is None:
        empty = ('<div class="vt-muted">Nothing left to label right now. Thank you! New pairs come from the '
                 "Create tab and from <i>Create label pairs</i> on the Status tab.</div>")
        return visitor, empty, "", "", progress
    target = pair.get("target_user_id")
    if target:
        kind = svc.events.user_kind(target)
        head = profile_html(svc, target, kind, svc.events.visitor_feedback(target)[0] if kind == "new" else [])
    else:
        head = '<div class="vt-muted">Generic pair (no target user)</div>'
    if pair.get("item_id"):
        head += f'<p class="vt-muted">{_esc(pair["kind"])} for <b>{_esc(svc.catalog.item_label(pair["item_id"]))}</b></p>'
    a, b = (render_pair_side(key, pair[side]["kind"], cover_url(svc.assets.cover_key(pair[side])), pair[side].get("text"))
            for key, side in (("1", "a"), ("2", "b")))
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
    pair = svc.labeling.next_pair(annotator_id)
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
                                time_spent_ms=min(spent, 86_400_000))
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


# --------------------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------------------
def status_html(svc: Services) -> str:
    return render_status(status_sections(svc))


def check_admin(svc: Services, password: object, request: Any = None) -> None:
    """The Status tab's actions (retrain, create label pairs) cost minutes of CPU and change what everyone
    sees. They need VITRINE_ADMIN_PASSWORD, or the explicit opt-in VITRINE_ADMIN_OPEN=1 (which `make demo` sets);
    anything else is refused. The bind address proves nothing: behind a proxy a loopback-bound app is public."""
    expected = svc.settings.admin_password
    if expected is None:
        if not svc.settings.admin_open:
            raise gr.Error("Admin actions are off: set VITRINE_ADMIN_PASSWORD to enable them with a password, or "
                           "VITRINE_ADMIN_OPEN=1 on a private machine.")
        return
    if not password_ok(svc, "admin", password, expected, request):
        raise gr.Error("admin password: expected the admin password (VITRINE_ADMIN_PASSWORD), got a wrong one")


@user_errors
def retrain(svc: Services, model: str | None, password: str | None = None, request: Any = None) -> tuple[str, str]:
    """Retrain a served model on the dataset plus the logged feedback (an admin action: `check_admin`)."""
    check_admin(svc, password, request)
    if not model:
        raise gr.Error("Pick a model to retrain.")
    if model == PREFERENCE_MODEL:
        trained = svc.train_preference()
        accuracy = trained["metrics"].get("heldout_accuracy", float("nan"))
        verdict = ("promoted: it now ranks the best-of-N candidates" if trained["promoted"]
                   else "rejected by the gate; the served version stays")
        return (f"Trained the preference model, version {trained['version']}, in {trained['seconds']} s: held-out "
                f"pair accuracy {accuracy:.3f}; {verdict}. {markdown_escape(trained['reason'])}"), status_html(svc)
    result = svc.retrain(model)
    verdict = "promoted and served" if result.promoted else "rejected by the gate; the served version stays"
    msg = (f"Retrained **{markdown_escape(result.name)}** version {result.version} on the logs up to event "
           f"{result.watermark or 0} in {result.seconds.get('total', 0):.1f} s: {verdict}. "
           f"{markdown_escape(result.reason)}")
    return msg, status_html(svc)


@user_errors
def add_items(svc: Services, folder: str | None, password: str | None = None, request: Any = None) -> tuple[str, str]:
    """Grow the catalog from a folder on the server (an admin action): the new items are served at once, ranked
    by the content models now and by the ID models after their next retrain (`app.serving.growth`)."""
    check_admin(svc, password, request)
    if svc.growth is None:
        raise gr.Error("This app does not follow its catalog; restart it to serve new items.")
    done = svc.growth.add_items(folder)
    added = done.get("added", [])
    msg = (f"Added {len(added)} items; the catalog has {done.get('items', len(svc.catalog.item_ids))}. Ranking them "
           f"now: {', '.join(done.get('ranked_now', [])) or 'no content model'}; at the next retrain: "
           f"{', '.join(done.get('at_next_retrain', [])) or 'none'}.")
    return msg, status_html(svc)  # counts and model names only: nothing a visitor wrote


def item_pickers(svc: Services, built_on: int) -> list[Any]:
    """At a page's load: the item pickers' choices again when the catalog grew after the page was built."""
    if svc.catalog.version == built_on:
        return [gr.skip(), gr.skip()]
    return [gr.update(choices=svc.catalog.item_choices())] * 2


@user_errors
def make_pairs(svc: Services, n: int, password: str | None = None, request: Any = None) -> tuple[str, str]:
    """Fill the labeling queue with personalized-vs-generic cover and caption pairs (an admin action)."""
    check_admin(svc, password, request)
    created = svc.labeling.make_pairs(n, seed=checks.new_seed())
    return f"Created {created} pairs for labeling.", status_html(svc)
