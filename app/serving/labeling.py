"""Labeling: annotators, the pair queue, labels, Create-tab picks, studies and the admin action that fills the queue.

The queue's rules live in `annotation.queue` (`next_pair`, `label_progress`) and studies in `annotation.studies`;
this part turns pairs and studies into plain data for the UI and the API and converts the store's input errors
into `AppInputError`. Outside studies, gold pairs are mixed in at VITRINE_GOLD_RATE, their turns keyed by a secret
of this process (nobody can tell a gold turn from the order). A study participant is the annotator
"study:<study id>:<external id>", claimed with a token like any name (`join_study`).
"""

from __future__ import annotations

import random
import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app import checks
from app.serving.assets import Asset, Assets
from app.serving.catalog import Catalog
from app.errors import AppInputError, bad
from app.serving.ranking import Ranking

__all__ = ["Labeling", "LABEL_CHOICES", "PICK_PREFIX", "STUDY_PREFIX", "StudyInfo"]

LABEL_CHOICES = ("A", "B", "tie", "skip")
NAME_MAX = 80  # the store's limit on annotator names
PICK_PREFIX = "user:"  # a Create-tab pick is labelled by the annotator "user:<user_id>"


STUDY_PREFIX = "study:"  # a study participant is the annotator "study:<study id>:<external id>"
RESERVED_PREFIXES = (PICK_PREFIX, "hf:", STUDY_PREFIX)  # Create-tab picks, Hugging Face sign-ins and studies own these
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_.-]{1,60}$")  # a participant id as Prolific (24 hex) and others pass it
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


@dataclass(frozen=True)
class StudyInfo:
    """A study as the Label tab and the admin see it."""

    study_id: int
    key: str
    name: str
    guidelines: str
    pair_source: str
    quota: int
    gold_rate: float
    completion_code: str

    @classmethod
    def of(cls, row) -> "StudyInfo":
        return cls(int(row.id), row.key, row.name, row.guidelines, row.pair_source, int(row.labels_per_annotator),
                   float(row.gold_rate), row.completion_code)


def _side(asset) -> dict[str, Any]:
    return {"asset_id": int(asset.id), "kind": asset.kind, "path": asset.path, "text": asset.text,
            "personalized": bool(asset.personalized), "generator": asset.generator}


