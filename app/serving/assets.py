"""Generated assets: the cover and caption generators, their records in the store, and the background worker.

A slate never waits for a model: `Assets.known` returns what was already made for the visitor, the rest is
queued with `generate_later` and made by one background worker, which records its output in batches and gives
way to interactive requests (`interactive()`, applied once by the slate flow, see `app.serving.slates`).

Slate assets (the personalized cover and caption shown on a card) are best-of-N choices when a `Learner`
(`app.learning.preference`) is given: the worker makes N cover candidates (one prompt-policy arm each, seeds
SLATE_SEED .. SLATE_SEED + N - 1) and N caption candidates, records them all with params["best_of_n"] (and the
arm in params["policy"]), and the one ranked first is what `known` returns (`annotation.reads.shown_assets`);
the shown one against another candidate becomes a label pair. Without a learner, or for a generic (profile-less)
slate, one cover and one caption are made with the fixed seed `SLATE_SEED`, which `known` also finds. Create
variants and admin label pairs draw other seeds.

Bounded storage (issue 14):
- Create variants (the Create tab, /generate_covers: any seed) are made on trial (`generation.assets.
  StagedAssetStore`): their files go to a small local folder bounded by STAGED_MAX and no row is written, until
  `keep` stores them: a pick (`Labeling.record_pick`) or the label pair the queue takes from them.
- The blob store's generated files are held under a quota (`quota_bytes`, VITRINE_ASSET_QUOTA_MB): `enforce_quota`
  evicts the assets no pair refers to (a pair is what every label and pick refers to: training data is never
  evicted), the least recently recorded first. Asset rows stay (they are the provenance the dashboard reads, and the
  event sink shipped them already); `known` skips a cover whose file is gone, so the slate queues it again and the
  worker makes it again (same key, same file). The worker runs it after storing a batch, and the upkeep thread
  calls `quota_tick`. With a remote blob store only this machine's cache is bounded (see `BlobStore.evict`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import sessionmaker

from app import checks
from app.serving.catalog import Catalog
from app.errors import bad
from app.serving.events import EventLog
from app.serving.zerogpu import gpu

if TYPE_CHECKING:  # pragma: no cover - types only
    from app.learning.preference import Learner
    from generation.captions import CaptionGenerator
    from generation.covers import CoverGenerator
    from generation.profile import UserProfile

log = logging.getLogger("vitrine")

__all__ = ["Assets", "SLATE_SEED", "BACKGROUND_BATCH_S", "BACKGROUND_BATCH_ASSETS", "BACKGROUND_YIELD_S", "STAGED_MAX",
           "QUOTA_EVERY_S"]

SLATE_SEED = 0  # the seed of slate assets (see the module docstring)
BACKGROUND_BATCH_S = 0.5  # the background worker records what it made at least this often
BACKGROUND_BATCH_ASSETS = 16  # ... and at most this many assets per transaction, so that one write holds the
# database (SQLite's single writer) briefly even when best-of-N makes several candidates per item
BACKGROUND_YIELD_S = 0.5  # the longest the background worker waits for interactive requests to finish
MAX_QUEUED = 400  # items waiting for the background worker (50 slates of 8); past it the oldest jobs are dropped
STAGED_MAX = 256  # Create variants held on trial (unstored) per process: 32 full Create requests; ~60 KB each
QUOTA_EVERY_S = 30.0  # the quota is checked at most this often (a check scans the store: ~70 ms per 2,000 assets)
UNRECORDED_GRACE_S = 120.0  # a stored file without an asset row is left alone this long: its row may be on its way

Asset = dict[str, Any]  # a recorded asset: the generator's fields plus the store's "asset_id"


class Assets:
    """Covers and captions for items, generated (or served from the asset cache) and recorded with provenance."""

    def __init__(self, catalog: Catalog, events: EventLog, covers: "CoverGenerator", captions: "CaptionGenerator",
                 ReadSession: sessionmaker, learner: "Learner | None" = None, *, quota_bytes: int | None = None,
                 staging_dir: Path | str | None = None) -> None:
        """quota_bytes: the most bytes of generated files the blob store may hold on this machine (None: no quota).
        staging_dir: the local folder of Create variants on trial (default: `staging` beside the store's root)."""
        from generation.assets import StagedAssetStore

        if quota_bytes is not None and (isinstance(quota_bytes, bool) or not isinstance(quota_bytes, int)
                                        or quota_bytes < 0):
            raise ValueError(f"quota_bytes must be None or an int >= 0, got {quota_bytes!r}")
        self.catalog = catalog
        self.learner = learner
        self.events = events
        self.covers = covers
        self.captions = captions
        self.ReadSession = ReadSession
        self._cover_generate = gpu(covers.generate, duration=120)
        self._caption_generate = gpu(captions.generate, duration=60)
        self.staged = StagedAssetStore(covers.store, staging_dir if staging_dir is not None
                                       else covers.store.root.parent / "staging", max_assets=STAGED_MAX)
        self.quota_bytes = quota_bytes
        self.quota_every_s = QUOTA_EVERY_S
        self.stored_bytes: int | None = None  # bytes held at the last quota check (the Status tab shows it)
        self.evicted = 0  # assets evicted under the quota since start
        self._quota_lock = threading.Lock()  # one eviction at a time
        self._written = True  # something was recorded since the last quota check
        self._quota_at = float("-inf")  # time.monotonic() of the last quota check
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

    def cover_key(self, asset: Mapping[str, Any] | None) -> str | None:
        """The blob key of a cover (`covers/ab/<sha256>.jpg`), never a local path: from its content hash when the
        asset has one, else from its recorded path (a key, or an older row's file inside the store)."""
        from generation.assets import AssetStore

        if not asset:
            return None
        if asset.get("content_hash"):
            return AssetStore.image_key(asset["content_hash"], (asset.get("params") or {}).get("image_format", "jpeg"))
        path = asset.get("path")
        if not path:
            return None
        if not os.path.isabs(path):
            return path
        try:
            return Path(path).relative_to(self.covers.store.root).as_posix()
        except ValueError:
            return None

    def cover_file(self, image_key: str) -> Path | None:
        """The local file of a cover image by blob key: stored (fetched on a miss) or on trial; None otherwise."""
        return self.staged.image_file(image_key)

    def read_cover(self, path_or_key: str) -> bytes:
        """The bytes of a recorded cover (by blob key, or an older row's path), for the reward model;
        FileNotFoundError naming it when this store lacks it."""
        found = self.file(path_or_key)
        if found is None:
            raise FileNotFoundError(f"cover {path_or_key!r} is not in the blob store")
        return Path(found).read_bytes()

    @property
    def public_dir(self) -> Path:
        """The folder of stored cover images to serve (provenance files stay private)."""
        return self.covers.store.public_dir

    @property
    def public_dirs(self) -> list[Path]:
        """Every folder of generated files to serve: stored cover images and those of Create variants on trial."""
        return [self.covers.store.public_dir, self.staged.public_dir]

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
    def record(self, assets: Sequence[Any], *, reuse: bool = False) -> list[Asset]:
        """Record generated assets (one transaction); returns their dicts with the store's `asset_id`. A file
        served from the asset cache that was recorded before for the same user reuses that row (with `reuse`,
        every asset does: storing a Create variant twice records it once)."""
        from annotation import reads, store

        rows = [asset.to_dict() if hasattr(asset, "to_dict") else dict(asset) for asset in assets]
        key = lambda d: (d["content_hash"], d.get("user_id"), d["kind"])  # noqa: E731
        reused = lambda d: reuse or d.get("cache_hit")  # noqa: E731
        out = []
        callbacks = {}
        self._written = True
        with self.events.Session() as s, s.begin():
            recorded = reads.recorded_asset_ids(s, [key(d) for d in rows if reused(d)])
            for data in rows:
                known = recorded.get(key(data)) if reused(data) else None
                if known is None:
                    if data.get("user_id") is not None and data["user_id"] not in callbacks:
                        callbacks[data["user_id"]] = self.events.ensure_user(s, data["user_id"])
                    known = int(store.record_asset(s, data, event_id=checks.new_event_id()).id)
                    if reused(data):
                        recorded[key(data)] = known
                out.append({**data, "asset_id": known})
        for done in callbacks.values():
            done()
        return out

    def known(self, user_id: str, item_ids: Sequence[str]) -> dict[tuple[str, str], Asset]:
        """The newest slate cover and caption already made for this user, per (item_id, kind). A cover whose file
        was evicted under the quota is left out: the slate queues it and the worker makes it again."""
        from annotation import reads

        with self.ReadSession() as s:
            found = reads.shown_assets(s, user_id, item_ids, SLATE_SEED)
        return {k: v for k, v in found.items() if k[1] != "cover" or self.covers.store.held(v["path"])}

    # -- the quota --------------------------------------------------------------------------------------------
    def _stores(self) -> list[Any]:
        """The asset stores of the generators, each once (they usually share one blob store)."""
        out: dict[Path, Any] = {}
        for gen in (self.covers, self.captions):
            store = getattr(gen, "store", None)
            if store is not None:
                out.setdefault(Path(store.root).resolve(), store)
        return list(out.values())

    def enforce_quota(self) -> int:
        """Evict generated files until this machine holds at most `quota_bytes` of them; returns the bytes freed.

        Never evicted: an asset a pair refers to (every label and Create pick refers to a pair), and a file with
        no asset row yet written in the last UNRECORDED_GRACE_S (its row may be on its way). The others go least
        recently recorded first (a file with no row at all: by its age). Asset rows are kept; see the module
        docstring for what a slate does with a row whose file is gone."""
        from annotation import reads

        if self.quota_bytes is None:
            return 0
        with self._quota_lock:
            self._written, self._quota_at = False, time.monotonic()
            held = {key: (store, found) for store in self._stores() for key, found in store.stored().items()}
            total = sum(found.size for _, found in held.values())
            self.stored_bytes = total
            if total <= self.quota_bytes:
                return 0
            with self.ReadSession() as s:
                uses = reads.asset_uses(s, list(held))
            now = time.time()
            candidates = []
            for key, (_, found) in held.items():
                use = uses.get(key)
                if use is None:
                    if now - found.mtime >= UNRECORDED_GRACE_S:
                        candidates.append((found.mtime, key))
                elif not use[0]:
                    when = use[1]
                    if when is not None and when.tzinfo is None:
                        when = when.replace(tzinfo=dt.timezone.utc)  # the store keeps naive UTC times
                    candidates.append((when.timestamp() if when is not None else found.mtime, key))
            candidates.sort()
            victims, excess = [], total - self.quota_bytes
            for _, key in candidates:
                if excess <= 0:
                    break
                victims.append(key)
                excess -= held[key][1].size
            with self.ReadSession() as s:  # a pick made since the first look keeps its files
                paired = {k for k, (is_paired, _) in reads.asset_uses(s, victims).items() if is_paired}
            freed = 0
            for key in victims:
                if key not in paired:
                    store, found = held[key]
                    freed += store.evict(found)
                    self.evicted += 1
            self.stored_bytes = total - freed
            if freed:
                log.info("asset quota: evicted %d bytes (%d assets); %d bytes held, quota %d", freed,
                         len(victims) - len(paired), self.stored_bytes, self.quota_bytes)
            if self.stored_bytes > self.quota_bytes:
                log.warning("asset quota: %d bytes held after eviction, over the quota of %d (the rest is labelled "
                            "or being recorded)", self.stored_bytes, self.quota_bytes)
            return freed

    def quota_tick(self) -> int:
        """`enforce_quota` when assets were recorded since the last check and `quota_every_s` passed since it (the
        worker calls it after each batch, the upkeep thread on its schedule); returns the bytes freed."""
        if self.quota_bytes is None or not self._written:
            return 0
        if time.monotonic() - self._quota_at < self.quota_every_s:
            return 0
        return self.enforce_quota()

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
            try:
                self.quota_tick()
            except Exception:  # noqa: BLE001 - the quota is checked again after the next batch: log it
                log.exception("asset quota check failed")

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

        Variants are made on trial: a new file goes to the staging folder (bounded by STAGED_MAX) and no row is
        written; such a variant has `asset_id` None until `keep` stores it (a pick does). A variant already in the
        store comes as it is, with the id of its row when one was recorded for this user. With a learner, the
        first personalized and the first generic variant are kept and queued as a label pair when the queue takes
        one for (user, item) (`Learner.takes_pair`).
        """
        n = checks.integer("n", n, 2, checks.N_VARIANTS_MAX)
        seed = checks.integer("seed", seed, 0, checks.SEED_MAX)
        n_pers = (n + 1) // 2

        def step(offset: int, count: int) -> Callable[[int, int], Any] | None:
            if callback is None:
                return None
            return lambda done, total: callback(offset + done * count // max(total, 1), n)

        info = self.catalog.item_info(item_id)
        if self.learner is not None:
            # each personalized variant carries a prompt-policy arm, so that the pick teaches the policy
            personal = self._policy_covers(item_id, profile, n_pers, seed, step(0, n_pers))
        else:
            personal = self._cover_generate(info, profile, n=n_pers, seed=seed, callback=step(0, n_pers),
                                            store=self.staged)
        generic = self._cover_generate(info, None, n=n - n_pers, seed=seed + 1000, callback=step(n_pers, n - n_pers),
                                       store=self.staged)
        personal, generic = self._on_trial(personal), self._on_trial(generic)
        if (self.learner is not None and personal and generic
                and personal[0]["content_hash"] != generic[0]["content_hash"]
                and self._queue_takes(profile.user_id, item_id)):
            # the labeling queue fills itself from Create variants too: a personalized against a generic one
            personal[0], generic[0] = self.keep([personal[0], generic[0]])
            self.learner.queue_pairs(profile.user_id, [("cover", personal[0]["asset_id"], generic[0]["asset_id"],
                                                        item_id)])
        variants = personal + generic
        random.Random(seed).shuffle(variants)
        return variants

    def _on_trial(self, made: Sequence[Any]) -> list[Asset]:
        """Variants as plain dicts, unrecorded (`asset_id` None) unless a row was recorded for them before."""
        from annotation import reads

        rows = [asset.to_dict() if hasattr(asset, "to_dict") else dict(asset) for asset in made]
        with self.ReadSession() as s:
            ids = reads.recorded_asset_ids(s, [(d["content_hash"], d.get("user_id"), d["kind"]) for d in rows])
        return [{**d, "asset_id": None if self.staged.holds(d.get("path"))
                 else ids.get((d["content_hash"], d.get("user_id"), d["kind"]))} for d in rows]

    def _queue_takes(self, user_id: str, item_id: str) -> bool:
        """Whether the label queue would take a cover pair of (user, item) now: variants are kept only then."""
        return self.learner is not None and self.learner.takes_pair(user_id, item_id, "cover")

    def keep(self, variants: Sequence[Mapping[str, Any]]) -> list[Asset]:
        """Store the variants made on trial (`asset_id` None): their files into the blob store, their rows into
        the database (one transaction). Returns every variant with its `asset_id` and `path` as stored.
        Idempotent: keeping a variant twice records it once. A variant whose file is neither staged any more
        (STAGED_MAX newer ones pushed it out) nor stored is refused with a message saying to make them again."""
        out = [dict(v) for v in variants]
        todo = [i for i, v in enumerate(out) if v.get("asset_id") is None]
        if not todo:
            return out
        for i in todo:
            v = out[i]
            if v.get("kind") != "cover" or not v.get("content_hash"):
                raise bad("variants", "cover variants from create_variants", {k: v.get(k) for k in ("kind", "item_id")})
            path = self.staged.promote(v["content_hash"], (v.get("params") or {}).get("image_format", "jpeg"))
            if path is None:
                raise bad("variants", "variants made recently (these expired: generate new ones)", f"#{i + 1}")
            v["path"] = path
        recorded = self.record([{k: val for k, val in out[i].items() if k != "asset_id"} for i in todo], reuse=True)
        for i, row in zip(todo, recorded):
            out[i] = row
        return out

    def _policy_covers(self, item_id: str, profile: "UserProfile", n: int, seed: int,
                       callback: Callable[[int, int], Any] | None) -> list[Any]:
        """`n` covers of `item_id` for `profile`, one prompt-policy arm each (seeds seed..), made on trial."""
        from types import SimpleNamespace

        from generation.bestofn import cover_candidates

        made = 0

        def generate(*args: Any, **kwargs: Any) -> list[Any]:
            nonlocal made
            out = self._cover_generate(*args, **kwargs, store=self.staged)
            made += 1
            if callback is not None:
                callback(made, n)
            return out

        return cover_candidates(SimpleNamespace(generate=generate), self.catalog.item_info(item_id), profile,
                                self.learner.choose_arms(profile, n), seed=seed)


def gated(method: Callable) -> Callable:
    """Run a method of an object with an `assets: Assets` attribute as an interactive request."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        with self.assets.interactive():
            return method(self, *args, **kwargs)

    return wrapper

