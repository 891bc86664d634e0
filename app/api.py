"""The named API endpoints, for `gradio_client`: /recommend, /feedback, /generate_covers, /generate_caption,
/next_pair, /label.

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    slate = client.predict("196", "ease", 10, api_name="/recommend")
    client.predict("196", slate["items"][0]["item_id"], "like", slate["impression_id"], api_name="/feedback")

Each endpoint is a typed function registered with `gr.api` (its schema comes from the type hints, which is
why this module does not use `from __future__ import annotations`). Each validates its inputs and answers a
bad request with a `gr.Error` naming the argument, what was expected and what was received.
"""

import gradio as gr

from app.handlers import KEY_CHOICES, user_errors
from app.services import K_MAX, N_VARIANTS_MAX, Services, _check_int, _check_text, new_event_id
from app.settings import password_matches

__all__ = ["register_api", "ApiHandlers"]

ID_MAX = 64  # the store's limit on user and item ids
EVENT_ID_MAX = 36


class ApiHandlers:
    """The endpoint functions, bound to one `Services`. Plain methods: tests call them directly."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def _user(self, user_id: object) -> tuple[str, str, list[str]]:
        user_id = _check_text("user_id", user_id, ID_MAX)
        kind = self.svc.user_kind(user_id)
        liked, _ = self.svc.app_likes(user_id)
        return user_id, kind, list(reversed(liked))

    def _annotator(self, annotator: object, password: object) -> int:
        expected = self.svc.settings.label_password
        if expected is not None and not password_matches(password, expected):
            raise gr.Error("password: expected the labeling password (VITRINE_LABEL_PASSWORD), got a wrong one")
        return self.svc.sign_in(_check_text("annotator", annotator, 80))

    def recommend(self, user_id: str, model: str = "", k: int = 10, wait: bool = False) -> dict:
        """A slate for `user_id` from `model` ('' = the default; 'compare:a|b' interleaves two models):
        {"impression_id", "user_id", "model", "pending", "items": [{"item_id", "title", "year", "genres",
        "score", "contributor", "why", "cover_path", "cover_fallback", "caption", "caption_fallback",
        "pending"}]}. Covers and captions already made for this user come at once; the others are generated
        in the background (`pending: true`, paths None) and are there on the next call. `wait=True` makes
        them before answering instead (slow with real models)."""
        with self.svc.interactive():
            return self._recommend(user_id, model, k, wait)

    def _recommend(self, user_id: str, model: str, k: int, wait: bool) -> dict:
        svc = self.svc
        user_id, kind, liked = self._user(user_id)
        model = _check_text("model", model) if model not in ("", None) else svc.default_model
        k = _check_int("k", k, 1, K_MAX)
        if not isinstance(wait, bool):
            raise gr.Error(f"wait: expected true or false, got {wait!r}")
        profile = svc.profile(user_id, liked)
        seed = new_seed()
        rows = svc.recommend(user_id, model, k, liked=liked, seed=seed, profile=profile)
        if not rows:
            raise gr.Error(f"user_id {user_id!r}: every item of the catalog was already seen, liked or disliked")
        impression_id = svc.record_impression(user_id, rows, model, context={"tab": "api", "seed": seed})
        known = svc.known_assets(user_id, [r.item_id for r in rows])
        missing = [r.item_id for r in rows if (r.item_id, "cover") not in known or (r.item_id, "caption") not in known]
        if wait and missing:
            for item_id, (cover, caption) in zip(missing, svc.slate_assets(missing, profile)):
                known[(item_id, "cover")], known[(item_id, "caption")] = cover, caption
            missing = []
        svc.generate_later(user_id, missing, profile)  # otherwise the answer never waits for a model
        items = []
        for row in rows:
            cover, caption = known.get((row.item_id, "cover")), known.get((row.item_id, "caption"))
            items.append({
                **row.to_dict(),
                "cover_path": cover["path"] if cover else None,
                "cover_fallback": bool(cover["fallback"]) if cover else None,
                "caption": caption["text"] if caption else None,
                "caption_fallback": bool(caption["fallback"]) if caption else None,
                "pending": row.item_id in missing,
            })
        return {"impression_id": impression_id, "user_id": user_id, "model": model, "items": items,
                "pending": len(missing)}

    def feedback(self, user_id: str, item_id: str, kind: str, impression_id: int = 0, event_id: str = "") -> dict:
        """Log a click / like / dislike / skip ('open' counts as a click) on an item, tied to the impression
        that showed it (0 = none). Send the same `event_id` (a UUID) to make a retry a no-op."""
        with self.svc.interactive():
            return self._feedback(user_id, item_id, kind, impression_id, event_id)

    def _feedback(self, user_id: str, item_id: str, kind: str, impression_id: int, event_id: str) -> dict:
        svc = self.svc
        user_id, _, _ = self._user(user_id)
        item_id = _check_text("item_id", item_id, ID_MAX)
        kind = _check_text("kind", kind, 16)
        impression = None if impression_id in (0, None) else _check_int("impression_id", impression_id, 1, 2**62)
        event = _check_text("event_id", event_id, EVENT_ID_MAX) if event_id else new_event_id()
        row_id = svc.record_feedback(user_id, item_id, kind, impression, event_id=event)
        return {"feedback_id": row_id, "event_id": event, "user_id": user_id, "item_id": item_id, "kind": kind}

    def generate_covers(self, user_id: str, item_id: str, n: int = 2, seed: int = 0) -> dict:
        """`n` covers of `item_id`, half personalized for `user_id` and half generic, in a seeded random order:
        {"variants": [{"asset_id", "cover_path", "personalized", "seed", "generator", "fallback", "prompt"}]}"""
        svc = self.svc
        user_id, _, liked = self._user(user_id)
        svc.item(item_id)
        n = _check_int("n", n, 2, N_VARIANTS_MAX)
        seed = _check_int("seed", seed, 0, 2**31 - 1)
        variants = svc.create_variants(user_id, item_id, n, liked=liked, seed=seed)
        keys = ("asset_id", "personalized", "seed", "generator", "fallback", "prompt")
        # "cover_path", not "path": gradio_client would take a dict with "path" for a file and download it
        return {"user_id": user_id, "item_id": item_id,
                "variants": [{**{k: v[k] for k in keys}, "cover_path": v["path"]} for v in variants]}

    def generate_caption(self, user_id: str, item_id: str) -> dict:
        """The personalized caption of `item_id` for `user_id`: {"asset_id", "text", "generator", "fallback"}."""
        svc = self.svc
        user_id, _, liked = self._user(user_id)
        svc.item(item_id)
        caption = svc.caption_for(item_id, svc.profile(user_id, liked))
        return {"user_id": user_id, "item_id": item_id, "asset_id": caption["asset_id"], "text": caption["text"],
                "generator": caption["generator"], "fallback": bool(caption["fallback"])}

    def next_pair(self, annotator: str, password: str = "") -> dict:
        """The annotator's next pair to label (created on first use): {"pair_id", "kind", "a", "b",
        "target_user_id", "done", "remaining"}; pair_id is 0 when nothing is left."""
        annotator_id = self._annotator(annotator, password)
        pair = self.svc.next_pair(annotator_id)
        done, remaining = self.svc.label_progress(annotator_id)
        if pair is None:
            return {"pair_id": 0, "done": done, "remaining": remaining}
        sides = {side: {("cover_path" if k == "path" else k): v for k, v in pair[side].items()} for side in ("a", "b")}
        return {**pair, **sides, "done": done, "remaining": remaining}

    def label(self, annotator: str, pair_id: int, choice: str, password: str = "", event_id: str = "") -> dict:
        """Label a pair: choice A | B | tie | skip (or the keys 1 | 2 | 0 | s)."""
        annotator_id = self._annotator(annotator, password)
        pair_id = _check_int("pair_id", pair_id, 1, 2**62)
        choice = _check_text("choice", choice, 8)
        choice = KEY_CHOICES.get(choice, choice)
        event = _check_text("event_id", event_id, EVENT_ID_MAX) if event_id else new_event_id()
        label_id = self.svc.record_label(annotator_id, pair_id, choice, event_id=event)
        return {"label_id": label_id, "pair_id": pair_id, "choice": choice, "event_id": event}


def new_seed() -> int:
    import uuid

    return uuid.uuid4().int % (2**31)


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
    return api
