"""Which (user, item) pairs get a cover or a caption (segments, generic, a CSV; see `app.batch`), and exactly once:
the event id of a batch-made row, and the pairs that have no row yet."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from app.serving.assets import SLATE_SEED
from app.serving.catalog import LIKE_RATING

if TYPE_CHECKING:  # pragma: no cover - types only
    from recommenders.data import Dataset

__all__ = ["DEFAULT_TOP_N", "asset_event_id", "file_pairs", "generic_pairs", "missing_pairs", "segment_pairs"]

DEFAULT_TOP_N = 8  # a slate's length: the segment's first page
_EVENT_NAMESPACE = uuid.UUID("0c7a1d3e-6b52-4f0e-9a51-7d2b8e4c1f60")


# -- which pairs --------------------------------------------------------------------------------------------------


def segment_pairs(dataset: "Dataset", top_n: int = DEFAULT_TOP_N, like_rating: float = LIKE_RATING
                  ) -> list[tuple[str, str]]:
    """(user_id, item_id): each user with the top-N items of their preference segment they have not rated (see `app.batch`). Users in id order, a user's items by the segment's rank."""
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise ValueError(f"top_n must be an int >= 1, got {top_n!r}")
    inter = dataset.interactions.assign(user_id=lambda d: d["user_id"].astype(str),
                                        item_id=lambda d: d["item_id"].astype(str))
    genres = dict(zip(dataset.items["item_id"].astype(str), dataset.items["genres"]))
    liked = inter[inter["rating"] >= like_rating]
    by_user: dict[str, Counter] = {}
    for user_id, item_id in zip(liked["user_id"], liked["item_id"]):
        by_user.setdefault(user_id, Counter()).update(genres.get(item_id) or [])
    segment = {u: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for u, c in by_user.items() if c}
    liked = liked[liked["user_id"].isin(segment)]
    top: dict[str, list[str]] = {}
    for name, group in liked.assign(segment=liked["user_id"].map(segment)).groupby("segment"):
        counts = group.groupby("item_id").size().reset_index(name="likes")
        counts = counts.sort_values(["likes", "item_id"], ascending=[False, True], kind="stable")
        top[name] = counts["item_id"].tolist()  # every liked item, most liked first; unrated ones are cut below
    rated = inter.groupby("user_id")["item_id"].agg(set).to_dict()
    out = []
    for user_id in sorted(segment, key=_id_order):
        seen = rated.get(user_id, set())
        out.extend((user_id, item_id) for item_id in [i for i in top[segment[user_id]] if i not in seen][:top_n])
    return out


def generic_pairs(dataset: "Dataset") -> list[tuple[None, str]]:
    """(None, item_id) for every item, in catalogue order: the generic cover or caption of each."""
    return [(None, str(item_id)) for item_id in dataset.items["item_id"]]


def _id_order(user_id: str) -> tuple:
    return (0, int(user_id), "") if user_id.isdigit() else (1, 0, user_id)


def file_pairs(path: Path, dataset: "Dataset") -> list[tuple[str | None, str]]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frame.columns[:2]) != ["user_id", "item_id"]:
        raise ValueError(f"--pairs {path}: expected a CSV with columns user_id,item_id, got {list(frame.columns)}")
    items = set(dataset.items["item_id"].astype(str))
    users = set(dataset.users["user_id"].astype(str)) | set(dataset.interactions["user_id"].astype(str))
    unknown_items = sorted(set(frame["item_id"]) - items)
    unknown_users = sorted(set(frame["user_id"]) - users - {""})
    if unknown_items or unknown_users:
        raise ValueError(f"--pairs {path}: unknown items {unknown_items[:5]} / users {unknown_users[:5]} "
                         f"(users and items must be the dataset's)")
    return [(u or None, i) for u, i in zip(frame["user_id"], frame["item_id"])]


# -- exactly once ----------------------------------------------------------------------------------------------


def asset_event_id(kind: str, content_hash: str, user_id: str | None) -> str:
    """The event id of a batch-made asset's row: the same asset for the same user is always the same event."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{kind}:{content_hash}:{user_id or ''}"))


def missing_pairs(Session, pairs: Sequence[tuple[str | None, str]], kind: str) -> list[tuple[str | None, str]]:
    """The pairs that have no `kind` ("cover"/"caption") row made with the slate seed yet, in their order."""
    from annotation.reads import made_pairs

    with Session() as s:
        done = made_pairs(s, kind, SLATE_SEED, [item_id for _, item_id in pairs])
    return [pair for pair in pairs if pair not in done]
