"""Create-tab cover variants, made on trial (issue 14): nothing is stored until a person picks one.

The Create tab and /generate_covers draw any seed, so their variants go to a small local folder bounded by
STAGED_MAX (`generation.assets.StagedAssetStore`) and no row is written, until `keep` stores them: a pick
(`Labeling.record_pick`) or the label pair the queue takes from them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import checks
from app.errors import bad

if TYPE_CHECKING:  # pragma: no cover - types only
    from app.serving.assets import Asset, Assets
    from generation.profile import UserProfile

__all__ = ["Variants", "STAGED_MAX"]

STAGED_MAX = 256  # Create variants held on trial (unstored) per process: 32 full Create requests; ~60 KB each


class Variants:
    """Cover variants of one item for one person, personalized and generic mixed, on trial until kept."""

    def __init__(self, assets: "Assets", staging_dir: Path | str) -> None:
        from generation.assets import StagedAssetStore

        self.assets = assets
        self.staged = StagedAssetStore(assets.covers.store, staging_dir, max_assets=STAGED_MAX)

    def create(self, profile: "UserProfile", item_id: str, n: int, *, seed: int = 0,
               callback: Callable[[int, int], Any] | None = None) -> list["Asset"]:
        """`n` cover variants: the first ceil(n/2) personalized (seeds seed..), the rest generic (seeds
        seed+1000..); a seeded shuffle fixes the order shown, so the person cannot tell them apart by position.

        A new file goes to the staging folder and no row is written: such a variant has `asset_id` None until
        `keep` stores it. A variant already in the store comes as it is, with the id of its row when one was
        recorded for this user. With a learner, each personalized variant carries a prompt-policy arm (so that the
        pick teaches the policy), and the first personalized and the first generic variant are kept and queued as
        a label pair when the queue takes one for (user, item) (`Learner.takes_pair`)."""
        n = checks.integer("n", n, 2, checks.N_VARIANTS_MAX)
        seed = checks.integer("seed", seed, 0, checks.SEED_MAX)
        n_pers = (n + 1) // 2
        assets, learner = self.assets, self.assets.learner

        def step(offset: int, count: int) -> Callable[[int, int], Any] | None:
            if callback is None:
                return None
            return lambda done, total: callback(offset + done * count // max(total, 1), n)

        info = assets.catalog.item_info(item_id)
        if learner is not None:
            personal = self._policy_covers(info, profile, n_pers, seed, step(0, n_pers))
        else:
            personal = assets.generate_cover(info, profile, n=n_pers, seed=seed, callback=step(0, n_pers),
                                             store=self.staged)
        generic = assets.generate_cover(info, None, n=n - n_pers, seed=seed + 1000,
                                        callback=step(n_pers, n - n_pers), store=self.staged)
        personal, generic = self._on_trial(personal), self._on_trial(generic)
        if (learner is not None and personal and generic
                and personal[0]["content_hash"] != generic[0]["content_hash"]
                and learner.takes_pair(profile.user_id, item_id, "cover")):
            # the labeling queue fills itself from Create variants too: a personalized against a generic one
            personal[0], generic[0] = self.keep([personal[0], generic[0]])
            learner.queue_pairs(profile.user_id, [("cover", personal[0]["asset_id"], generic[0]["asset_id"], item_id)])
        variants = personal + generic
        random.Random(seed).shuffle(variants)
        return variants

    def keep(self, variants: Sequence[Mapping[str, Any]]) -> list["Asset"]:
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
        recorded = self.assets.record([{k: val for k, val in out[i].items() if k != "asset_id"} for i in todo],
                                      reuse=True)
        for i, row in zip(todo, recorded):
            out[i] = row
        return out

    def _on_trial(self, made: Sequence[Any]) -> list["Asset"]:
        """Variants as plain dicts, unrecorded (`asset_id` None) unless a row was recorded for them before."""
        from annotation import reads

        rows = [asset.to_dict() if hasattr(asset, "to_dict") else dict(asset) for asset in made]
        with self.assets.ReadSession() as s:
            ids = reads.recorded_asset_ids(s, [(d["content_hash"], d.get("user_id"), d["kind"]) for d in rows])
        return [{**d, "asset_id": None if self.staged.holds(d.get("path"))
                 else ids.get((d["content_hash"], d.get("user_id"), d["kind"]))} for d in rows]

    def _policy_covers(self, info: Any, profile: "UserProfile", n: int, seed: int,
                       callback: Callable[[int, int], Any] | None) -> list[Any]:
        """`n` covers for `profile`, one prompt-policy arm each (seeds seed..), made on trial."""
        from types import SimpleNamespace

        from generation.bestofn import cover_candidates

        made = 0

        def generate(*args: Any, **kwargs: Any) -> list[Any]:
            nonlocal made
            out = self.assets.generate_cover(*args, **kwargs, store=self.staged)
            made += 1
            if callback is not None:
                callback(made, n)
            return out

        return cover_candidates(SimpleNamespace(generate=generate), info, profile,
                                self.assets.learner.choose_arms(profile, n), seed=seed)
