"""Generated assets: the cover and caption generators, their records in the store, and the background worker.

A slate never waits for a model: `Assets.known` returns what was already made for the visitor, the rest is
queued with `generate_later` and made by one background worker, which records its output in batches and gives
way to interactive requests (`interactive()`, applied once by the slate flow, see `app.slates`).

Slate assets (the personalized cover and caption shown on a card) are best-of-N choices when a `Learner`
(`app.preference`) is given: the worker makes N cover candidates (one prompt-policy arm each, seeds
SLATE_SEED .. SLATE_SEED + N - 1) and N caption candidates, records them all with params["best_of_n"] (and the
arm in params["policy"]), and the one ranked first is what `known` returns (`annotation.reads.shown_assets`);
the shown one against another candidate becomes a label pair. Without a learner, or for a generic (profile-less)
slate, one cover and one caption are made with the fixed seed `SLATE_SEED`, which `known` also finds. Create
variants and admin label pairs draw other seeds.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import sessionmaker

from app import checks
from app.catalog import Catalog
from app.events import EventLog
from app.zerogpu import gpu

if TYPE_CHECKING:  # pragma: no cover - types only
    from app.preference import Learner
    from generation.captions import CaptionGenerator
    from generation.covers import CoverGenerator
    from generation.profile import UserProfile

log = logging.getLogger("vitrine")

__all__ = ["Assets", "SLATE_SEED", "BACKGROUND_BATCH_S", "BACKGROUND_BATCH_ASSETS", "BACKGROUND_YIELD_S"]

SLATE_SEED = 0  # the seed of slate assets (see the module docstring)
BACKGROUND_BATCH_S = 0.5  # the background worker records what it made at least this often
BACKGROUND_BATCH_ASSETS = 16  # ... and at most this many assets per transaction, so that one write holds the
# database (SQLite's single writer) briefly even when best-of-N makes several candidates per item
BACKGROUND_YIELD_S = 0.5  # the longest the background worker waits for interactive requests to finish
MAX_QUEUED = 400  # items waiting for the background worker (50 slates of 8); past it the oldest jobs are dropped

Asset = dict[str, Any]  # a recorded asset: the generator's fields plus the store's "asset_id"


class Assets:
    """Covers and captions for items, generated (or served from the asset cache) and recorded with provenance."""

    def __init__(self, catalog: Catalog, events: EventLog, covers: "CoverGenerator", captions: "CaptionGenerator",
                 ReadSession: sessionmaker, learner: "Learner | None" = None) -> None:
        self.catalog = catalog
        self.learner = learner
        self.events = events
        self.covers = covers
        self.captions = captions
        self.ReadSession = ReadSession
        self._cover_generate = gpu(covers.generate, duration=120)
        self._caption_generate = gpu(captions.generate, duration=60)
        self.max_queued = MAX_QUEUED
        self._jobs: deque[tuple[str, list[str], UserProfile | None]] = deque()  # waiting, oldest first
        self._pending: set[tuple[str, str]] = set()  # (user_id, item_id) queued or being made
        self._work = threading.Condition(threading.Lock())
        self._closed = False
        self.dropped = 0  # items dropped from a full queue since start (the Status tab shows it)
        self._worker = threading.Thread(target=self._run, name="vitrine-assets", daemon=True)
        self._worker.start()
        self._requests = 0  # interactive requests being answered; the background worker waits for none
        self._quiet = threading.Condition(threading.Lock())

    def close(self) -> None:
        """Stop the background worker (queued jobs are dropped)."""
        with self._work:
            self._closed = True
            self._jobs.clear()
            self._work.notify_all()

    def file(self, path_or_key: str | None) -> str | None:
        """The local file of a recorded cover (its blob key fetched into this machine's cache on a miss, or an
        older row's path), to show it; None when the store lacks it."""
        found = self.covers.store.local_path(path_or_key)
        return None if found is None else str(found)

    @property
    def public_dir(self) -> Path:
        """The only folder of generated files to serve: cover images (provenance files stay private)."""
        return self.covers.store.public_dir

    @property
    def uses_fallback(self) -> dict[str, bool]:
        return {"covers": self.covers.uses_fallback, "captions": self.captions.uses_fallback}

    # -- the gate between interactive requests and the background worker -------------------------------------
    @contextlib.contextmanager
    def interactive(self) -> Iterator[None]:
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

    # -- recording --------------------------------------------------------------------------------------------
    def record(self, assets: Sequence[Any]) -> list[Asset]:
        """Record generated assets (one transaction); returns their dicts with the store's `asset_id`. A file
        served from the asset cache that was recorded before for the same user reuses that row."""
        from annotation import reads, store

        rows = [asset.to_dict() if hasattr(asset, "to_dict") else dict(asset) for asset in assets]
        key = lambda d: (d["content_hash"], d.get("user_id"), d["kind"])  # noqa: E731
        out = []
        callbacks = {}
        with self.events.Session() as s, s.begin():
            recorded = reads.recorded_asset_ids(s, [key(d) for d in rows if d.get("cache_hit")])
            for data in rows:
                known = recorded.get(key(data)) if data.get("cache_hit") else None
                if known is None:
                    if data.get("user_id") is not None and data["user_id"] not in callbacks:
                        callbacks[data["user_id"]] = self.events.ensure_user(s, data["user_id"])
                    known = int(store.record_asset(s, data, event_id=checks.new_event_id()).id)
                    if data.get("cache_hit"):
                        recorded[key(data)] = known
                out.append({**data, "asset_id": known})
        for done in callbacks.values():
            done()
        return out

    def known(self, user_id: str, item_ids: Sequence[str]) -> dict[tuple[str, str], Asset]:
        """The newest slate cover and caption already made for this user, per (item_id, kind)."""
        from annotation import reads

        with self.ReadSession() as s:
            return reads.shown_assets(s, user_id, item_ids, SLATE_SEED)

    # -- generating -------------------------------------------------------------------------------------------
    def _item_assets(self, item_id: str, profile: "UserProfile | None") -> list[Any]:
        """The slate assets of one item for `profile` (generated or from the asset cache): [cover, caption], or
        with a learner and a profile every best-of-N candidate, covers first, each with params["best_of_n"]."""
        info = self.catalog.item_info(item_id)
        if self.learner is None or profile is None:
            return [self._cover_generate(info, profile, n=1, seed=SLATE_SEED)[0],
                    self._caption_generate(info, profile, seed=SLATE_SEED)]
        from types import SimpleNamespace

        from generation.bestofn import caption_candidates, cover_candidates

        covers = cover_candidates(SimpleNamespace(generate=self._cover_generate), info, profile,
                                  self.learner.choose_arms(profile), seed=SLATE_SEED)
        for cover, params in zip(covers, self.learner.rank_covers(profile, covers)):
            cover.params = {**cover.params, **params}
        captions = caption_candidates(SimpleNamespace(generate=self._caption_generate), info, profile,
                                      n=self.learner.n, seed=SLATE_SEED)
        for caption, params in zip(captions, self.learner.rank_captions(profile, captions, info)):
            caption.params = {**caption.params, **params}
        return covers + captions

    @staticmethod
    def _pairs_of(recorded: Sequence[Asset]) -> list[tuple[str, int, int, str]]:
        """(kind, shown asset id, other asset id, item id): per item and kind, the shown candidate against one
        other shown-able candidate (a random one, seeded by the shown asset, so that pairs measure best-of-N
        against a random candidate)."""
        groups: dict[tuple[str, str], list[Asset]] = {}
        for asset in recorded:
            if isinstance((asset.get("params") or {}).get("best_of_n"), dict):
                groups.setdefault((asset["item_id"], asset["kind"]), []).append(asset)
        out = []
        for (item_id, kind), group in groups.items():
            shown = [a for a in group if a["params"]["best_of_n"].get("rank") == 0]
            others = list(dict.fromkeys(a["asset_id"] for a in group
                                        if a["params"]["best_of_n"].get("rank") not in (None, 0)))
            if shown and others:
                other = random.Random(shown[0]["asset_id"]).choice(others)
                out.append((kind, shown[0]["asset_id"], other, item_id))
        return out

    def _record_slate(self, assets: Sequence[Any], user_id: str | None) -> list[Asset]:
        """Record slate assets; with a learner, queue label pairs of their best-of-N candidates."""
        recorded = self.record(assets)
        if self.learner is not None and user_id is not None:
            pairs = self._pairs_of(recorded)
            if pairs:
                self.learner.queue_pairs(user_id, pairs)
        return recorded

    def slate_assets(self, item_ids: Sequence[str], profile: "UserProfile | None" = None) -> list[tuple[Asset, Asset]]:
        """(cover, caption) shown for each item, personalized for `profile`, made now and recorded in one
        transaction (every best-of-N candidate is recorded; the shown ones are returned)."""
        assets = [asset for item_id in item_ids for asset in self._item_assets(item_id, profile)]
        recorded = self._record_slate(assets, profile.user_id if profile is not None else None)
        out = []
        for item_id in item_ids:
            mine = [a for a in recorded if a["item_id"] == item_id]
            pick = {kind: next((a for a in mine if a["kind"] == kind
                                and (a.get("params") or {}).get("best_of_n", {"rank": 0}).get("rank") == 0), None)
                    for kind in ("cover", "caption")}
            out.append((pick["cover"], pick["caption"]))
        return out

    def generate_later(self, user_id: str, item_ids: Sequence[str], profile: "UserProfile | None") -> int:
        """Queue the slate cover and caption of each item for `user_id` on the background worker, as one job;
        returns how many were queued (items already queued are skipped). The queue is bounded: past `max_queued`
        items the oldest waiting jobs are dropped (a visitor who asks again queues them again)."""
        with self._work:
            todo = [i for i in dict.fromkeys(item_ids) if (user_id, i) not in self._pending]
            if not todo or self._closed:
                return 0
            self._pending.update((user_id, i) for i in todo)
            self._jobs.append((user_id, todo, profile))
            while len(self._pending) > self.max_queued and len(self._jobs) > 1:
                old_user, old_items, _ = self._jobs.popleft()
                self._pending.difference_update((old_user, i) for i in old_items)
                self.dropped += len(old_items)
                log.warning("asset queue full: dropped %d queued items of user %s", len(old_items), old_user)
            self._work.notify()
        return len(todo)

    @property
    def queued_items(self) -> int:
        """Items queued or being made right now."""
        with self._work:
            return len(self._pending)

    def pending(self, user_id: str, item_ids: Sequence[str]) -> list[str]:
        """Which of the items are still queued (or being made) for this user."""
        with self._work:
            return [i for i in item_ids if (user_id, i) in self._pending]

    def wait_for(self, user_id: str, item_ids: Sequence[str], timeout: float) -> bool:
        """Block until none of the items is queued for this user any more (made, dropped or failed), or until
        `timeout` seconds; True when none is left."""
        deadline = time.monotonic() + timeout
        with self._work:
            return self._work.wait_for(lambda: not any((user_id, i) in self._pending for i in item_ids),
                                       timeout=max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        """The background worker: one job at a time, oldest first, until `close`."""
        while True:
            with self._work:
                self._work.wait_for(lambda: self._jobs or self._closed)
                if self._closed:
                    return
                user_id, item_ids, profile = self._jobs.popleft()
            self._generate_pending(user_id, item_ids, profile)

    def _generate_pending(self, user_id: str, item_ids: Sequence[str], profile: "UserProfile | None") -> None:
        """The background job: make each item's cover and caption (or best-of-N candidates), recorded one
        transaction per batch. A batch closes once BACKGROUND_BATCH_S of generating has passed, so a slow model's
        covers still appear one by one, while quick ones (the fallbacks, milliseconds each) cost one write per
        slate, not two per item; and once it holds BACKGROUND_BATCH_ASSETS assets, so each write is short."""
        todo = list(item_ids)
        while todo:
            batch: list[str] = []
            assets: list[Any] = []
            deadline = time.monotonic() + BACKGROUND_BATCH_S
            try:
                while todo and (not batch or (time.monotonic() < deadline and len(assets) < BACKGROUND_BATCH_ASSETS)):
                    self._wait_for_quiet()
                    batch.append(todo.pop(0))
                    assets.extend(self._item_assets(batch[-1], profile))
                self._record_slate(assets, user_id if profile is not None else None)
            except Exception:  # noqa: BLE001 - a background job has nobody to raise to: log it
                log.exception("background generation of %s for user %s failed", batch, user_id)
            finally:
                with self._work:
                    self._pending.difference_update((user_id, i) for i in batch)
                    self._work.notify_all()

    def covers_for(self, item_id: str, profile: "UserProfile | None" = None, *, n: int = 1, seed: int = SLATE_SEED,
                   alpha: float = 0.5, callback: Callable[[int, int], Any] | None = None) -> list[Asset]:
        """`n` covers of `item_id` (personalized for `profile`, generic when None), generated or cached, recorded."""
        n = checks.integer("n", n, 1, checks.N_VARIANTS_MAX)
        seed = checks.integer("seed", seed, 0, checks.SEED_MAX)
        made = self._cover_generate(self.catalog.item_info(item_id), profile, n=n, seed=seed, alpha=alpha,
                                    callback=callback)
        return self.record(made)

    def caption_for(self, item_id: str, profile: "UserProfile | None" = None, *, seed: int = SLATE_SEED) -> Asset:
        """A caption of `item_id` for `profile` (generic when None), generated or cached, recorded."""
        seed = checks.integer("seed", seed, 0, checks.SEED_MAX)
        return self.record([self._caption_generate(self.catalog.item_info(item_id), profile, seed=seed)])[0]

    def create_variants(self, profile: "UserProfile", item_id: str, n: int, *, seed: int = 0,
                        callback: Callable[[int, int], Any] | None = None) -> list[Asset]:
        """`n` cover variants for the Create tab: personalized and generic mixed, order shuffled by `seed`.

        The first ceil(n/2) are personalized (seeds seed..), the rest generic (seeds seed+1000..); a seeded
        shuffle fixes the order shown, so the person cannot tell them apart by position.
        """
        n = checks.integer("n", n, 2, checks.N_VARIANTS_MAX)
        seed = checks.integer("seed", seed, 0, checks.SEED_MAX)
        n_pers = (n + 1) // 2

        def step(offset: int, count: int) -> Callable[[int, int], Any] | None:
            if callback is None:
                return None
            return lambda done, total: callback(offset + done * count // max(total, 1), n)

        if self.learner is not None:
            # each personalized variant carries a prompt-policy arm, so that the pick teaches the policy
            personal = self._policy_covers(item_id, profile, n_pers, seed, step(0, n_pers))
        else:
            personal = self.covers_for(item_id, profile, n=n_pers, seed=seed, callback=step(0, n_pers))
        generic = self.covers_for(item_id, None, n=n - n_pers, seed=seed + 1000, callback=step(n_pers, n - n_pers))
        variants = personal + generic
        random.Random(seed).shuffle(variants)
        if self.learner is not None and personal and generic and personal[0]["asset_id"] != generic[0]["asset_id"]:
            # the labeling queue fills itself from Create variants too: a personalized against a generic one
            self.learner.queue_pairs(profile.user_id, [("cover", personal[0]["asset_id"], generic[0]["asset_id"],
                                                        item_id)])
        return variants

    def _policy_covers(self, item_id: str, profile: "UserProfile", n: int, seed: int,
                       callback: Callable[[int, int], Any] | None) -> list[Asset]:
        """`n` covers of `item_id` for `profile`, one prompt-policy arm each (seeds seed..), recorded."""
        from types import SimpleNamespace

        from generation.bestofn import cover_candidates

        made = 0

        def generate(*args: Any, **kwargs: Any) -> list[Any]:
            nonlocal made
            out = self._cover_generate(*args, **kwargs)
            made += 1
            if callback is not None:
                callback(made, n)
            return out

        covers = cover_candidates(SimpleNamespace(generate=generate), self.catalog.item_info(item_id), profile,
                                  self.learner.choose_arms(profile, n), seed=seed)
        return self.record(covers)


def gated(method: Callable) -> Callable:
    """Run a method of an object with an `assets: Assets` attribute as an interactive request."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        with self.assets.interactive():
            return method(self, *args, **kwargs)

    return wrapper

