"""Informative pairs first, app side: rank the queue's waiting pairs with the served preference model.

    rank_waiting_pairs(Session, catalog, model, overlap=2)   # -> pairs ranked; the queue hands them out in that order

With VITRINE_PAIR_SELECTION=active (the default) `Services.train_preference` calls this after each training
with the preference model then served: the waiting cover and caption pairs made for a user are ranked by
`generation.selection.rank_pairs` (the least certain first, a batch kept diverse) and the order is stored as
each pair's priority (`annotation.queue.set_priorities`, the others reset to 0). Pairs the model cannot score
(slate pairs, pairs made for nobody in particular, assets it cannot read) keep priority 0 and come after the
ranked ones, oldest first. `next_pair` keeps its own rules: overlap, leases, pairs closest to complete first.
With VITRINE_PAIR_SELECTION=random nothing is ranked: the queue's own order (oldest first). Active is the default
since it reached 0.75 truth accuracy with 34% fewer labels than random in the simulator (BENCHMARKS.md, issue 26).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from app.serving.catalog import Catalog

if TYPE_CHECKING:  # pragma: no cover - types only
    from generation.reward import RewardModel

log = logging.getLogger("vitrine")

__all__ = ["rank_waiting_pairs", "RANK_BATCH", "RANK_MAX"]

RANK_BATCH = 100  # pairs per diverse batch: about the labels between two trainings
RANK_MAX = 20_000  # waiting pairs ranked at most (the oldest first); the rest keep priority 0


def rank_waiting_pairs(Session: Any, catalog: Catalog, model: "RewardModel", overlap: int,
                       batch: int = RANK_BATCH, limit: int = RANK_MAX) -> int:
    """Rank the queue's waiting pairs with `model` and store the order as their priority; returns how many were
    ranked (0 when none could be scored: every priority is then reset to 0)."""
    from annotation import queue, store
    from app.learning.reward import user_features
    from generation.reward import records_from_frames
    from generation.selection import priorities_from_order, rank_pairs

    with Session() as s:
        waiting = [w for w in queue.waiting_pairs(s, overlap, limit=limit)
                   if w[1] in ("cover", "caption") and w[2] is not None]
        assets = store.assets_frame(s) if waiting else None
    triples, ids = [], []
    if waiting:
        wanted = {int(x) for w in waiting for x in (w[3], w[4])}
        _, candidates = records_from_frames(_no_labels(), assets[assets["asset_id"].isin(wanted)])
        users: dict[str, Any] = {}
        for pair_id, _kind, user_id, a_id, b_id in waiting:
            if user_id not in users:
                try:
                    users[user_id] = user_features(catalog, user_id)
                except (LookupError, ValueError):  # a user the catalog cannot describe: not scored
                    users[user_id] = None
            if users[user_id] is None:
                continue
            triples.append((users[user_id], candidates[str(a_id)], candidates[str(b_id)]))
            ids.append(int(pair_id))
    order = rank_pairs(model, triples, batch=batch) if triples else []
    priorities = {ids[i]: p for i, p in priorities_from_order(order).items()}
    with Session() as s, s.begin():
        queue.set_priorities(s, priorities, reset=True)
    log.info("pair selection: ranked %d waiting pairs with preference model %s", len(priorities),
             getattr(model, "version", "?"))
    return len(priorities)


def _no_labels():
    import pandas as pd

    return pd.DataFrame(columns=["kind", "target_user_id", "asset_a_id", "asset_b_id", "choice", "created_at",
                                 "annotator"])
