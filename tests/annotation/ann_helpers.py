"""Small builders shared by the store tests (imported as `ann_helpers`)."""

from __future__ import annotations

import uuid

import pandas as pd
from sqlalchemy import func, select

ITEMS = pd.DataFrame({
    "item_id": [str(i) for i in range(1, 21)],
    "title": [f"Movie {i} (199{i % 10})" for i in range(1, 21)],
    "year": [1990 + i % 10 for i in range(1, 21)],
    "genres": [["Drama"] if i % 2 else ["Comedy", "Romance"] for i in range(1, 21)],
})


def new_id() -> str:
    return str(uuid.uuid4())


def cover(item_id="1", user_id="196", personalized=True, **extra) -> dict:
    """The fields of a `generation.assets.Asset` for a cover, as `store.record_asset` takes them."""
    row = dict(event_id=new_id(), kind="cover", item_id=item_id, user_id=user_id if personalized else None,
               generator="stabilityai/sd-turbo", fallback=False, prompt=f"a poster for {item_id}",
               negative_prompt="blurry", seed=7, params={"steps": 2, "size": 512}, path=f"/assets/{new_id()}.png",
               text=None, content_hash=uuid.uuid4().hex, latency_ms=812.5, personalized=personalized,
               cache_hit=False)
    row.update(extra)
    return row


def count(Session, model) -> int:
    with Session() as s:
        return s.scalar(select(func.count()).select_from(model))


