"""Generated assets: the cover and caption generators, their records in the store, and the background worker.

A slate never waits for a model: `Assets.known` returns what was already made for the visitor, the rest is
queued with `generate_later` and made by one background worker, which records its output in batches and gives
way to interactive requests (`interactive()`, applied once by the slate flow, see `app.slates`).

Slate assets (the personalized cover and caption shown on a card) are made with the fixed seed `SLATE_SEED`,
so the asset cache serves every later visit and `known` finds them by that seed; Create variants and label
pairs draw other seeds.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import sessionmaker

from app import checks
from app.catalog import Catalog
from app.events import EventLog
from app.zerogpu import gpu

if TYPE_CHECKING:  # pragma: no cover - types only
    from generation.captions import CaptionGenerator
    from generation.covers import CoverGenerator
    from generation.profile import UserProfile

log = logging.getLogger("vitrine")

__all__ = ["Assets", "SLATE_SEED", "BACKGROUND_BATCH_S", "BACKGROUND_YIELD_S"]

SLATE_SEED = 0  # the seed of slate assets (see the module docstring)
BACKGROUND_BATCH_S = 0.5  # the background worker records what it made at least this often
BACKGROUND_YIELD_S = 0.5  # the longest the background worker waits for interactive requests to finish

Asset = dict[str, Any]  # a recorded asset: the generator's fields plus the store's "asset_id"


class Assets:
    """Covers and captions for items, generated (or served from the asset cache) and recorded with provenance."""

    def __init__(self, catalog: Catalog, events: EventLog, covers: "CoverGenerator", captions: "CaptionGenerator",
                 ReadSession: sessionmaker) -> None:
        self.catalog = catalog
        self.events = events
        self.covers = covers
        self.captions = captions
        self.ReadSession = ReadSession
        self._cover_generate = gpu(covers.generate, duration=120)
        self._caption_generate = gpu(captions.generate, duration=60)
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vitrine-assets")
        self._pending: set[tuple[str, str]] = set()  # (user_id, item_id) queued for background generation
        self._lock = threading.Lock()
        self._requests = 0  # interactive requests being answered; the background worker waits for none
        self._quiet = threading.Condition(threading.Lock())

    def close(self) -> None:
        """Stop the background worker (queued jobs are dropped)."""
        self._background.shutdown(wait=False, cancel_futures=True)

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
        callbacks = []
        with self.events.Session() as s, s.begin():
            recorded = reads.recorded_asset_ids(s, [key(d) for d in rows if d.get("cache_hit")])
            for data in rows:
                known = recorded.get(key(data)) if data.get("cache_hit") else None
                if known is None:
                    if data.get("user_id") is not None:
                        callbacks.append(self.events.ensure_user(s, data["user_id"]))
                    known = int(store.record_asset(s, data, event_id=checks.new_event_id()).id)
                    if data.get("cache_hit"):
                        recorded[key(data)] = known
                out.append({**data, "asset_id": known})
        for done in callbacks:
            done()
        return out

    def known(self, user_id: str, item_ids: Sequence[str]) -> dict[tuple[str, str], Asset]:
        """The newest slate cover and caption already made for this user, per (item_id, kind)."""
        from annotation import reads

        with self.ReadSession() as s:
            return reads.latest_assets(s, user_id, item_ids, SLATE_SEED)

    # -- generating -------------------------------------------------------------------------------------------
    def _item_assets(self, item_id: str, profile: "UserProfile | None") -> list[Any]:
        """[cover, caption] of one item, personalized for `profile` (generated or from the asset cache)."""
        info = self.catalog.item_info(item_id)
        return [self._cover_generate(info, profile, n=1, seed=SLATE_SEED)[0],
                self._caption_generate(info, profile, seed=SLATE_SEED)]

    def slate_assets(self, item_ids: Sequence[str], profile: "UserProfile | None" = None) -> list[tuple[Asset, Asset]]:
        """(cover, caption) for each item, personalized for `profile`, made now and recorded in one transaction."""
        assets = [asset for item_id in item_ids for asset in self._item_assets(item_id, profile)]
        recorded = self.record(assets)
        return list(zip(recorded[0::2], recorded[1::2]))

    def generate_later(self, user_id: str, item_ids: Sequence[str], profile: "UserProfile | None") -> int:
        """Queue the slate cover and caption of each item for `user_id` on the background worker, as one job;
        returns how many were queued (items already queued are skipped)."""
        with self._lock:
            todo = [i for i in dict.fromkeys(item_ids) if (user_id, i) not in self._pending]
            self._pending.update((user_id, i) for i in todo)
        if todo:
            self._background.submit(self._generate_pending, user_id, todo, profile)
        return len(todo)

    def pending(self, user_id: str, item_ids: Sequence[str]) -> list[str]:
        """Which of the items are still queued for this user."""
        with self._lock:
            return [i for i in item_ids if (user_id, i) in self._pending]

    def _generate_pending(self, user_id: str, item_ids: Sequence[str], profile: "UserProfile | None") -> None:
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
                self.record(assets)
            except Exception:  # noqa: BLE001 - a background job has nobody to raise to: log it
                log.exception("background generation of %s for user %s failed", batch, user_id)
            finally:
                with self._lock:
                    self._pending.difference_update((user_id, i) for i in batch)

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

        personal = self.covers_for(item_id, profile, n=n_pers, seed=seed, callback=step(0, n_pers))
        generic = self.covers_for(item_id, None, n=n - n_pers, seed=seed + 1000, callback=step(n_pers, n - n_pers))
        variants = personal + generic
        random.Random(seed).shuffle(variants)
        return variants


def gated(method: Callable) -> Callable:
    """Run a method of an object with an `assets: Assets` attribute as an interactive request."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        with self.assets.interactive():
            return method(self, *args, **kwargs)

    return wrapper

