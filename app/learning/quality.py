"""Annotator quality, app side: reliability from the store's labels and gold pairs, flags, label weights.

    est = estimate_from_store(Session)                     # annotation.quality over every current label
    weights = weights_for(est.reliability)                 # annotator -> weight of their labels
    update_quality(Session, threshold=0.6, min_labels=20)  # store each reliability; flag, settle gold pairs

`update_quality` runs with every preference-model training (`app.learning.reward.train_reward`) and on the
upkeep thread's schedule: each annotator's reliability (Dawid-Skene over gold pairs and overlaps) is stored on
the annotator; one below `threshold` with at least `min_labels` labels behind the estimate is flagged (the
queue hands them nothing more, their open leases return to it: `annotation.queue.set_reliability`) and shown
on the dashboard; a flagged annotator whose estimate rises again is unflagged. Pairs whose labels agree
strongly enough (the posterior of their better side at least `settle_at`, from two or more annotators) become
gold pairs "settled by agreement", mixed in for everyone else. Create-tab picks ("user:<id>") and study
participants are annotators like the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("vitrine")

__all__ = ["estimate_from_store", "weights_for", "update_quality", "SETTLE_AT"]

SETTLE_AT = 0.97  # the posterior a pair's better side needs (from 2+ annotators) to become a gold pair


def estimate_from_store(Session: Any):
    """`annotation.quality.estimate_reliability` over the store's current A/B labels, gold pairs clamped."""
    from annotation import queue, store
    from annotation.quality import estimate_reliability

    with Session() as s:
        prefs = store.preferences_frame(s)
        gold = queue.gold_answers(s)
    labels = prefs.rename(columns={"pair_id": "item", "choice": "label"})[["item", "annotator", "label"]]
    return estimate_reliability(labels, {str(k): v for k, v in gold.items()})


def weights_for(reliability: Mapping[str, float]) -> dict[str, float]:
    """annotator -> the weight of their labels in the preference model (`annotation.quality.label_weights`)."""
    from annotation.quality import label_weights

    return label_weights(reliability)


def update_quality(Session: Any, threshold: float = 0.6, min_labels: int = 20, settle_at: float = SETTLE_AT
                   ) -> dict[str, Any]:
    """Estimate every annotator's reliability, store it with their flag, settle confident pairs as gold.
    Returns {"annotators": n, "flagged": [names newly flagged], "unflagged": [names], "settled": n,
    "reliability": {name: reliability}}."""
    from annotation import queue, reads

    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    if not 0.5 < settle_at <= 1.0:
        raise ValueError(f"settle_at must be in (0.5, 1], got {settle_at!r}")
    est = estimate_from_store(Session)
    flagged, unflagged = [], []
    with Session() as s, s.begin():
        annotators = reads.annotator_flags(s)  # name -> (id, flagged before this estimate)
        for row in est.table.itertuples(index=False):
            if row.annotator not in annotators:
                continue
            annotator_id, was = annotators[row.annotator]
            flag = bool(row.labels >= min_labels and row.reliability < threshold)
            queue.set_reliability(s, annotator_id, float(row.reliability), int(row.labels), flag)
            if flag and not was:
                flagged.append(row.annotator)
            elif was and not flag:
                unflagged.append(row.annotator)
        gold = set(queue.gold_answers(s))
        settled = 0
        counts = reads.raters_per_pair(s)
        for item, p in est.posterior.items():
            pair_id = int(item)
            if pair_id in gold or counts.get(pair_id, 0) < 2 or not (p >= settle_at or p <= 1.0 - settle_at):
                continue
            queue.set_gold(s, pair_id, "A" if p >= settle_at else "B", source="agreement")
            settled += 1
    if flagged:
        log.warning("quality: flagged %s (reliability below %.2f); their open pairs went back to the queue",
                    ", ".join(map(repr, flagged)), threshold)
    return {"annotators": len(est.table), "flagged": flagged, "unflagged": unflagged, "settled": settled,
            "reliability": est.reliability}
