"""The named API endpoints, for `gradio_client`: /recommend, /feedback, /generate_covers, /generate_caption,
/next_pair, /label; and /health, the cheapest event through Gradio's queue (`scripts/healthcheck.py`).

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    slate = client.predict("196", "ease", 10, api_name="/recommend")
    client.predict("196", slate["items"][0]["item_id"], "like", slate["impression_id"], api_name="/feedback")

Each endpoint is a typed function registered with `gr.api` (its schema comes from the type hints, which is
why this module does not use `from __future__ import annotations`). Each validates its inputs and answers a
bad request with a `gr.Error` naming the argument, what was expected and what was received.

Covers come as a blob key (`cover_key`, `covers/ab/<sha256>.jpg`, the same on every replica) and a URL relative to
the app's root (`cover_url`), served by `app.web.routes.cover_route` from the blob store: never a path on the server.

    image = httpx.get(urljoin("http://127.0.0.1:7860/", item["cover_url"])).content
"""

import gradio as gr

from app import checks
from app.errors import bad
from app.web.errors import user_errors
from app.web.guards import password_ok
from app.web.label_tab import KEY_CHOICES
from app.web.routes import cover_url
from app.serving.services import Services
from app.serving.events import Visit
from app.serving.slates import Page

__all__ = ["register_api", "ApiHandlers"]



class ApiHandlers:
    """The endpoint functions, bound to one `Services`. Plain methods: tests call them directly."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def _visit(self, user_id: object) -> Visit:
        return self.svc.events.visitor(user_id)

    def _check_password(self, password: object, request: gr.Request = None) -> None:
        expected = self.svc.settings.label_password
        if expected is not None and not password_ok(self.svc, "label", password, expected, request):
            raise gr.Error("password: expected the labeling password (VITRINE_LABEL_PASSWORD), got a wrong one")

    def _annotator(self, annotator: object, password: object, token: object,
                   request: gr.Request = None) -> tuple[int, str | None]:
        self._check_password(password, request)
        return self.svc.labeling.authenticate(checks.text("annotator", annotator, 80), token)

    def recommend(self, user_id: str, model: str = "", k: int = 10, wait: bool = False,
                  request: gr.Request = None) -> dict:
        """A slate for `user_id` from `model` ('' = the default; 'compare:a|b' interleaves two models):
        {"impression_id", "user_id", "model", "pending", "items": [{"item_id", "title", "year", "genres",
        "score", "contributor", "why", "cover_key", "cover_url", "cover_fallback", "caption", "caption_fallback",
        "pending"}]}. The visitor's likes are folded in and their dislikes never come back. Covers and captions
        already made for this user come at once; the others are generated in the background (`pending: true`,
        cover and caption None) and are there on the next call. `wait=True` makes them before answering instead (slow with
        real models)."""
        svc = self.svc
        svc.rates.check(request, "slate")
        visit = self._visit(user_id)
        choice = svc.ranking.parse(model)
        k = checks.integer("k", k, 1, checks.K_MAX)
        wait = checks.flag("wait", wait)
        page = svc.slates.page(visit, choice, k, seed=checks.new_seed(), tab="api", wait=wait)
        if not page.rows:
            raise gr.Error(f"user_id {visit.user_id!r}: every item of the catalog was already seen, liked or disliked")
        return {"impression_id": page.impression_id, "user_id": visit.user_id, "model": str(choice),
                "items": _items(page, svc.assets.cover_key), "pending": len(page.pending)}

    def feedback(self, user_id: str, item_id: str, kind: str, impression_id: int = 0, event_id: str = "",
                 request: gr.Request = None) -> dict:
        """Log a click / like / dislike / skip ('open' counts as a click) on an item, or an undo (takes back this
        user's like or dislike of it), tied to the impression (from /recommend) that showed it to this user: required. Send the same `event_id` (a UUID) to make a
        retry a no-op. The same signal repeated (a second like of that item on that slate, with nothing else in
        between) is one signal: the stored event answers ("repeated": true, its event_id) and nothing is written."""
        self.svc.rates.check(request, "feedback")
        user_id = checks.text("user_id", user_id, checks.ID_MAX)
        item_id = checks.text("item_id", item_id, checks.ID_MAX)
        kind = checks.text("kind", kind, 16)
        if impression_id in (0, None):
            raise bad("impression_id", "the impression_id that /recommend returned with the slate (required)",
                      impression_id)
        impression = checks.integer("impression_id", impression_id, 1, 2**62)
        event = checks.text("event_id", event_id, checks.EVENT_ID_MAX) if event_id else checks.new_event_id()
        stored = self.svc.slates.feedback(user_id, item_id, kind, impression, event_id=event)
        return {"feedback_id": stored.id, "event_id": stored.event_id, "repeated": stored.repeated,
                "user_id": user_id, "item_id": item_id, "kind": kind}

    def generate_covers(self, user_id: str, item_id: str, n: int = 2, seed: int = 0,
                        request: gr.Request = None) -> dict:
        """`n` covers of `item_id`, half personalized for `user_id` and half generic, in a seeded random order:
        {"variants": [{"asset_id", "cover_key", "cover_url", "personalized", "seed", "generator", "fallback",
        "prompt"}]}. Variants are not stored (asset_id None) unless they were before, or the label queue takes two
        of them as a pair; their images stay fetchable at cover_url for a while (the most recent variants)."""
        svc = self.svc
        svc.rates.check(request, "generate")
        visit = self._visit(user_id)
        svc.catalog.item(item_id)
        n = checks.integer("n", n, 2, checks.N_VARIANTS_MAX)
        seed = checks.integer("seed", seed, 0, checks.SEED_MAX)
        learner = svc.assets.learner
        profile = svc.catalog.profile(visit.user_id, visit.liked, preferred_prompts=(
            learner.preferred_prompts(visit.user_id) if learner is not None else ()))
        variants = svc.assets.variants.create(profile, item_id, n, seed=seed)
        keys = ("asset_id", "personalized", "seed", "generator", "fallback", "prompt")
        # no "path" key: gradio_client would take a dict with "path" for a file and download it
        out = []
        for v in variants:
            key = svc.assets.cover_key(v)
            out.append({**{k: v[k] for k in keys}, "cover_key": key, "cover_url": cover_url(key)})
        return {"user_id": visit.user_id, "item_id": item_id, "variants": out}

    def generate_caption(self, user_id: str, item_id: str, request: gr.Request = None) -> dict:
        """The personalized caption of `item_id` for `user_id`: {"asset_id", "text", "generator", "fallback"}."""
        svc = self.svc
        svc.rates.check(request, "generate")
        visit = self._visit(user_id)
        svc.catalog.item(item_id)
        caption = svc.assets.caption_for(item_id, svc.catalog.profile(visit.user_id, visit.liked))
        return {"user_id": visit.user_id, "item_id": item_id, "asset_id": caption["asset_id"],
                "text": caption["text"], "generator": caption["generator"], "fallback": bool(caption["fallback"])}

    def next_pair(self, annotator: str, password: str = "", token: str = "", request: gr.Request = None) -> dict:
        """The annotator's next pair to label: {"pair_id", "kind", "a", "b", "target_user_id", "done", "remaining",
        "token"}; pair_id is 0 when nothing is left. The first call with a new name claims it: "token" is then
        the annotator's secret token (given once; None on later calls), which every later call with that name
        must send."""
        labeling = self.svc.labeling
        annotator_id, new_token = self._annotator(annotator, password, token, request)
        pair = labeling.next_pair(annotator_id)
        done, remaining = labeling.progress(annotator_id)
        if pair is None:
            return {"pair_id": 0, "done": done, "remaining": remaining, "token": new_token}
        keys = {side: labeling.assets.cover_key(pair[side]) for side in ("a", "b")}
        sides = {side: {**{k: v for k, v in pair[side].items() if k != "path"}, "cover_key": keys[side],
                        "cover_url": cover_url(keys[side])} for side in ("a", "b")}
        return {**pair, **sides, "done": done, "remaining": remaining, "token": new_token}

    def label(self, annotator: str, pair_id: int, choice: str, password: str = "", event_id: str = "",
              token: str = "", request: gr.Request = None) -> dict:
        """Label a pair: choice A | B | tie | skip (or the keys 1 | 2 | 0 | s), with the annotator's token."""
        self._check_password(password, request)
        pair_id = checks.integer("pair_id", pair_id, 1, 2**62)
        choice = checks.text("choice", choice, 8)
        choice = KEY_CHOICES.get(choice, choice)
        event = checks.text("event_id", event_id, checks.EVENT_ID_MAX) if event_id else checks.new_event_id()
        annotator_id, _ = self.svc.labeling.authenticate(checks.text("annotator", annotator, 80), token,
                                                         create=False)  # never creates one
        label_id = self.svc.labeling.record_label(annotator_id, pair_id, choice, event_id=event)
        return {"label_id": label_id, "pair_id": pair_id, "choice": choice, "event_id": event}


