"""Annotator quality: each annotator's reliability from gold pairs and overlapping labels, and label weights.

    est = estimate_reliability(labels, gold={"12": "A"})   # labels: item, annotator, label ("A" | "B")
    est.table        # annotator, reliability, labels, gold_labels, gold_correct
    est.posterior    # item -> P(A is the better side)
    label_weights(est.reliability)                         # annotator -> max(0, 2 r - 1)

The model is Dawid and Skene's (1979): an item (a pair) has a hidden better side, A or B; annotator j answers
`l` when the truth is `t` with probability pi_j[t, l]. EM alternates the posterior of each item's truth (gold
items are clamped to their known answer) and each annotator's confusion matrix (the posterior mean under a
Dirichlet prior, so an annotator with little evidence sits near the prior instead of at 0 or 1). Reliability is
the balanced accuracy (pi_j[A, A] + pi_j[B, B]) / 2: the probability of choosing the better side, whatever the
order the sides were shown in. A spammer (random answers, or always "A") scores about 0.5, an adversary who
flips below 0.5.

Only items that can say something about an annotator take part: gold items, and items with labels from at least
two annotators (a pair labelled once has only that annotator's word for its truth). Ties and skips carry no side
and are left out. Plain numpy and pandas: no ML package (this module is imported by the store's callers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from annotation.errors import InvalidInputError

__all__ = ["Reliability", "estimate_reliability", "label_weights", "SIDES"]

SIDES = ("A", "B")
PRIOR_CORRECT = 2.0  # Dirichlet prior of a confusion row: 2 pseudo-answers for the true side, 1 for the other ...
PRIOR_WRONG = 1.0  # ... a prior mean reliability of 2/3: better than chance, not yet trusted


@dataclass(frozen=True)
class Reliability:
    """The outcome of `estimate_reliability`.

    table: one row per annotator: annotator, reliability (balanced accuracy in [0, 1]), labels (their A/B labels
    that took part), gold_labels (of those, on gold items), gold_correct (of those, matching the gold answer).
    confusion: annotator -> 2x2 array, rows the truth (A, B), columns the answer (A, B).
    posterior: item -> P(the better side is A) (gold items: 1.0 or 0.0).
    iterations: EM iterations run; converged: the largest change fell below the tolerance.
    """

    table: pd.DataFrame
    confusion: dict[str, np.ndarray]
    posterior: dict[str, float]
    iterations: int
    converged: bool

    @property
    def reliability(self) -> dict[str, float]:
        """annotator -> reliability."""
        return dict(zip(self.table["annotator"], self.table["reliability"].astype(float)))


def _check_labels(labels: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(labels, pd.DataFrame):
        raise InvalidInputError(f"labels must be a DataFrame with columns item, annotator, label, got "
                                f"{type(labels).__name__}")
    missing = {"item", "annotator", "label"} - set(labels.columns)
    if missing:
        raise InvalidInputError(f"labels must have columns item, annotator, label; missing {sorted(missing)}")
    frame = labels[["item", "annotator", "label"]].copy()
    frame["item"] = frame["item"].astype(str)
    frame["annotator"] = frame["annotator"].astype(str)
    return frame


def estimate_reliability(labels: pd.DataFrame, gold: Mapping[str, str] | None = None, *, max_iter: int = 200,
                         tol: float = 1e-6, prior_correct: float = PRIOR_CORRECT,
                         prior_wrong: float = PRIOR_WRONG) -> Reliability:
    """Each annotator's reliability by Dawid-Skene EM over `labels` (columns item, annotator, label), with the
    items in `gold` (item -> "A" | "B") clamped to their answer. Labels other than "A" and "B" are left out; an
    annotator's repeated label on one item counts once (the last). Annotators with no label that takes part
    get the prior mean. See the module docstring."""
    frame = _check_labels(labels)
    gold = {str(k): v for k, v in (gold or {}).items()}
    bad = {k: v for k, v in gold.items() if v not in SIDES}
    if bad:
        raise InvalidInputError(f"gold answers must be 'A' or 'B', got {bad}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise InvalidInputError(f"max_iter must be an int >= 1, got {max_iter!r}")
    if not (prior_correct > 0 and prior_wrong > 0):
        raise InvalidInputError(f"prior_correct and prior_wrong must be > 0, got {prior_correct}, {prior_wrong}")
    everyone = sorted(frame["annotator"].unique())
    frame = frame[frame["label"].isin(SIDES)].drop_duplicates(["item", "annotator"], keep="last")
    raters = frame.groupby("item")["annotator"].transform("size")
    frame = frame[(raters >= 2) | frame["item"].isin(gold)]

    items = sorted(frame["item"].unique())
    annotators = sorted(frame["annotator"].unique())
    i_idx = {k: n for n, k in enumerate(items)}
    a_idx = {k: n for n, k in enumerate(annotators)}
    rows = frame["item"].map(i_idx).to_numpy(dtype=int)
    cols = frame["annotator"].map(a_idx).to_numpy(dtype=int)
    said_a = (frame["label"] == "A").to_numpy()
    n_items, n_ann = len(items), len(annotators)
    clamp = np.array([gold.get(k) for k in items], dtype=object)
    is_gold = clamp != None  # noqa: E711 - elementwise over an object array
    gold_a = clamp == "A"

    # start from the (gold-clamped) share of "A" answers per item
    votes = np.bincount(rows, weights=said_a.astype(float), minlength=n_items)
    counts = np.bincount(rows, minlength=n_items).astype(float)
    post = np.where(counts > 0, votes / np.maximum(counts, 1.0), 0.5)
    post[is_gold] = gold_a[is_gold].astype(float)
    prior = np.array([[prior_correct, prior_wrong], [prior_wrong, prior_correct]])
    confusion = np.tile(prior / prior.sum(axis=1, keepdims=True), (n_ann, 1, 1))
    rho = 0.5
    iterations, converged = 0, n_items == 0
    for iterations in range(1, max_iter + 1):
        if n_items == 0:
            break
        # M-step: confusion[j, t, l] = posterior mean under the Dirichlet prior; rho = P(truth is A)
        truth = np.stack([post[rows], 1.0 - post[rows]], axis=1)  # (labels, 2): P(t = A), P(t = B)
        answer = np.stack([said_a, ~said_a], axis=1).astype(float)  # (labels, 2)
        tally = np.zeros((n_ann, 2, 2))
        np.add.at(tally, cols, truth[:, :, None] * answer[:, None, :])
        confusion = (tally + prior) / (tally + prior).sum(axis=2, keepdims=True)
        rho = float(np.clip((post.sum() + 1.0) / (n_items + 2.0), 1e-3, 1 - 1e-3))
        # E-step: log P(truth = t | the item's labels)
        logp = np.log(confusion)  # (annotators, t, l)
        answer_col = np.where(said_a, 0, 1)
        like_a = np.bincount(rows, weights=logp[cols, 0, answer_col], minlength=n_items) + np.log(rho)
        like_b = np.bincount(rows, weights=logp[cols, 1, answer_col], minlength=n_items) + np.log(1.0 - rho)
        new = 1.0 / (1.0 + np.exp(np.clip(like_b - like_a, -700, 700)))
        new[is_gold] = gold_a[is_gold].astype(float)
        change = float(np.abs(new - post).max())
        post = new
        if change < tol:
            converged = True
            break

    reliability = {a: float((confusion[j, 0, 0] + confusion[j, 1, 1]) / 2) for j, a in enumerate(annotators)}
    prior_mean = prior_correct / (prior_correct + prior_wrong)
    on_gold = frame[frame["item"].isin(gold)]
    gold_labels = on_gold.groupby("annotator").size()
    gold_correct = on_gold[on_gold["label"].to_numpy() == on_gold["item"].map(gold).to_numpy()] \
        .groupby("annotator").size()
    used = frame.groupby("annotator").size()
    table = pd.DataFrame({
        "annotator": everyone,
        "reliability": [reliability.get(a, prior_mean) for a in everyone],
        "labels": [int(used.get(a, 0)) for a in everyone],
        "gold_labels": [int(gold_labels.get(a, 0)) for a in everyone],
        "gold_correct": [int(gold_correct.get(a, 0)) for a in everyone],
    })
    return Reliability(table=table, confusion={a: confusion[j] for j, a in enumerate(annotators)},
                       posterior=dict(zip(items, post.astype(float))), iterations=iterations, converged=converged)


def label_weights(reliability: Mapping[str, float], floor: float = 0.0) -> dict[str, float]:
    """annotator -> the weight of each of their labels in the preference model: max(floor, 2 r - 1), the share
    of their answers that carry signal (1 for a perfect annotator, 0 for a coin flipper or anyone worse)."""
    if not 0.0 <= floor <= 1.0:
        raise InvalidInputError(f"floor must be in [0, 1], got {floor!r}")
    out = {}
    for name, r in reliability.items():
        if not 0.0 <= float(r) <= 1.0:
            raise InvalidInputError(f"reliability of {name!r} must be in [0, 1], got {r!r}")
        out[name] = max(floor, 2.0 * float(r) - 1.0)
    return out
