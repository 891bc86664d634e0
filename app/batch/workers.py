"""The per-batch work, a Ray actor or a plain object in this process: `AssetMaker` (a cover or caption generator,
loaded once; a call makes and records a batch) and `TextEncoder` (the sentence encoder; a call embeds a batch)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from app.batch.pairs import asset_event_id
from app.serving.assets import SLATE_SEED

__all__ = ["AssetMaker", "MakerConfig", "TextEncoder"]


# -- the per-batch work (a Ray actor, or a plain object in process) ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MakerConfig:
    """What an actor needs to build its generator and open the database: plain data, shipped to every actor."""

    kind: str  # "cover" | "caption"
    model: str | None
    database_url: str
    blob_location: str
    blob_cache_dir: str | None
    device: str
    allow_network: bool
    domain: Any  # the dataset's domain spec (generation.domain.Domain.from_spec)
    init_strength: float | None
    cover_size: int | None = None  # None: the generator's default (512, what the app makes)
    caption_runtime: str = "auto"  # generation.captions.RUNTIMES: what the app's captions run on


class AssetMaker:
    """One cover or caption generator, loaded once; a call makes a batch's assets (files in the blob store by
    content key) and records them in one transaction. Input columns: user_id ("" for generic), item (ItemInfo as
    JSON), profile (UserProfile as JSON, "" for generic). Output: user_id, item_id, asset_id, cache_hit, fallback,
    latency_ms."""

    def __init__(self, config: MakerConfig) -> None:
        from annotation.db import make_engine, make_session_factory
        from generation.blobs import BlobStore
        from generation.domain import Domain

        self.config = config
        blobs = BlobStore(config.blob_location, cache_dir=config.blob_cache_dir)
        domain = Domain.from_spec(config.domain)
        if config.kind == "cover":
            from generation.covers import CoverGenerator

            size = {} if config.cover_size is None else {"size": config.cover_size}
            self.generator = CoverGenerator(config.model, blobs, device=config.device, domain=domain,
                                            allow_network=config.allow_network,
                                            init_strength=config.init_strength, **size).load()
        else:
            from generation.captions import CaptionGenerator

            self.generator = CaptionGenerator(config.model, blobs, device=config.device, domain=domain,
                                              allow_network=config.allow_network,
                                              runtime=config.caption_runtime).load()
        self.engine = make_engine(config.database_url)
        self.Session = make_session_factory(self.engine)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from annotation import store
        from generation.profile import UserProfile
        from generation.prompts import ItemInfo

        made = []
        for item_json, profile_json in zip(batch["item"], batch["profile"]):
            item = ItemInfo(**json.loads(item_json))
            profile = UserProfile(**json.loads(profile_json)) if profile_json else None
            if self.config.kind == "cover":
                made.append(self.generator.generate(item, profile, n=1, seed=SLATE_SEED)[0])
            else:
                made.append(self.generator.generate(item, profile, seed=SLATE_SEED))
        with self.Session() as s, s.begin():
            for user_id in sorted({a.user_id for a in made if a.user_id is not None}):
                store.ensure_user(s, user_id)
            ids = [int(store.record_asset(s, a.to_dict(), event_id=asset_event_id(a.kind, a.content_hash, a.user_id)).id)
                   for a in made]
        return {"user_id": np.array([a.user_id or "" for a in made], dtype=object),
                "item_id": np.array([a.item_id for a in made], dtype=object),
                "asset_id": np.array(ids, dtype=np.int64),
                "cache_hit": np.array([a.cache_hit for a in made], dtype=bool),
                "fallback": np.array([a.fallback for a in made], dtype=bool),
                "latency_ms": np.array([a.latency_ms for a in made], dtype=np.float64)}


class TextEncoder:
    """The sentence encoder, loaded once; a call embeds a batch. Input: row, text. Output: row, embedding."""

    def __init__(self, text_model: str | None, device: str = "cpu") -> None:
        from recommenders.features import load_text_encoder

        self.encoder = load_text_encoder(text_model, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from recommenders.features import encode_texts

        return {"row": batch["row"], "embedding": encode_texts(list(batch["text"]), encoder=self.encoder)}