class Labeling:
    def __init__(self, catalog: Catalog, ranking: Ranking, assets: Assets, overlap: int,
                 gold_rate: float = 0.0) -> None:
        self.catalog = catalog
        self.ranking = ranking
        self.assets = assets
        self.events = assets.events
        self.overlap = overlap
        self.gold_rate = gold_rate
        self.gold_key = secrets.token_hex(16)  # keys the gold turns outside studies: not guessable

    def _write(self):
        return self.events.Session()

    def sign_in(self, name: object, *, reserved_ok: bool = False) -> int:
        """The annotator id for `name` (created on first sign-in), after `annotator_name`. `reserved_ok`: only for
        the sign-ins that own the reserved prefixes (Hugging Face OAuth for "hf:")."""
        from annotation import store

        name = annotator_name(name, reserved_ok=reserved_ok)
        with self._write() as s, s.begin():
            return int(store.get_or_create_annotator(s, name).id)

    def authenticate(self, name: object, token: object = None, *, create: bool = True,
                     reserved_ok: bool = False) -> tuple[int, str | None]:
        """Who is signing in as `name`: (annotator id, their new token or None). A name nobody holds yet (a new one,
        or one from before tokens) is claimed by this call: a fresh secret token is returned, once, and only its
        sha256 is stored. A name held by someone needs its token: a name cannot be claimed twice. With
        `create=False` the name must exist and be held (a label names someone who was handed a pair). Reserved
        names ("hf:", "user:", "study:") are refused unless `reserved_ok` (for the sign-ins that own them)."""
        import hmac

        from annotation import reads, store
        from annotation.models import Annotator

        name = annotator_name(name, reserved_ok=reserved_ok)
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

    def next_pair(self, annotator_id: int, study: StudyInfo | None = None) -> dict[str, Any] | None:
        """The annotator's next pair as plain data (None when the queue has nothing for them). In a study: its
        pairs and gold rate, and None once the participant's quota is done."""
        from annotation import queue, studies

        with self._write() as s, s.begin():
            if study is None:
                options = {"gold_rate": self.gold_rate, "gold_key": self.gold_key}
            else:
                row = studies.study_by_id(s, study.study_id)
                done, quota = studies.study_progress(s, row.id, annotator_id)
                if done >= quota:
                    return None
                options = studies.pair_options(row)
            pair = queue.next_pair(s, annotator_id, overlap=self.overlap, **options)
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

    def progress(self, annotator_id: int, study: StudyInfo | None = None) -> tuple[int, int]:
        """(done, remaining) for an annotator, by the queue's own rule (`queue.label_progress`); in a study,
        (labels done in it, its quota)."""
        from annotation import queue, studies

        with self.events.ReadSession() as s:
            if study is not None:
                return studies.study_progress(s, study.study_id, annotator_id)
            return queue.label_progress(s, annotator_id, overlap=self.overlap)

    def record_label(self, annotator_id: int, pair_id: int, choice: str, *, time_spent_ms: int | None = None,
                     event_id: str | None = None, study: StudyInfo | None = None) -> int:
        """Store a preference label (given in `study`, if any); returns its row id."""
        from annotation import errors as aerr
        from annotation import queue

        if choice not in LABEL_CHOICES:
            raise bad("choice", f"one of {list(LABEL_CHOICES)}", choice)
        try:
            with self._write() as s, s.begin():
                row = queue.record_preference(s, event_id or checks.new_event_id(), int(pair_id), annotator_id,
                                              choice, time_spent_ms=time_spent_ms, leased_only=True,
                                              study_id=None if study is None else study.study_id)
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

    # -- studies ----------------------------------------------------------------------------------------------
    def study(self, key: object) -> StudyInfo:
        """The study whose link carries `key`; `AppInputError` when there is none."""
        from annotation import errors as aerr
        from annotation import studies

        key = checks.text("study", key, 32)
        try:
            with self.events.ReadSession() as s:
                return StudyInfo.of(studies.get_study(s, key))
        except aerr.AnnotationError as exc:
            raise AppInputError(str(exc)) from exc

    def create_study(self, name: object, guidelines: object, pair_source: object, quota: object,
                     gold_rate: object) -> StudyInfo:
        """A new study (an admin action: the caller checks the password)."""
        from annotation import errors as aerr
        from annotation import studies
        from annotation.models import PAIR_SOURCES

        name = checks.text("name", name, 200)
        guidelines = checks.text("guidelines", guidelines, studies.GUIDELINES_MAX) if guidelines else ""
        quota = checks.integer("labels per annotator", quota, 1, studies.QUOTA_MAX)
        if pair_source not in PAIR_SOURCES:
            raise bad("pair source", f"one of {list(PAIR_SOURCES)}", pair_source)
        if isinstance(gold_rate, bool) or not isinstance(gold_rate, (int, float)) or not 0 <= gold_rate <= 1:
            raise bad("gold rate", "a number between 0 and 1", gold_rate)
        try:
            with self._write() as s, s.begin():
                row = studies.create_study(s, name, guidelines, pair_source=pair_source, labels_per_annotator=quota,
                                           gold_rate=float(gold_rate))
                return StudyInfo.of(row)
        except aerr.AnnotationError as exc:
            raise AppInputError(str(exc)) from exc

    def studies(self) -> list[StudyInfo]:
        """Every study, oldest first."""
        from annotation import studies

        with self.events.ReadSession() as s:
            return [StudyInfo.of(row) for row in studies.all_studies(s)]

    def join_study(self, study: StudyInfo, external_id: object, token: object = None) -> tuple[int, str | None]:
        """A participant arriving by the study's link with `external_id` (e.g. Prolific's PROLIFIC_PID): (annotator
        id, their new token or None). The first arrival claims the id and gets a token, later ones need it (as
        `authenticate`), so nobody else can label as them."""
        from annotation import errors as aerr
        from annotation import studies

        external_id = checks.text("participant id", external_id, 60)
        if not EXTERNAL_ID.match(external_id):
            raise bad("participant id", "letters, digits, '.', '_' or '-' (up to 60)", external_id)
        annotator_id, new_token = self.authenticate(f"{STUDY_PREFIX}{study.study_id}:{external_id}", token,
                                                    reserved_ok=True)
        try:
            with self._write() as s, s.begin():
                studies.join_study(s, study.key, annotator_id, external_id)
        except aerr.AnnotationError as exc:
            raise AppInputError(str(exc)) from exc
        return annotator_id, new_token

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

    def make_pairs(self, n: object, *, seed: int = 0, kinds: Sequence[str] = ("cover", "caption"),
                   study: StudyInfo | None = None) -> int:
        """Fill the labeling queue: for `n` random (dataset user, recommended item), a personalized vs generic
        cover and caption pair (sides in a seeded random order); made for `study` when given (handed only to its
        participants). Returns the number of pairs created."""
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
                    queue.create_pair(s, a["asset_id"], b["asset_id"], target_user_id=user_id, kind=kind,
                                      study_id=None if study is None else study.study_id)
                created += 1
        return created

    def _personal_and_generic(self, kind: str, item_id: str, profile, rng: random.Random) -> tuple[Asset, Asset]:
        if kind == "cover":
            return (self.assets.covers_for(item_id, profile, seed=rng.randrange(1, 2**20))[0],
                    self.assets.covers_for(item_id, None, seed=rng.randrange(1, 2**20))[0])
        return self.assets.caption_for(item_id, profile), self.assets.caption_for(item_id, None)