def _items(page: Page, cover_key) -> list[dict]:
    """The page's rows with their cover and caption, as /recommend returns them."""
    items = []
    for row in page.rows:
        cover, caption = page.covers.get(row.item_id), page.captions.get(row.item_id)
        key = cover_key(cover) if cover else None
        items.append({
            **row.to_dict(),
            "cover_key": key,
            "cover_url": cover_url(key),
            "cover_fallback": bool(cover["fallback"]) if cover else None,
            "caption": caption["text"] if caption else None,
            "caption_fallback": bool(caption["fallback"]) if caption else None,
            "pending": row.item_id in page.pending,
        })
    return items


def register_api(svc: Services, *, fast_limit: int = 16, generation_limit: int = 1) -> ApiHandlers:
    """Register the endpoints in the current `gr.Blocks`. Generation shares the "generation" concurrency
    group with the UI's generation events, so a slow cover never blocks /recommend or /feedback."""
    api = ApiHandlers(svc)
    gr.api(user_errors(api.recommend), api_name="recommend", concurrency_limit=fast_limit, concurrency_id="fast")
    gr.api(user_errors(api.feedback), api_name="feedback", concurrency_limit=fast_limit, concurrency_id="fast")
    gr.api(user_errors(api.generate_covers), api_name="generate_covers", concurrency_limit=generation_limit,
           concurrency_id="generation")
    gr.api(user_errors(api.generate_caption), api_name="generate_caption", concurrency_limit=generation_limit,
           concurrency_id="generation")
    gr.api(user_errors(api.next_pair), api_name="next_pair", concurrency_limit=fast_limit, concurrency_id="fast")
    gr.api(user_errors(api.label), api_name="label", concurrency_limit=fast_limit, concurrency_id="fast")
    # its own concurrency group: a busy "fast" group is load, not a stopped queue
    gr.api(health, api_name="health", concurrency_limit=2, concurrency_id="health")
    return api


def health() -> str:
    """"ok", through Gradio's queue like every event: a process whose queue has stopped answers the join with
    `503 Queue is stopped.` instead (while its page and /config still answer 200). `scripts/healthcheck.py`."""
    return "ok"
