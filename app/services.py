"""Everything the app loads once at start, and the flows that compose the three library packages.

`build_services(settings)` runs the start-up sequence (migrate the DB, load the dataset, compute or load the
cached text features, train or load the served models, sync the catalog into the store, build the cover and
caption generators, falling back when a model is not available) and returns one `Services` object. Gradio
handlers receive it as their first argument; per-visitor state never lives here.

The flows (`recommend`, `record_feedback`, `covers_for`, `create_variants`, `pick_best`, `next_pair`,
`record_label`, `retrain`, ...) are methods, each framing its own DB transaction:
`with self.Session() as s, s.begin(): ...` (one session per user event); reads use `self.ReadSession`, which
never takes SQLite's write lock. Library errors for bad input are
converted into `AppInputError` here, so handlers deal with one exception type.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.errors import AppInputError, bad
from app.interleaving import team_draft
from app.settings import Settings
from app.zerogpu import gpu

log = logging.getLogger("vitrine")

__all__ = ["Services", "build_services", "SlateRow", "K_MAX", "N_VARIANTS_MAX", "TEXT_MAX", "new_event_id"]

K_MAX = 50  # the most items one /recommend call may ask for
N_VARIANTS_MAX = 8  # the most cover variants one Create request may ask for
TEXT_MAX = 200  # the longest free text (user ids, annotator names, model names) accepted from a client
LIKE_RATING = 4.0  # a dataset rating at or above this counts as a like (history, profile, "why")
FEEDBACK_KINDS = ("click", "like", "dislike", "skip")  # what /feedback accepts ("open" is logged as "click")
LABEL_CHOICES = ("A", "B", "tie", "skip")
COMPARE_PREFIX = "compare:"  # model choice "compare:ease|pop" = team-draft interleaving of ease and pop
BACKGROUND_BATCH_S = 0.5  # the background worker records what it made at least this often
BACKGROUND_YIELD_S = 0.5  # the longest the background worker waits for interactive requests to finish
PROFILE_CACHE = 4096  # user profiles kept in memory (a profile is a few hundred bytes)


def new_event_id() -> str:
    """A client-generated event UUID: the store makes a retried write with the same id a no-op."""
    return str(uuid.uuid4())


def _check_text(name: str, value: object, max_len: int = TEXT_MAX) -> str:
    if not isinstance(value, str):
        raise bad(name, "a string", value)
    value = value.strip()
    if not value:
        raise bad(name, "a non-empty string", value)
    if len(value) > max_len:
        raise bad(name, f"at most {max_len} characters", f"{len(value)} characters")
    return value


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise bad(name, f"an integer between {low} and {high}", value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, (int, np.integer)):
        raise bad(name, f"an integer between {low} and {high}", value)
    if not low <= int(value) <= high:
        raise bad(name, f"an integer between {low} and {high}", value)
    return int(value)


@dataclass
class SlateRow:
    """One recommended item, as the Discover tab and /recommend see it."""

    item_id: str
    title: str
    year: int | None
    genres: list[str]
    score: float
    contributor: str  # the model that put it there (interleaving: the team)
    why: str
    position: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Services:
    """The loaded world: settings, dataset, features, models, store, generators. Created once per process."""

    settings: Settings
    dataset: Any  # recommenders.data.Dataset
    features: dict[str, np.ndarray]
    models: dict[str, Any]  # name -> fitted recommender
    default_model: str
    engine: Any
    Session: Any  # sessionmaker
    covers: Any  # generation.covers.CoverGenerator
    captions: Any  # generation.captions.CaptionGenerator
    startup_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # start-up messages worth showing on the Status tab
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        from annotation.db import make_session_factory

        self.ReadSession = make_session_factory(self.engine, read_only=True)
        items = self.dataset.items
        self._items: list[dict[str, Any]] = items.to_dict("records")
        self._pos: dict[str, int] = {str(i): n for n, i in enumerate(items["item_id"])}
        self._dataset_users: set[str] = set(self.dataset.users["user_id"].astype(str))
        inter = self.dataset.interactions.sort_values(["user_id", "timestamp"], ascending=[True, False])
        self._history: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
            str(user): (g["item_id"].to_numpy(), g["rating"].to_numpy(float), g["timestamp"].to_numpy())
            for user, g in inter.groupby("user_id", sort=False)
        }
        text = self.features.get("text") if self.features else None
        self._text = None if text is None else np.asarray(text, dtype=np.float32)
        self._cover_generate = gpu(self.covers.generate, duration=120)
        self._caption_generate = gpu(self.captions.generate, duration=60)
        self._profiles: OrderedDict[tuple[str, tuple[str, ...]], Any] = OrderedDict()  # LRU of built profiles
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vitrine-assets")
        self._pending: set[tuple[str, str]] = set()  # (user_id, item_id) queued for background generation
        self._stored_users: set[str] = set()  # users this process saw committed to the store
        self._requests = 0  # interactive requests being answered; the background worker waits for none
        self._quiet = threading.Condition(threading.Lock())

    def close(self) -> None:
        """Stop the background generation worker and release the DB connections."""
        self._background.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()

    # ------------------------------------------------------------------------------------------------
    # catalog and users
    # ------------------------------------------------------------------------------------------------
    @property
    def model_names(self) -> list[str]:
        return list(self.models)

    @property
    def item_ids(self) -> list[str]:
        return list(self._pos)

    @property
    def user_ids(self) -> list[str]:
        return sorted(self._dataset_users, key=lambda u: (len(u), u))

    def item(self, item_id: object) -> dict[str, Any]:
        """The dataset row of `item_id`; `AppInputError` when it is not in the catalog."""
        item_id = _check_text("item_id", item_id)
        pos = self._pos.get(item_id)
        if pos is None:
            raise bad("item_id", f"an item of the {self.dataset.name} catalog", item_id)
        return self._items[pos]

    def item_label(self, item_id: str) -> str:
        row = self.item(item_id)
        year = row.get("year")
        return f"{row['title']} ({year})" if year is not None and not pd.isna(year) else str(row["title"])

    def item_choices(self) -> list[tuple[str, str]]:
        """(label, item_id) for the searchable item pickers."""
        return [(self.item_label(i), i) for i in self._pos]

    def user_choices(self) -> list[tuple[str, str]]:
        """(label, user_id) for the user search: the id first, so typing an id finds it."""
        users = self.dataset.users.set_index(self.dataset.users["user_id"].astype(str))
        out = []
        for user_id in self.user_ids:
            row = users.loc[user_id]
            facts = [str(row[c]) for c in ("age", "gender", "occupation") if c in row.index and not pd.isna(row[c])]
            n = len(self._history.get(user_id, ((),))[0])
            out.append((f"{user_id} · {' '.join(facts)} · {n} ratings" if facts else f"{user_id} · {n} ratings", user_id))
        return out

    def user_kind(self, user_id: object) -> str:
        """"dataset" or "new"; `AppInputError` for an id nobody knows."""
        user_id = _check_text("user_id", user_id, max_len=64)
        if user_id in self._dataset_users:
            return "dataset"
        from annotation.models import User

        with self.ReadSession() as s:
            row = s.get(User, user_id)
        if row is None:
            raise bad("user_id", f"a user of the {self.dataset.name} dataset or one created by onboarding", user_id)
        return row.kind

    def app_likes(self, user_id: str) -> tuple[list[str], list[str]]:
        """(liked, disliked) item ids this user gave in the app, newest first; a later event overrides an earlier."""
        from sqlalchemy import select

        from annotation.models import FeedbackEvent

        with self.ReadSession() as s:
            rows = s.execute(
                select(FeedbackEvent.item_id, FeedbackEvent.kind)
                .where(FeedbackEvent.user_id == user_id, FeedbackEvent.kind.in_(("like", "dislike")))
                .order_by(FeedbackEvent.id.desc())
            ).all()
        latest: dict[str, str] = {}
        for item_id, kind in rows:
            latest.setdefault(item_id, kind)
        return [i for i, k in latest.items() if k == "like"], [i for i, k in latest.items() if k == "dislike"]

    def history_rows(self, user_id: str, extra_liked: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The user's history in `generation.profile.build_profile`'s row format (dataset ratings + app likes)."""
        rows: list[dict[str, Any]] = []
        items, ratings, stamps = self._history.get(user_id, (np.array([]), np.array([]), np.array([])))
        for item_id, rating, ts in zip(items, ratings, stamps):
            row = self._items[self._pos[item_id]]
            rows.append(self._history_row(row, float(rating), int(ts)))
        for item_id in extra_liked:
            rows.append(self._history_row(self.item(item_id), None, None))  # no timestamp: the list order is used
        return rows

    @staticmethod
    def _history_row(row: dict[str, Any], rating: float | None, ts: int | None) -> dict[str, Any]:
        year = row.get("year")
        return {
            "item_id": row["item_id"],
            "title": row["title"],
            "text": row.get("text") or "",
            "genres": list(row.get("genres") or []),
            "year": None if year is None or pd.isna(year) else int(year),
            "rating": rating,
            "timestamp": ts,
        }

    def liked_ids(self, user_id: str, extra_liked: Sequence[str] = ()) -> list[str]:
        """Items the user liked: app likes first (newest first), then dataset ratings >= LIKE_RATING, newest first."""
        items, ratings, _ = self._history.get(user_id, (np.array([]), np.array([]), np.array([])))
        out = list(dict.fromkeys([*reversed(list(extra_liked)), *items[ratings >= LIKE_RATING].tolist()]))
        return [str(i) for i in out]

    def profile(self, user_id: str, extra_liked: Sequence[str] = ()):
        """`generation.profile.UserProfile` from the dataset history plus the app likes (LRU-cached: the
        dataset history never changes, and the app likes are part of the key). Treat it as read-only."""
        from generation.profile import build_profile

        key = (user_id, tuple(extra_liked))
        with self._lock:
            cached = self._profiles.get(key)
            if cached is not None:
                self._profiles.move_to_end(key)
                return cached
        profile = build_profile(user_id, self.history_rows(user_id, extra_liked))
        with self._lock:
            self._profiles[key] = profile
            while len(self._profiles) > PROFILE_CACHE:
                self._profiles.popitem(last=False)
        return profile

    def profile_facts(self, user_id: str) -> dict[str, Any]:
        """Demographics of a dataset user, for the profile summary."""
        users = self.dataset.users
        row = users[users["user_id"].astype(str) == user_id]
        if row.empty:
            return {}
        rec = row.iloc[0].to_dict()
        return {k: rec[k] for k in ("age", "gender", "occupation") if k in rec and not pd.isna(rec[k])}

    def n_ratings(self, user_id: str) -> int:
        return len(self._history.get(user_id, ((),))[0])

    # ------------------------------------------------------------------------------------------------
    # recommendation
    # ------------------------------------------------------------------------------------------------
    def parse_model(self, choice: object) -> tuple[str, str | None]:
        """'ease' -> ('ease', None); 'compare:ease|pop' -> ('ease', 'pop'). `AppInputError` for unknown names."""
        choice = _check_text("model", choice)
        if choice.startswith(COMPARE_PREFIX):
            parts = choice[len(COMPARE_PREFIX):].split("|")
            if len(parts) != 2 or parts[0] == parts[1]:
                raise bad("model", "'compare:<model_a>|<model_b>' with two different models", choice)
            a, b = parts
        else:
            a, b = choice, None
        for name in (a, b):
            if name is not None and name not in self.models:
                raise bad("model", f"one of {self.model_names} (or 'compare:a|b' of two of them)", name)
        return a, b

    def rank(self, model: str, user_id: str, n: int, liked: Sequence[str] = (), exclude: Iterable[str] = ()):
        """Top-`n` (item_ids, scores) of `model` for the user, skipping `exclude` and the training history.

        A user the model was not fitted on (onboarded in the app) is folded in from `liked`.
        """
        from recommenders.errors import UnknownUserError as ModelUnknownUser

        excluded = set(exclude)
        fitted = self.models[model]
        want = n + len(excluded | set(liked))  # both are filtered out below, so ask for that many more
        try:
            ids, scores = fitted.recommend(user_id, want, exclude_seen=True)
        except ModelUnknownUser:
            if not liked:
                raise bad("user_id", f"a user the model {model!r} knows, or a new user with liked items", user_id)
            ids, scores = fitted.recommend_from_items(list(liked), want, exclude_seen=True)
        extra = set(liked)
        out = [(str(i), float(s)) for i, s in zip(ids, scores) if str(i) not in excluded and str(i) not in extra]
        return out[:n]

    def why(self, item_id: str, liked: Sequence[str], top_genres: Sequence[str]) -> str:
        """The content 'why' of a recommendation: the liked item closest in text space, and shared top genres."""
        row = self.item(item_id)
        parts: list[str] = []
        if self._text is not None and liked:
            liked_pos = [self._pos[i] for i in liked[:200] if i in self._pos and i != item_id]
            if liked_pos:
                sims = self._text[liked_pos] @ self._text[self._pos[item_id]]  # (n_liked,)
                best = int(np.argmax(sims))
                if sims[best] > 0.2:
                    parts.append(f"close to {self._items[liked_pos[best]]['title']}, which you liked")
        shared = [g for g in row.get("genres") or [] if g in set(top_genres)]
        if shared:
            parts.append("you like " + " & ".join(shared[:2]))
        return "; ".join(parts) if parts else "popular with people like you"

    def recommend(
        self,
        user_id: str,
        model_choice: str,
        k: int,
        *,
        liked: Sequence[str] = (),
        exclude: Iterable[str] = (),
        seed: int | None = None,
        profile=None,
    ) -> list[SlateRow]:
        """The slate for a user: one model's top-k, or a team-draft interleaving of two models."""
        k = _check_int("k", k, 1, K_MAX)
        model_a, model_b = self.parse_model(model_choice)
        if profile is None:
            profile = self.profile(user_id, liked)
        liked_all = self.liked_ids(user_id, liked)
        if model_b is None:
            ranked = self.rank(model_a, user_id, k, liked=liked, exclude=exclude)
            contributors = [model_a] * len(ranked)
        else:
            depth = 2 * k
            ra = self.rank(model_a, user_id, depth, liked=liked, exclude=exclude)
            rb = self.rank(model_b, user_id, depth, liked=liked, exclude=exclude)
            slate = team_draft([i for i, _ in ra], [i for i, _ in rb], k, names=(model_a, model_b), seed=seed)
            score = {model_a: dict(ra), model_b: dict(rb)}
            ranked = [(i, score[c][i]) for i, c in zip(slate.item_ids, slate.contributors)]
            contributors = slate.contributors
        out = []
        for pos, ((item_id, score), who) in enumerate(zip(ranked, contributors)):
            row = self.item(item_id)
            year = row.get("year")
            out.append(
                SlateRow(
                    item_id=item_id,
                    title=row["title"],
                    year=None if year is None or pd.isna(year) else int(year),
                    genres=list(row.get("genres") or []),
                    score=score,
                    contributor=who,
                    why=self.why(item_id, liked_all, profile.top_genres),
                    position=pos,
                )
            )
        return out

    # ------------------------------------------------------------------------------------------------
    # the store
    # ------------------------------------------------------------------------------------------------
    def ensure_user(self, user_id: str, kind: str) -> None:
        with self.Session() as s, s.begin():
            self._ensure_user(s, user_id, kind)
        self._stored_users.add(user_id)

    def _ensure_user(self, s, user_id: str, kind: str) -> None:
        """`store.ensure_user` inside the caller's transaction, skipped for a user this process already stored
        (the app never deletes users): two statements less per logged event. The caller marks the user as
        stored (`self._stored_users.add`) once its transaction committed."""
        from annotation import store

        if user_id not in self._stored_users:
            store.ensure_user(s, user_id, kind=kind)

    def create_new_user(self, liked: Sequence[str], min_likes: int = 3) -> str:
        """Onboard a new user from the items they picked: create the user and log a like for each pick."""
        liked = list(dict.fromkeys(liked))
        if len(liked) < min_likes:
            raise bad("liked", f"at least {min_likes} distinct items", f"{len(liked)} items")
        for item_id in liked:
            self.item(item_id)
        from annotation import store

        user_id = f"new-{uuid.uuid4().hex[:8]}"
        with self.Session() as s, s.begin():
            store.ensure_user(s, user_id, kind="new")
            for item_id in liked:
                store.record_feedback(s, new_event_id(), user_id, item_id, "like")
        return user_id

    def record_impression(
        self,
        user_id: str,
        slate: Sequence[SlateRow],
        model_choice: str,
        *,
        event_id: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> int:
        """Log the slate shown; returns the impression id that feedback refers to."""
        from annotation import store

        model_a, model_b = self.parse_model(model_choice)
        kind = "dataset" if user_id in self._dataset_users else "new"
        with self.Session() as s, s.begin():
            self._ensure_user(s, user_id, kind)
            imp = store.record_impression(
                s,
                event_id or new_event_id(),
                user_id,
                model_a if model_b is None else (model_a, model_b),
                [r.item_id for r in slate],
                contributors=[r.contributor for r in slate] if model_b is not None else None,
                context=context,
            )
        self._stored_users.add(user_id)
        return int(imp.id)

    def record_feedback(
        self, user_id: str, item_id: str, kind: str, impression_id: int | None = None, *, event_id: str | None = None
    ) -> int:
        """Log one like / dislike / click / skip; returns the feedback event's row id."""
        from annotation import errors as aerr
        from annotation import store

        kind = "click" if kind == "open" else kind
        if kind not in FEEDBACK_KINDS:
            raise bad("kind", f"one of {list(FEEDBACK_KINDS)} (or 'open')", kind)
        self.user_kind(user_id)
        self.item(item_id)
        try:
            with self.Session() as s, s.begin():
                if user_id in self._dataset_users:
                    self._ensure_user(s, user_id, "dataset")
                row = store.record_feedback(s, event_id or new_event_id(), user_id, item_id, kind,
                                            impression_id=impression_id)
        except (aerr.AnnotationError,) as exc:
            raise AppInputError(str(exc)) from exc
        self._stored_users.add(user_id)
        return int(row.id)

    def counts(self) -> dict[str, int]:
        """Row counts of the store's tables, for the Status tab."""
        from sqlalchemy import func, select

        from annotation import models as m

        tables = {
            "users": m.User, "impressions": m.Impression, "feedback events": m.FeedbackEvent,
            "generated assets": m.GeneratedAsset, "pair tasks": m.PairTask, "preference labels": m.PreferenceLabel,
            "annotators": m.Annotator, "items": m.Item,
        }
        with self.ReadSession() as s:
            return {name: int(s.scalar(select(func.count()).select_from(t)) or 0) for name, t in tables.items()}

    # ------------------------------------------------------------------------------------------------
    # generation: covers and captions, recorded in the store with their provenance
    # ------------------------------------------------------------------------------------------------
    def item_info(self, item_id: str):
        from generation.prompts import ItemInfo

        row = self.item(item_id)
        year = row.get("year")
        return ItemInfo(
            item_id=str(row["item_id"]),
            title=str(row["title"]),
            year=None if year is None or pd.isna(year) else int(year),
            genres=list(row.get("genres") or []),
            text=str(row.get("text") or ""),
        )

    def _record_assets(self, assets: Sequence[Any]) -> list[dict[str, Any]]:
        """Record generated assets (one transaction); returns their dicts with the store's `asset_id`."""
        from sqlalchemy import func, or_, select

        from annotation import store
        from annotation.models import GeneratedAsset

        rows = [asset.to_dict() if hasattr(asset, "to_dict") else dict(asset) for asset in assets]
        out = []
        with self.Session() as s, s.begin():
            # files served from the asset cache may have been recorded before for the same user: reuse the
            # first such row (stable asset ids); one query for the whole batch
            hits = [d for d in rows if d.get("cache_hit")]
            recorded: dict[tuple[str, str | None, str], int] = {}
            if hits:
                users = {d.get("user_id") for d in hits}
                whose = [GeneratedAsset.user_id.in_(users - {None})] + ([GeneratedAsset.user_id.is_(None)] if None in users else [])
                for content_hash, user_id, kind, asset_id in s.execute(
                    select(GeneratedAsset.content_hash, GeneratedAsset.user_id, GeneratedAsset.kind,
                           func.min(GeneratedAsset.id))
                    .where(GeneratedAsset.content_hash.in_({d["content_hash"] for d in hits}), or_(*whose))
                    .group_by(GeneratedAsset.content_hash, GeneratedAsset.user_id, GeneratedAsset.kind)
                ):
                    recorded[(content_hash, user_id, kind)] = int(asset_id)
            ensured: set[str] = set()
            for data in rows:
                known = recorded.get((data["content_hash"], data.get("user_id"), data["kind"])) \
                    if data.get("cache_hit") else None
                if known is not None:
                    out.append({**data, "asset_id": known})
                    continue
                user_id = data.get("user_id")
                if user_id is not None and user_id not in ensured:
                    self._ensure_user(s, user_id, "dataset" if user_id in self._dataset_users else "new")
                    ensured.add(user_id)
                row = store.record_asset(s, data, event_id=new_event_id())
                if data.get("cache_hit"):
                    recorded[(data["content_hash"], user_id, data["kind"])] = int(row.id)
                out.append({**data, "asset_id": int(row.id)})
        self._stored_users.update(ensured)
        return out

    def known_assets(self, user_id: str, item_ids: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """The latest personalized cover and caption already made for this user, per (item_id, kind)."""
        from sqlalchemy import select

        from annotation.models import GeneratedAsset

        with self.ReadSession() as s:
            rows = s.execute(
                select(GeneratedAsset.id, GeneratedAsset.item_id, GeneratedAsset.kind, GeneratedAsset.path,
                       GeneratedAsset.text, GeneratedAsset.fallback, GeneratedAsset.generator)
                .where(GeneratedAsset.user_id == user_id, GeneratedAsset.item_id.in_(list(item_ids)),
                       GeneratedAsset.seed == 0)  # the slate assets (Create variants use other seeds)
                .order_by(GeneratedAsset.id)
            ).all()
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:  # later rows win: the newest asset per (item, kind)
            out[(row.item_id, row.kind)] = {"asset_id": int(row.id), "path": row.path, "text": row.text,
                                            "fallback": bool(row.fallback), "generator": row.generator}
        return out

    def generate_later(self, user_id: str, item_ids: Sequence[str], profile) -> int:
        """Queue the cover and caption of each item for `user_id` on the background worker, as one job; returns
        how many were queued (items already queued are skipped). The worker records them like any other asset."""
        with self._lock:
            todo = [i for i in dict.fromkeys(item_ids) if (user_id, i) not in self._pending]
            self._pending.update((user_id, i) for i in todo)
        if todo:
            self._background.submit(self._generate_pending, user_id, todo, profile)
        return len(todo)

    def _generate_pending(self, user_id: str, item_ids: Sequence[str], profile) -> None:
        """The background job: make each item's cover and caption, recorded one transaction per batch. A batch
        closes once BACKGROUND_BATCH_S of generating has passed, so a slow model's covers still appear one by
        one, while quick ones (the fallbacks, milliseconds each) cost one write per slate, not two per item."""
        todo = list(item_ids)
        while todo:
            batch: list[str] = []
            assets: list[Any] = []
            deadline = time.monotonic() + BACKGROUND_BATCH_S
            try:
                while todo and (not batch or time.monotonic() < deadline):
                    self._wait_for_quiet()
                    batch.append(todo.pop(0))
                    assets.extend(self._item_assets(batch[-1], profile))
                self._record_assets(assets)
            except Exception:  # noqa: BLE001 - a background job has nobody to raise to: log it
                log.exception("background generation of %s for user %s failed", batch, user_id)
            finally:
                with self._lock:
                    self._pending.difference_update((user_id, i) for i in batch)

    @contextlib.contextmanager
    def interactive(self):
        """Mark an interactive request (a slate, a like) being answered: background generation gives way."""
        with self._quiet:
            self._requests += 1
        try:
            yield
        finally:
            with self._quiet:
                self._requests -= 1
                if not self._requests:
                    self._quiet.notify_all()

    def _wait_for_quiet(self) -> None:
        """Before each background item: wait (at most BACKGROUND_YIELD_S, so that a steady stream of requests
        cannot starve it) until no interactive request is being answered."""
        with self._quiet:
            self._quiet.wait_for(lambda: not self._requests, timeout=BACKGROUND_YIELD_S)

    def _item_assets(self, item_id: str, profile) -> list[Any]:
        """[cover, caption] of one item, personalized for `profile` (generated or from the asset cache)."""
        info = self.item_info(item_id)
        return [self._cover_generate(info, profile, n=1, seed=0)[0], self._caption_generate(info, profile, seed=0)]

    def slate_assets(self, item_ids: Sequence[str], profile=None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(cover, caption) for each item, personalized for `profile`, recorded in one transaction."""
        assets = [asset for item_id in item_ids for asset in self._item_assets(item_id, profile)]
        recorded = self._record_assets(assets)
        return list(zip(recorded[0::2], recorded[1::2]))

    def covers_for(
        self,
        item_id: str,
        profile=None,
        *,
        n: int = 1,
        seed: int = 0,
        alpha: float = 0.5,
        callback: Callable[[int, int], Any] | None = None,
    ) -> list[dict[str, Any]]:
        """`n` covers of `item_id` (personalized for `profile`, generic when None), generated or cached, recorded."""
        n = _check_int("n", n, 1, N_VARIANTS_MAX)
        seed = _check_int("seed", seed, 0, 2**31 - 1)
        assets = self._cover_generate(self.item_info(item_id), profile, n=n, seed=seed, alpha=alpha, callback=callback)
        return self._record_assets(assets)

    def caption_for(self, item_id: str, profile=None, *, seed: int = 0) -> dict[str, Any]:
        """A caption of `item_id` for `profile` (generic when None), generated or cached, recorded."""
        seed = _check_int("seed", seed, 0, 2**31 - 1)
        asset = self._caption_generate(self.item_info(item_id), profile, seed=seed)
        return self._record_assets([asset])[0]

    def create_variants(
        self,
        user_id: str,
        item_id: str,
        n: int,
        *,
        liked: Sequence[str] = (),
        seed: int = 0,
        callback: Callable[[int, int], Any] | None = None,
    ) -> list[dict[str, Any]]:
        """`n` cover variants for the Create tab: personalized and generic mixed, order shuffled by `seed`.

        The first ceil(n/2) are personalized (seeds seed..), the rest generic (seeds seed+1000..); a seeded
        shuffle fixes the order shown, so the person cannot tell them apart by position.
        """
        n = _check_int("n", n, 2, N_VARIANTS_MAX)
        seed = _check_int("seed", seed, 0, 2**31 - 1)
        profile = self.profile(user_id, liked)
        n_pers = (n + 1) // 2

        def step(offset: int, count: int) -> Callable[[int, int], Any] | None:
            if callback is None:
                return None
            return lambda done, total: callback(offset + done * count // max(total, 1), n)

        personal = self.covers_for(item_id, profile, n=n_pers, seed=seed, callback=step(0, n_pers))
        generic = self.covers_for(item_id, None, n=n - n_pers, seed=seed + 1000, callback=step(n_pers, n - n_pers))
        variants = personal + generic
        random.Random(seed).shuffle(variants)
        return variants

    def record_pick(
        self, user_id: str, variants: Sequence[dict[str, Any]], best: int, *, time_spent_ms: int | None = None
    ) -> list[int]:
        """The person picked `variants[best]`: one preference label "A" (best) against each other variant.

        The labels are given by the annotator `user:<user_id>`; returns the pair ids.
        """
        from annotation import store

        if not variants:
            raise bad("variants", "generated variants (press Generate first)", [])
        best = _check_int("best", best, 0, len(variants) - 1)
        winner = variants[best]["asset_id"]
        pair_ids = []
        with self.Session() as s, s.begin():
            annotator = store.get_or_create_annotator(s, f"user:{user_id}"[:80])
            for i, other in enumerate(variants):
                if i == best:
                    continue
                pair = store.create_pair(s, winner, other["asset_id"], target_user_id=user_id, kind="cover")
                # create_pair returns an existing pair for the same two assets, possibly stored as (other, winner)
                choice = "A" if pair.asset_a_id == winner else "B"
                store.record_preference(s, new_event_id(), pair.id, annotator.id, choice, time_spent_ms=time_spent_ms)
                pair_ids.append(int(pair.id))
        return pair_ids

    # ------------------------------------------------------------------------------------------------
    # labeling
    # ------------------------------------------------------------------------------------------------
    def sign_in(self, name: str) -> int:
        """The annotator id for `name` (created on first sign-in)."""
        from annotation import store

        name = _check_text("name", name, max_len=80)
        with self.Session() as s, s.begin():
            return int(store.get_or_create_annotator(s, name).id)

    def make_label_pairs(self, n: int, *, seed: int = 0, kinds: Sequence[str] = ("cover", "caption")) -> int:
        """Fill the labeling queue: for `n` random (dataset user, recommended item), a personalized vs generic
        cover and caption pair (sides in a seeded random order). Returns the number of pairs created."""
        from annotation import store

        n = _check_int("n", n, 1, 200)
        rng = random.Random(seed)
        users = self.user_ids
        created = 0
        for _ in range(n):
            user_id = rng.choice(users)
            profile = self.profile(user_id)
            top = self.rank(self.default_model, user_id, 10)
            if not top:
                continue
            item_id = rng.choice(top)[0]
            for kind in kinds:
                if kind == "cover":
                    mine = self.covers_for(item_id, profile, seed=rng.randrange(2**20))[0]
                    generic = self.covers_for(item_id, None, seed=rng.randrange(2**20))[0]
                else:
                    mine = self.caption_for(item_id, profile)
                    generic = self.caption_for(item_id, None)
                a, b = (mine, generic) if rng.random() < 0.5 else (generic, mine)
                if a["asset_id"] == b["asset_id"]:
                    continue
                with self.Session() as s, s.begin():
                    store.create_pair(s, a["asset_id"], b["asset_id"], target_user_id=user_id, kind=kind)
                created += 1
        return created

    @staticmethod
    def _side(asset) -> dict[str, Any]:
        return {"asset_id": int(asset.id), "kind": asset.kind, "path": asset.path, "text": asset.text,
                "personalized": bool(asset.personalized), "generator": asset.generator}

    def next_pair(self, annotator_id: int) -> dict[str, Any] | None:
        """The annotator's next pair as plain data (None when the queue has nothing for them)."""
        from annotation import store

        with self.Session() as s, s.begin():
            pair = store.next_pair(s, annotator_id, overlap=self.settings.label_overlap)
            if pair is None:
                return None
            if pair.kind == "slate":
                a = {"kind": "slate", "text": ", ".join(pair.impression_a.item_ids), "path": None}
                b = {"kind": "slate", "text": ", ".join(pair.impression_b.item_ids), "path": None}
                item_id = None
            else:
                a, b = self._side(pair.asset_a), self._side(pair.asset_b)
                item_id = pair.asset_a.item_id
            return {"pair_id": int(pair.id), "kind": pair.kind, "a": a, "b": b,
                    "target_user_id": pair.target_user_id, "item_id": item_id}

    def label_progress(self, annotator_id: int) -> tuple[int, int]:
        """(done, remaining) for an annotator: their current labels, and pairs still open to them."""
        from sqlalchemy import exists, func, select

        from annotation.models import PairAssignment, PairTask, PreferenceLabel

        with self.ReadSession() as s:
            done = s.scalar(
                select(func.count()).select_from(PreferenceLabel).where(
                    PreferenceLabel.annotator_id == annotator_id, PreferenceLabel.is_current.is_(True),
                    PreferenceLabel.choice.is_not(None))
            ) or 0
            mine = exists().where(PairAssignment.pair_id == PairTask.id, PairAssignment.annotator_id == annotator_id,
                                  PairAssignment.completed_at.is_not(None))
            remaining = s.scalar(
                select(func.count()).select_from(PairTask).where(
                    PairTask.slots_taken < self.settings.label_overlap, ~mine)
            ) or 0
        return int(done), int(remaining)

    def record_label(self, annotator_id: int, pair_id: int, choice: str, *, time_spent_ms: int | None = None,
                     event_id: str | None = None) -> int:
        """Store a preference label; returns its row id."""
        from annotation import errors as aerr
        from annotation import store

        if choice not in LABEL_CHOICES:
            raise bad("choice", f"one of {list(LABEL_CHOICES)}", choice)
        try:
            with self.Session() as s, s.begin():
                row = store.record_preference(s, event_id or new_event_id(), int(pair_id), annotator_id, choice,
                                              time_spent_ms=time_spent_ms)
                return int(row.id)
        except aerr.AnnotationError as exc:
            raise AppInputError(str(exc)) from exc

    def undo_label(self, annotator_id: int) -> int | None:
        """Clear the annotator's most recent label; returns the pair id handed back (None: nothing to undo)."""
        from annotation import store

        with self.Session() as s, s.begin():
            row = store.undo_last_preference(s, new_event_id(), annotator_id)
            return None if row is None else int(row.pair_id)

    # ------------------------------------------------------------------------------------------------
    # retraining from the logs
    # ------------------------------------------------------------------------------------------------
    def retrain(self, name: str) -> dict[str, Any]:
        """Retrain `name` on the dataset plus the app's logged feedback, swap it in, cache it on disk."""
        from annotation import store
        from recommenders.training import train_model

        if name not in self.models:
            raise bad("model", f"one of {self.model_names}", name)
        with self.ReadSession() as s:
            extra = store.interactions_frame(s)
        start = time.perf_counter()
        model = train_model(self.dataset, name, features=self.features or None, extra_interactions=extra)
        seconds = time.perf_counter() - start
        _save_model(model, self.settings.data_dir / "models", name, self.dataset, extra_rows=len(extra))
        with self._lock:
            self.models[name] = model
        return {"model": name, "extra_interactions": int(len(extra)), "seconds": round(seconds, 2)}

    # ------------------------------------------------------------------------------------------------
    # status
    # ------------------------------------------------------------------------------------------------
    def status_sections(self) -> list[tuple[str, list[tuple[str, str, str]]]]:
        """What is loaded and how to enable what is not: the Status tab's content."""
        st = self.settings
        cover_note = (
            "real model"
            if not self.covers.uses_fallback
            else "typographic fallback. To enable: set VITRINE_COVER_MODEL to a local diffusers pipeline dir, "
            "or allow downloads with VITRINE_ALLOW_NETWORK=1. "
            + (f"Reason: {self.covers.unavailable_reason}" if self.covers.unavailable_reason else "")
        )
        caption_reason = getattr(self.captions, "unavailable_reason", None)
        caption_note = (
            "real model"
            if not self.captions.uses_fallback
            else "template fallback. To enable: set VITRINE_CAPTION_MODEL to a local causal-LM dir, "
            "or allow downloads with VITRINE_ALLOW_NETWORK=1. " + (f"Reason: {caption_reason}" if caption_reason else "")
        )
        models = [
            (name, "served" + (" (default)" if name == self.default_model else ""), type(m).__name__)
            for name, m in self.models.items()
        ]
        gen = [
            ("covers", _generator_id(self.covers), cover_note),
            ("captions", _generator_id(self.captions), caption_note),
            ("device", getattr(self.covers, "device", st.device), f"requested: {st.device}"),
            ("text features", "loaded" if self._text is not None else "none",
             f"{self._text.shape}" if self._text is not None else "the 'why' uses genres only"),
        ]
        backend = "SQLite (WAL)" if st.db_is_sqlite else "PostgreSQL"
        db = [("backend", backend, _redact(st.database_url))]
        db += [(name, str(count), "") for name, count in self.counts().items()]
        inter = self.dataset.interactions
        data = [
            ("dataset", self.dataset.name, str(st.data_dir)),
            ("items", str(len(self.dataset.items)), ""),
            ("users", str(len(self.dataset.users)), ""),
            ("interactions", str(len(inter)), ""),
        ]
        timing = [(step, f"{sec:.2f} s", "") for step, sec in self.startup_s.items()]
        notes = [("note", n, "") for n in self.notes]
        return [("Recommenders", models), ("Generation", gen), ("Database", db), ("Dataset", data),
                ("Start-up", timing + notes)]


def _generator_id(generator) -> str:
    return "fallback" if generator.uses_fallback else str(generator.model)


def _redact(url: str) -> str:
    """A DB URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return "(unparseable URL)"


# ----------------------------------------------------------------------------------------------------
# start-up
# ----------------------------------------------------------------------------------------------------
def _model_key(dataset, name: str) -> dict[str, Any]:
    return {"dataset": dataset.name, "content": dataset.content_hash(), "interactions": int(len(dataset.interactions)),
            "model": name}


def _save_model(model, models_dir: Path, name: str, dataset, extra_rows: int = 0) -> None:
    folder = models_dir / name
    model.save(folder)
    meta = {**_model_key(dataset, name), "extra_rows": int(extra_rows), "saved_at": time.time()}
    (models_dir / f"{name}.trained_on.json").write_text(json.dumps(meta, indent=1))


def train_or_load(dataset, name: str, features: dict[str, np.ndarray] | None, models_dir: Path, say=log.info):
    """Load `models_dir/<name>/` when it was trained on this dataset, else train it and cache it there."""
    from recommenders.models import load_model
    from recommenders.training import train_model

    meta_path = models_dir / f"{name}.trained_on.json"
    folder = models_dir / name
    if meta_path.is_file() and folder.is_dir():
        try:
            meta = json.loads(meta_path.read_text())
            if {k: meta.get(k) for k in _model_key(dataset, name)} == _model_key(dataset, name):
                model = load_model(folder)
                say(f"model {name}: loaded from {folder}")
                return model
            say(f"model {name}: cache in {folder} was trained on other data, retraining")
        except (OSError, ValueError, KeyError) as exc:
            say(f"model {name}: cache in {folder} unreadable ({exc}), retraining")
    start = time.perf_counter()
    model = train_model(dataset, name, features=features or None)
    models_dir.mkdir(parents=True, exist_ok=True)
    _save_model(model, models_dir, name, dataset)
    say(f"model {name}: trained in {time.perf_counter() - start:.1f} s, cached in {folder}")
    return model


def build_services(
    settings: Settings,
    *,
    dataset=None,
    features: dict[str, np.ndarray] | None = None,
    model_names: Sequence[str] | None = None,
    say: Callable[[str], Any] = log.info,
) -> Services:
    """The start-up sequence; see the module docstring. `dataset`/`features`/`model_names` override for tests."""
    from annotation import store
    from annotation.db import make_engine, make_session_factory, upgrade

    timings: dict[str, float] = {}
    notes: list[str] = []

    @contextlib.contextmanager
    def timed(step: str):
        start = time.perf_counter()
        yield
        timings[step] = time.perf_counter() - start
        say(f"start-up: {step} {timings[step]:.2f} s")

    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with timed("database"):
        upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        session_factory = make_session_factory(engine)
    if dataset is None:
        from recommenders.data import load_dataset

        with timed("dataset"):
            dataset = load_dataset(settings.dataset, data_dir)
    if features is None:
        from recommenders.features import item_features

        with timed("features"):
            try:
                features = item_features(
                    dataset,
                    cache_dir=data_dir / "features",
                    text_model=settings.text_model,
                    image_model=settings.image_model if dataset.has_images else None,
                    allow_network=settings.allow_network,
                )
            except (LookupError, ValueError, OSError) as exc:
                notes.append(f"item features unavailable ({exc}); content models are not served")
                features = {}
    from recommenders.models import DEFAULT_MODEL, DEFAULT_MODEL_WITHOUT_FEATURES, FEATURE_MODELS, MODEL_NAMES

    default = settings.model or DEFAULT_MODEL
    if default in FEATURE_MODELS and "text" not in features:
        if settings.model is not None:
            raise bad("VITRINE_MODEL", "a model that needs no item features (they are unavailable)", default)
        notes.append(f"default model {default} needs text features; serving {DEFAULT_MODEL_WITHOUT_FEATURES}")
        default = DEFAULT_MODEL_WITHOUT_FEATURES
    if default not in MODEL_NAMES:
        raise bad("VITRINE_MODEL", f"one of {list(MODEL_NAMES)}", default)
    names = list(dict.fromkeys([default, *(model_names if model_names is not None else settings.extra_models)]))
    models: dict[str, Any] = {}
    with timed("models"):
        for name in names:
            try:
                models[name] = train_or_load(dataset, name, features, data_dir / "models", say=say)
            except (ValueError, LookupError) as exc:
                if name == default:
                    raise
                notes.append(f"model {name} not served: {exc}")
    with timed("catalog sync"):
        with session_factory() as s, s.begin():
            store.sync_items(s, dataset.items)
    from generation.captions import CaptionGenerator
    from generation.covers import CoverGenerator

    with timed("generators"):
        asset_dir = data_dir / "assets"
        covers = CoverGenerator(settings.cover_model, asset_dir, device=settings.device,
                                allow_network=settings.allow_network).load()
        captions = CaptionGenerator(settings.caption_model, asset_dir, device=settings.device,
                                    allow_network=settings.allow_network).load()
    if covers.uses_fallback:
        notes.append("covers: typographic fallback in use")
    if captions.uses_fallback:
        notes.append("captions: template fallback in use")
    return Services(
        settings=settings, dataset=dataset, features=features, models=models, default_model=default,
        engine=engine, Session=session_factory, covers=covers, captions=captions, startup_s=timings, notes=notes,
    )

