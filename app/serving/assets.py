"""Generated assets: the cover and caption generators, their records in the store, and what a slate shows.

A slate never waits for a model: `Assets.known` returns what was already made for the visitor, the rest is made
by the background worker (`app.serving.worker.AssetWorker`, `assets.worker`), which records its output in
batches through `record_slate`.

Slate assets (the personalized cover and caption shown on a card) are best-of-N choices when a `Learner`
(`app.learning.learner`) is given: the worker makes N cover candidates (one prompt-policy arm each, seeds
SLATE_SEED .. SLATE_SEED + N - 1) and N caption candidates, records them all with params["best_of_n"] (and the
arm in params["policy"]), and the one ranked first is what `known` returns (`annotation.reads.shown_assets`);
the shown one against another candidate becomes a label pair. Without a learner, or for a generic (profile-less)
slate, one cover and one caption are made with the fixed seed `SLATE_SEED`, which `known` also finds. Create
variants (`assets.variants`, `app.serving.variants`) and admin label pairs draw other seeds.

Storage is bounded: Create variants are made on trial until kept, and the blob store's generated files are held
under a quota (`assets.quota`, `app.serving.quota`); `known` skips a cover whose file was evicted, so the slate
queues it again and the worker makes it again (same key, same file).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import sessionmaker

from app import checks
from app.serving.catalog import Catalog
from app.serving.events import EventLog
from app.serving.quota import AssetQuota
from app.serving.variants import Variants
from app.serving.worker import AssetWorker
from app.serving.zerogpu import gpu

if TYPE_CHECKING:  # pragma: no cover - types only
    from app.learning.learner import Learner
    from generation.captions import CaptionGenerator
    from generation.covers import CoverGenerator
    from generation.profile import UserProfile

log = logging.getLogger("vitrine")

__all__ = ["Assets", "Asset", "SLATE_SEED"]

SLATE_SEED = 0  # the seed of slate assets (see the module docstring)

Asset = dict[str, Any]  # a recorded asset: the generator's fields plus the store's "asset_id"


class Assets:
    """Covers and captions for items, generated (or served from the asset cache) and recorded with provenance."""

    def __init__(self, catalog: Catalog, events: EventLog, covers: "CoverGenerator", captions: "CaptionGenerator",
                 ReadSession: sessionmaker, learner: "Learner | None" = None, *, quota_bytes: int | None = None,
                 staging_dir: Path | str | None = None) -> None:
        """quota_bytes: the most bytes of generated files the blob store may hold on this machine (None: no quota).
        staging_dir: the local folder of Create variants on trial (default: `staging` beside the store's root)."""
        self.catalog = catalog
        self.learner = learner
        self.events = events
        self.covers = covers
        self.captions = captions
        self.ReadSession = ReadSession
        self.generate_cover = gpu(covers.generate, duration=120)
        self.generate_caption = gpu(captions.generate, duration=60)
        self.quota = AssetQuota([g.store for g in (covers, captions) if getattr(g, "store", None) is not None],
                                ReadSession, quota_bytes)
        self.variants = Variants(self, covers.store, staging_dir if staging_dir is not None
                                 else covers.store.root.parent / "staging")
        # looked up at each call (not bound once), so a replaced method or quota takes effect at once
        self.worker = AssetWorker(lambda item_id, profile: self._item_assets(item_id, profile),
                                  lambda assets, user_id: self.record_slate(assets, user_id),
                                  lambda: self.quota.tick())
        # a caption decoded step by step in the worker pauses between steps while a page is being answered
        captions.between_steps = self.worker.give_way

    def close(self) -> None:
        """Stop the background worker (queued jobs are dropped)."""
        self.worker.close()

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
        return self.variants.staged.image_file(image_key)

    def read_cover(self, path_or_key: str) -> bytes:
        """The bytes of a recorded cover (by blob key, or an older row's path), for the reward model;
        FileNotFoundError naming it when this store lacks it."""
        found = self.file(path_or_key)
        if found is None:
            raise FileNotFoundError(f"cover {path_or_key!r} is not in the blob store")
        return Path(found).read_bytes()

    @property
    def public_dirs(self) -> list[Path]:
        """Every folder of generated files to serve: stored cover images and those of Create variants on trial."""
        return [self.covers.store.public_dir, self.variants.staged.public_dir]

    @property
    def uses_fallback(self) -> dict[str, bool]:
        return {"covers": self.covers.uses_fallback, "captions": self.captions.uses_fallback}

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
        self.quota.written()
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

    def made(self, user_id: str, item_ids: Sequence[str]) -> tuple[dict[str, Asset], dict[str, Asset], list[str]]:
        """(covers, captions, pending): the slate assets made so far for these items (item_id -> asset), and the
        items still missing one of them."""
        known = self.known(user_id, item_ids)
        covers = {i: known[(i, "cover")] for i in item_ids if (i, "cover") in known}
        captions = {i: known[(i, "caption")] for i in item_ids if (i, "caption") in known}
        return covers, captions, [i for i in item_ids if i not in covers or i not in captions]

    def for_slate(self, user_id: str, item_ids: Sequence[str], profile: "UserProfile | None", *, wait: float = 0.0
                  ) -> tuple[dict[str, Asset], dict[str, Asset], list[str], dict[str, str]]:
        """(covers, captions, pending, templates) of a slate: what `made` finds, the missing items queued for the
        background worker, and the template caption (no model, microseconds) of each item without its caption
        yet, shown, labelled, until it is made. `wait` > 0: wait that many seconds at most for the worker (the one
        generation lane; never made in this thread), then look again."""
        covers, captions, pending = self.made(user_id, item_ids)
        self.worker.generate_later(user_id, pending, profile)
        if wait and pending:
            self.worker.wait_for(user_id, pending, timeout=wait)
            covers, captions, pending = self.made(user_id, item_ids)
        templates = {i: self.captions.template(self.catalog.item_info(i), profile, seed=SLATE_SEED)
                     for i in item_ids if i not in captions}
        return covers, captions, pending, templates

    # -- generating -------------------------------------------------------------------------------------------
    def _item_assets(self, item_id: str, profile: "UserProfile | None") -> list[Any]:
        """The slate assets of one item for `profile` (generated or from the asset cache): [cover, caption], or
        with a learner and a profile every best-of-N candidate, covers first, each with params["best_of_n"]."""
        info = self.catalog.item_info(item_id)
        if self.learner is None or profile is None:
            return [self.generate_cover(info, profile, n=1, seed=SLATE_SEED)[0],
                    self.generate_caption(info, profile, seed=SLATE_SEED)]
        from types import SimpleNamespace

        from generation.bestofn import caption_candidates, cover_candidates

        covers = cover_candidates(SimpleNamespace(generate=self.generate_cover), info, profile,
                                  self.learner.choose_arms(profile), seed=SLATE_SEED)
        for cover, params in zip(covers, self.learner.rank_covers(profile, covers)):
            cover.params = {**cover.params, **params}
        captions = caption_candidates(SimpleNamespace(generate=self.generate_caption), info, profile,
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

    def record_slate(self, assets: Sequence[Any], user_id: str | None) -> list[Asset]:
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
        recorded = self.record_slate(assets, profile.user_id if profile is not None else None)
        out = []
        for item_id in item_ids:
            mine = [a for a in recorded if a["item_id"] == item_id]
            pick = {kind: next((a for a in mine if a["kind"] == kind
                                and (a.get("params") or {}).get("best_of_n", {"rank": 0}).get("rank") == 0), None)
                    for kind in ("cover", "caption")}
            out.append((pick["cover"], pick["caption"]))
        return out

    def covers_for(self, item_id: str, profile: "UserProfile | None" = None, *, n: int = 1, seed: int = SLATE_SEED,
                   alpha: float = 0.5, callback: Callable[[int, int], Any] | None = None) -> list[Asset]:
        """`n` covers of `item_id` (personalized for `profile`, generic when None), generated or cached, recorded."""
        n = checks.integer("n", n, 1, checks.N_VARIANTS_MAX)
        seed = checks.integer("seed", seed, 0, checks.SEED_MAX)
        made = self.generate_cover(self.catalog.item_info(item_id), profile, n=n, seed=seed, alpha=alpha,
                                    callback=callback)
        return self.record(made)

    def caption_for(self, item_id: str, profile: "UserProfile | None" = None, *, seed: int = SLATE_SEED) -> Asset:
        """A caption of `item_id` for `profile` (generic when None), generated or cached, recorded; someone waits
        for it (Create, /generate_caption), so the background worker gives way and it does not."""
        seed = checks.integer("seed", seed, 0, checks.SEED_MAX)
        with self.worker.interactive():
            return self.record([self.generate_caption(self.catalog.item_info(item_id), profile, seed=seed)])[0]
