"""Counterfactual (off-policy) estimates of a candidate ranker's like rate from logged slates.

Click model: the position-based model (PBM). An item at position k (1-based) of a slate is examined with
probability theta[k] (the same for every user and item) and, once examined, liked with a probability
r(u, i) that depends only on the user and the item. So P(like | u, i at k) = theta[k] * r(u, i).

Propensities. The logging policy shows item a at position k of slate n with probability P_log(a, k | n)
(1 at its rank for a deterministic top-k ranker; spread over positions when it explores). The item's
*exposure* under a policy is e(a | n) = sum_k theta[k] * P(a, k | n). For a deterministic candidate
e_c(a | n) = theta[its position] if it shows a, else 0.

Estimators (Li et al., KDD 2018, "Offline evaluation of ranking policies with click models", item-position
form), per logged slate n with shown items a and likes y(a):
    w(a)       = e_c(a | n) / e_log(a | n)                       the importance weight of a shown item
    V_n        = sum over shown a of y(a) * w(a)                 E[V_n] = expected likes of the candidate's
                                                                 slate, for every item the logger can show
    IPS        = mean_n V_n / K                                  like rate per shown item (K = slate length)
    C_n        = sum over shown a of theta[k(a)] * w(a)          a control variate: E[C_n] = S_n, with
    S_n        = sum over a with e_log > 0 of e_c(a | n)         S_n known exactly
    SNIPS      = (sum_n V_n / sum_n C_n) * mean_n S_n / K        self-normalised: ratio of two unbiased sums
Support: mean_n S_n / sum_k theta[k] is the share of the candidate's exposure the logger can show at all.
A deterministic logger gives support only on what it showed; items the candidate would show and the
logger never does are invisible to any estimator, so an exploring logger (see `explore_propensities`) is
what makes the estimate unbiased. Both estimates come with a seeded bootstrap 95% interval over slates.

Examination probabilities are estimated from the logs (`estimate_examination`): on slates whose order was
randomised by the exploration, an item's relevance does not depend on its position, so the like rate at
position k is proportional to theta[k]. theta[k] = k ** -eta is fitted by Poisson maximum likelihood over a
grid of eta (theta[1] = 1: only ratios matter to the estimators).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Examination:
    """theta[k-1] for positions k = 1..K, and how it was found."""

    theta: np.ndarray  # (K,) with theta[0] = 1
    eta: float  # theta[k] = k ** -eta
    rates: np.ndarray  # (K,) observed like rate per position on the randomised slates
    n_slates: int

    def as_dict(self) -> dict:
        return {"eta": self.eta, "theta": [float(t) for t in self.theta], "rates": [float(r) for r in self.rates],
                "n_slates": self.n_slates}


@dataclass(frozen=True)
class IPSEstimate:
    """Like rate per shown item of a candidate, estimated from logs."""

    ips: float
    snips: float
    ips_ci: tuple[float, float]
    snips_ci: tuple[float, float]
    support: float  # share of the candidate's exposure the logging policy can show (1 = full)
    n_slates: int
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"ips": self.ips, "snips": self.snips, "ips_ci": list(self.ips_ci), "snips_ci": list(self.snips_ci),
                "support": self.support, "n_slates": self.n_slates, **self.extra}


def power_law(n_positions: int, eta: float) -> np.ndarray:
    """theta[k] = k ** -eta for k = 1..n_positions."""
    return np.arange(1, n_positions + 1, dtype=float) ** -float(eta)


def estimate_examination(positions: np.ndarray, liked: np.ndarray, n_positions: int,
                         etas: np.ndarray | None = None) -> Examination:
    """Fit theta[k] = k ** -eta from (0-based position, liked) pairs of slates whose order was randomised."""
    positions = np.asarray(positions, dtype=np.int64)
    liked = np.asarray(liked, dtype=float)
    if positions.shape != liked.shape or positions.ndim != 1:
        raise ValueError(f"positions, liked: expected two 1-D arrays of one length, got {positions.shape} and "
                         f"{liked.shape}")
    if len(positions) == 0 or positions.min() < 0 or positions.max() >= n_positions:
        raise ValueError(f"positions: expected 0-based positions in 0..{n_positions - 1}, got "
                         f"{'none' if len(positions) == 0 else (positions.min(), positions.max())}")
    shown = np.bincount(positions, minlength=n_positions).astype(float)
    likes = np.bincount(positions, weights=liked, minlength=n_positions)
    if likes.sum() == 0:
        raise ValueError("liked: no like on the randomised slates; examination cannot be estimated")
    etas = np.linspace(0.0, 3.0, 301) if etas is None else np.asarray(etas, dtype=float)
    best, best_ll = 0.0, -np.inf
    for eta in etas:
        theta = power_law(n_positions, eta)
        c = likes.sum() / (theta * shown).sum()  # the Poisson MLE of the scale for this shape
        mean = c * theta * shown
        ll = float((likes * np.log(np.maximum(mean, 1e-300)) - mean).sum())
        if ll > best_ll:
            best, best_ll = float(eta), ll
    rates = np.divide(likes, shown, out=np.zeros(n_positions), where=shown > 0)
    return Examination(theta=power_law(n_positions, best), eta=best, rates=rates,
                       n_slates=int(shown.max()) if len(shown) else 0)


def explore_propensities(ranking: np.ndarray, k: int, epsilon: float, top: int) -> np.ndarray:
    """P_log(item, position) of an epsilon-exploring top-k logger, as an (n_ranked, k) matrix.

    With probability 1 - epsilon the slate is `ranking[:k]` in order; with probability epsilon it is a
    uniformly random k-subset of `ranking[:top]` in uniformly random order (every such item at every
    position with probability 1 / top). Rows follow `ranking[:top]`.
    """
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon: expected a probability in [0, 1], got {epsilon!r}")
    if not 1 <= k <= top <= len(ranking):
        raise ValueError(f"k, top: expected 1 <= k <= top <= len(ranking) = {len(ranking)}, got k={k}, top={top}")
    probs = np.full((top, k), epsilon / top)
    probs[np.arange(k), np.arange(k)] += 1.0 - epsilon
    return probs


def ips_like_rate(logged: pd.DataFrame, propensities: pd.DataFrame, candidate: pd.DataFrame, theta: np.ndarray,
                  n_boot: int = 1000, seed: int = 0) -> IPSEstimate:
    """IPS and SNIPS like rate of `candidate` (see the module docstring).

    logged:       one row per shown item: slate (id), item_id, position (0-based), liked (0/1)
    propensities: the logging policy's P_log(item, position | slate): slate, item_id, position, prob
                  (every (item, position) with prob > 0; a deterministic logger: its shown rows with prob 1)
    candidate:    the candidate's slate for the same contexts: slate, item_id, position (0-based)
    theta:        examination probability per position (theta[0] for the top)
    """
    theta = np.asarray(theta, dtype=float)
    K = len(theta)
    for name, frame, cols in (("logged", logged, ["slate", "item_id", "position", "liked"]),
                              ("propensities", propensities, ["slate", "item_id", "position", "prob"]),
                              ("candidate", candidate, ["slate", "item_id", "position"])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{name}: missing column(s) {missing}; got {list(frame.columns)}")
        if len(frame) and (frame["position"].min() < 0 or frame["position"].max() >= K):
            raise ValueError(f"{name}: positions must be 0..{K - 1} (len(theta)), got "
                             f"{frame['position'].min()}..{frame['position'].max()}")
    slates = np.unique(logged["slate"].to_numpy())
    if len(slates) == 0:
        raise ValueError("logged: expected at least one logged slate, got none")
    keys = ["slate", "item_id"]
    e_log = (propensities.assign(e=theta[propensities["position"].to_numpy()] * propensities["prob"].to_numpy())
             .groupby(keys)["e"].sum().rename("e_log"))
    e_c = candidate.assign(e_c=theta[candidate["position"].to_numpy()]).groupby(keys)["e_c"].sum()
    shown = logged.join(e_log, on=keys).join(e_c, on=keys)
    shown["e_c"] = shown["e_c"].fillna(0.0)
    if (shown["e_log"].isna() | (shown["e_log"] <= 0)).any():
        raise ValueError("propensities: every shown item needs its logging probability (prob > 0 at some position)")
    w = shown["e_c"].to_numpy() / shown["e_log"].to_numpy()
    shown["v"] = shown["liked"].to_numpy(dtype=float) * w
    shown["c"] = theta[shown["position"].to_numpy()] * w
    per = shown.groupby("slate")[["v", "c"]].sum().reindex(slates, fill_value=0.0)
    cand = candidate.join(e_log, on=keys)
    cand["s"] = np.where(cand["e_log"].fillna(0.0) > 0, theta[cand["position"].to_numpy()], 0.0)
    s_n = cand.groupby("slate")["s"].sum().reindex(slates, fill_value=0.0).to_numpy()
    full = cand.assign(t=theta[cand["position"].to_numpy()]).groupby("slate")["t"].sum().reindex(
        slates, fill_value=0.0).to_numpy()
    v, c = per["v"].to_numpy(), per["c"].to_numpy()

    def estimates(idx: np.ndarray) -> tuple[float, float]:
        ips = v[idx].mean() / K
        denominator = c[idx].sum()
        snips = (v[idx].sum() / denominator) * s_n[idx].mean() / K if denominator > 0 else float("nan")
        return float(ips), float(snips)

    everything = np.arange(len(slates))
    ips, snips = estimates(everything)
    rng = np.random.default_rng(seed)
    boots = np.array([estimates(rng.integers(0, len(slates), len(slates))) for _ in range(n_boot)])
    lo, hi = np.nanpercentile(boots, [2.5, 97.5], axis=0)
    support = float(s_n.sum() / full.sum()) if full.sum() > 0 else float("nan")
    return IPSEstimate(ips=ips, snips=snips, ips_ci=(float(lo[0]), float(hi[0])), snips_ci=(float(lo[1]), float(hi[1])),
                       support=support, n_slates=len(slates))


__all__ = ["Examination", "IPSEstimate", "estimate_examination", "explore_propensities", "ips_like_rate",
           "power_law"]
