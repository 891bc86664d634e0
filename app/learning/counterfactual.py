"""The counterfactual estimate of a candidate's like rate from the app's own logs (see `recommenders.ips`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

# ------------------------------------------------------------------------------------------------------------
# counterfactual estimate from the store's impressions
# ------------------------------------------------------------------------------------------------------------
def ips_from_store(impressions: pd.DataFrame, feedback: pd.DataFrame, candidate, theta: Sequence[float],
                   model: str | None = None, n_boot: int = 500, seed: int = 0):
    """IPS / SNIPS like rate of `candidate` from the app's logged slates (`recommenders.ips.ips_like_rate`).

    impressions: the store's impressions_frame (impression_id, user_id, model, model_b, item_ids, created_at);
    feedback: its feedback_frame (user_id, item_id, kind, impression_id, created_at). Only single-model
    slates are used (of `model` when given). The app ranks deterministically, so the logging propensity of a
    shown item is 1 at its position (stated; `support` in the result says how much of the candidate's
    exposure that covers). `theta`: examination probabilities per position - the app's deterministic logs
    cannot estimate them; pass a fit from randomised slates (`recommenders.ips.estimate_examination`).
    The candidate's slate for an impression: its top-k for that user, folded in from the user's likes logged
    before the impression (a user the candidate was fitted on starts from their training history); slates
    of users it cannot rank (new, no earlier likes) are left out.
    """
    from recommenders.ips import ips_like_rate

    theta = np.asarray(theta, dtype=float)
    K = len(theta)
    imps = impressions[impressions["model_b"].isna()] if "model_b" in impressions.columns else impressions
    if model is not None:
        imps = imps[imps["model"] == model]
    likes = feedback[feedback["kind"] == "like"]
    liked_on = set(zip(likes["impression_id"].dropna().astype(int), likes["item_id"].astype(str)))
    by_user = {u: g.sort_values("created_at") for u, g in likes.groupby(likes["user_id"].astype(str))}
    fitted_users = set(candidate.user_ids)
    logged, props, cand = [], [], []
    for imp in imps.itertuples(index=False):
        user = str(imp.user_id)
        shown = [str(i) for i in imp.item_ids][:K]
        if not shown:
            continue
        before = by_user.get(user)
        earlier = [] if before is None else before[before["created_at"] < imp.created_at]["item_id"].astype(str).tolist()
        known = user in fitted_users
        if not known and not earlier:
            continue
        ids, _ = candidate.recommend_with_feedback(user if known else None, liked=earlier, k=K)
        slate = int(imp.impression_id)
        logged += [(slate, i, k, int((slate, i) in liked_on)) for k, i in enumerate(shown)]
        props += [(slate, i, k, 1.0) for k, i in enumerate(shown)]
        cand += [(slate, i, k) for k, i in enumerate(ids)]
    if not logged:
        raise ValueError("impressions: no single-model slate of a user the candidate can rank")
    return ips_like_rate(pd.DataFrame(logged, columns=["slate", "item_id", "position", "liked"]),
                         pd.DataFrame(props, columns=["slate", "item_id", "position", "prob"]),
                         pd.DataFrame(cand, columns=["slate", "item_id", "position"]), theta, n_boot=n_boot, seed=seed)

