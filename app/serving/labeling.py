"""Labeling: annotators, the pair queue, labels, Create-tab picks and the admin action that fills the queue.

The queue's rules live in `annotation.store` (`next_pair`, `label_progress`); this part turns pairs into plain
data for the UI and the API and converts the store's input errors into `AppInputError`.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence
from typing import Any

from app import checks
from app.serving.assets import Asset, Assets
from app.serving.catalog import Catalog
from app.errors import AppInputError, bad
from app.serving.ranking import Ranking

__all__ = ["Labeling", "LABEL_CHOICES", "PICK_PREFIX"]

LABEL_CHOICES = ("A", "B", "tie", "skip")
NAME_MAX = 80  # the store's limit on annotator names
PICK_PREFIX = "user:"  # a Create-tab pick is labelled by the annotator "user:<user_id>"


RESERVED_PREFIXES = (PICK_PREFIX, "hf:")  # Create-tab picks and Hugging Face sign-ins own these names
TOKEN_BYTES = 24  # an annotator's secret token: 192 random bits, 32 characters
TOKEN_MAX = 64  # the longest token text accepted


def _sha256(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def annotator_name(raw: object, *, reserved_ok: bool = False) -> str:
    """One spelling per person: NFKC-normalised, control and format characters (bidi overrides, zero-width)
    removed, white space collapsed, case-folded. "Alice", "alice" and "\u202eAlice" are one annotator. Names
    starting with a reserved prefix are refused unless `reserved_ok`."""
    name = unicodedata.normalize("NFKC", checks.text("name", raw, NAME_MAX))
    name = " ".join("".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf")).split()).casefold()
    if not name:
        raise bad("name", "a name with at least one visible character", raw)
    if not reserved_ok and name.startswith(RESERVED_PREFIXES):
        raise bad("name", f"a name not starting with {' or '.join(RESERVED_PREFIXES)} (reserved for the sign-ins "
                  "that own them)", raw)
    return name


def _side(asset) -> dict[str, Any]:
    return {"asset_id": int(asset.id), "kind": asset.kind, "path": asset.path, "text": asset.text,
            "personalized": bool(asset.personalized), "generator": asset.generator}


class Labeling:
    def __init__(self, catalog: Catalog, ranking: Ranking, assets: Assets, overlap: int) -> None:
        self.catalog = catalog
        self.ranking = ranking
        self.assets = assets
        self.events = assets.events
        self.overlap = overlap

    def _write(self):
        return self.events.Session()

    def sign_in(self, name: object, *, reserved_ok: bool = False) -> int:
        """The annotator id for `name` (created on first sign-in), after `annotator_name`. `reserved_ok`: only for
        the sign-ins that own the reserved prefixes (Hugging Face OAuth for "hf:")."""
        from annotation import store

        name = annotator_name(name, reserved_ok=reserved_ok)
        with self._write() as s, s.begin():
            return int(store.get_or_create_annotator(s, name).id)

    def authenticate(self, name: object, token: object = None, *, create: bool = True) -> tuple[int, str | None]:
        """Who is signing in as `name`: (annotator id, their new token or None). A name nobody holds yet (a new one,
        or one from before tokens) is claimed by this call: a fresh secret token is returned, once, and only its
        sha256 is stored. A name held by someone needs its token: a name cannot be claimed twice. With
        `create=False` the name must exist and be held (a label names someone who was handed a pair). Reserved
        names ("hf:", "user:") are refused: they have sign-ins of their own."""
        import hmac
        import secrets

        from annotation import reads, store
        from annotation.models import Annotator

        name = annotator_name(name)
        given = None if token in (None, "") else checks.text("token", token, TOKEN_MAX)
        with self._write() as s, s.begin():
            if create:
                annotator = store.get_or_create_annotator(s, name)
            else:
                found = reads.annotator_id(s, name)
                if found is None:
                    raise bad("annotator", "an annotator who was handed a pair (call next_pair first)", name)
                annotator = s.get(Annotator, found)
            if annotator.token_hash is None and create:
                new = secrets.token_urlsafe(TOKEN_BYTES)
                if store.claim_annotator_token(s, annotator.id, _sha256(new)):
                    return int(annotator.id), new
                s.refresh(annotator)  # a concurrent first sign-in with this name claimed it
            if annotator.token_hash is None:
                raise AppInputError(f"token: {name!r} has no token yet: sign in (next_pair) first to get one")
            if given is None or not hmac.compare_digest(_sha256(given), annotator.token_hash):
                raise AppInputError(f"token: expected the token {name!r} was given at their first sign-in (the "
                                    f"name is taken), got {'none' if given is None else 'a wrong one'}")
            return int(annotator.id), None

    def find(self, name: object) -> int:
        """The id of an annotator who signed in before (nothing is written); `AppInputError` otherwise."""
        from annotation import reads

        name = annotator_name(name, reserved_ok=True)
        with self.events.ReadSession() as s:
            found = reads.annotator_id(s, name)
        if found is None:
            raise bad("annotator", "an annotator who was handed a pair (call next_pair first)", name)
        return found

    def next_pair(self, annotator_id: int) -> dict[str, Any] | None:
        """The annotator's next pair as plain data (None when the queue has nothing for them)."""
        from annotation import queue

        with self._write() as s, s.begin():
            pair = queue.next_pair(s, annotator_id, overlap=self.overlap)
            if pair is None:
                return None
            if pair.kind == "slate":
                a = {"kind": "slate", "text": ", ".join(pair.impression_a.item_ids), "path": None}
                b = {"kind": "slate", "text": ", ".join(pair.impression_b.item_ids), "path": None}
                item_id = None
            else:
                a, b = _side(pair.asset_a), _side(pair.asset_b)
                item_id = pair.asset_a.item_id
            return {"pair_id": int(pair.id), "kind": pair.kind, "a": a, "b": b,
                    "target_user_id": pair.target_user_id, "item_id": item_id}

    def progress(self, annotator_id: int) -> tuple[int, int]:
        """(done, remaining) for an annotator, by the queue's own rule (`queue.label_progress`)."""
        from annotation import queue

        with self.events.ReadSession() as s:
            return queue.label_progress(s, annotator_id, overlap=self.overlap)

    def record_label(self, annotator_id: int, pair_id: int, choice: str, *, time_spent_ms: int | None = None,
                     event_id: str | None = None) -> int:
        """Store a preference label; returns its row id."""
        from annotation import errors as aerr
        from annotation import queue

        if choice not in LABEL_CHOICES:
            raise bad("choice", f"one of {list(LABEL_CHOICES)}", choice)
        try:
            with self._write() as s, s.begin():
                row = queue.record_preference(s, event_id or checks.new_event_id(), int(pair_id), annotator_id,
                                              choice, time_spent_ms=time_spent_ms, leased_only=True)
                row_id = int(row.id)
                pair = queue.get_pair(s, int(pair_id))
                sides = ((pair.target_user_id, dict(pair.asset_a.params or {}), dict(pair.asset_b.params or {}))
                         if pair.kind == "cover" else None)
        except aerr.AnnotationError as exc:
            raise AppInputError(str(exc)) from exc
        learner = self.assets.learner
        if sides is not None and learner is not None:  # a cover label teaches the prompt policy
            learner.learn_from_label(sides[0], sides[1], sides[2], choice)
        return row_id

    def undo(self, annotator_id: int) -> int | None:
        """Clear the annotator's most recent label; returns the pair id handed back (None: nothing to undo)."""
        from annotation import queue

        with self._write() as s, s.begin():
            row = queue.undo_last_preference(s, checks.new_event_id(), annotator_id)
            return None if row is None else int(row.pair_id)

    def record_pick(self, user_id: str, variants: Sequence[dict[str, Any]], best: object, *,
                    time_spent_ms: int | None = None) -> list[int]:
        """The person picked `variants[best]`: one preference label for it against each other variant, given by
        the annotator `user:<user_id>`; returns the pair ids. Variants made on trial are stored first
        (`Assets.keep`): a pick is what makes them training data."""
        from annotation import queue, store

        if not variants:
            raise bad("variants", "generated variants (press Generate first)", [])
        best = checks.integer("best", best, 0, len(variants) - 1)
        variants = self.assets.variants.keep(variants)
        winner = variants[best]["asset_id"]
        pair_ids = []
        others = []
        with self._write() as s, s.begin():
            annotator = store.get_or_create_annotator(s, f"{PICK_PREFIX}{user_id}"[:NAME_MAX])
            for i, other in enumerate(variants):
                if i == best:
                    continue
                pair = queue.create_pair(s, winner, other["asset_id"], target_user_id=user_id, kind="cover")
                # create_pair returns an existing pair for the same two assets, possibly stored as (other, winner)
                choice = "A" if pair.asset_a_id == winner else "B"
                queue.record_preference(s, checks.new_event_id(), pair.id, annotator.id, choice,
                                        time_spent_ms=time_spent_ms)
                pair_ids.append(int(pair.id))
                won, lost = (pair.asset_a, pair.asset_b) if choice == "A" else (pair.asset_b, pair.asset_a)
                picked = (dict(won.params or {}), won.prompt)
                others.append(dict(lost.params or {}))
        learner = self.assets.learner
        if learner is not None and others:
            learner.learn_from_pick(user_id, picked[0], others)  # the policy learns from the pick ...
            learner.picked(user_id, picked[1])  # ... and the pick's prompt feeds the user's profile
        return pair_ids

    def make_pairs(self, n: object, *, seed: int = 0, kinds: Sequence[str] = ("cover", "caption")) -> int:
        """Fill the labeling queue: for `n` random (dataset user, recommended item), a personalized vs generic
        cover and caption pair (sides in a seeded random order). Returns the number of pairs created."""
        from annotation import queue

        n = checks.integer("n", n, 1, 200)
        rng = random.Random(seed)
        created = 0
        for _ in range(n):
            user_id = self.catalog.random_user(rng)
            profile = self.catalog.profile(user_id)
            top = self.ranking.rank(self.ranking.default_model, user_id, 10)
            if not top:
                continue
            item_id = rng.choice(top)[0]
            for kind in kinds:
                mine, generic = self._personal_and_generic(kind, item_id, profile, rng)
                a, b = (mine, generic) if rng.random() < 0.5 else (generic, mine)
                if a["asset_id"] == b["asset_id"]:
                    continue
                with self._write() as s, s.begin():
                    queue.create_pair(s, a["asset_id"], b["asset_id"], target_user_id=user_id, kind=kind)
                created += 1
        return created

    def _personal_and_generic(self, kind: str, item_id: str, profile, rng: random.Random) -> tuple[Asset, Asset]:
        if kind == "cover":
            return (self.assets.covers_for(item_id, profile, seed=rng.randrange(1, 2**20))[0],
                    self.assets.covers_for(item_id, None, seed=rng.randrange(1, 2**20))[0])
        return self.assets.caption_for(item_id, profile), self.assets.caption_for(item_id, None)
