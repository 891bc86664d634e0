"""Label and traffic analytics: pure functions over pandas DataFrames, for the dashboard.

Nothing here touches the database: the dashboard reads frames from `annotation.store`, renames columns to
the small contracts documented on each function, and calls these. Every function is deterministic (the
bootstrap takes a seed) and returns a new DataFrame (or a small dict); inputs are never modified.

The statistics come from well-kept libraries, not hand-written maths:

- Wilson score intervals: `statsmodels.stats.proportion.proportion_confint(method="wilson")`.
- Bradley-Terry ratings: the maximum-likelihood logistic regression of Chatbot Arena's analysis (Chiang et
  al., 2024), minimised with `scipy.optimize` (L-BFGS), on the Elo scale (400 points = 10:1 odds), with
  bootstrap percentile intervals; online Elo as in the Arena's first leaderboard.
- Cohen's kappa: `sklearn.metrics.cohen_kappa_score`; Fleiss' kappa: `statsmodels.stats.inter_rater`;
  Krippendorff's alpha: the `krippendorff` package.
- Interleaving significance: a two-sided sign test on impressions won (`scipy.stats.binomtest`), as in
  Chapelle, Joachims, Radlinski and Yue (2012), "Large-scale validation and analysis of interleaved search
  evaluation".

Pairwise outcomes use the store's choice vocabulary: "A", "B", "tie" and "skip" (a skip carries no preference
and is dropped before any statistic).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

__all__ = [
    "ALPHA",
    "wilson_interval",
    "rate_table",
    "model_rates",
    "interleaving_credit",
    "interleaving_summary",
    "bradley_terry",
    "bootstrap_bradley_terry",
    "elo_ratings",
    "win_rate_matrix",
    "predicted_win_matrix",
    "asset_comparisons",
    "personalized_win_rate",
    "cohen_kappa",
    "pairwise_cohen_kappa",
    "fleiss_kappa",
    "krippendorff_alpha",
    "annotator_agreement",
    "choice_distribution",
    "annotator_throughput",
    "activity_over_time",
    "exposure_metrics",
    "eval_metrics_long",
]

ALPHA = 0.05  # two-sided level of every interval: 95% intervals unless a caller asks otherwise
CHOICES = ("A", "B", "tie", "skip")


# --------------------------------------------------------------------------------------------------- checks
def _require(frame: pd.DataFrame, name: str, columns: Iterable[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} must have columns {list(columns)}, missing {missing} (has {list(frame.columns)})")


def _check_alpha(alpha: float) -> None:
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _check_winners(frame: pd.DataFrame, name: str, column: str = "winner") -> None:
    bad = sorted(set(map(str, frame[column].dropna().unique())) - set(CHOICES))
    if bad or frame[column].isna().any():
        raise ValueError(f"{name}.{column} must be one of {list(CHOICES)}, got {bad or ['<missing>']}")


# ---------------------------------------------------------------------------------------------------- rates
def wilson_interval(successes, trials, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for binomial proportions; arrays in, arrays out (NaN where `trials` is 0)."""
    from statsmodels.stats.proportion import proportion_confint

    _check_alpha(alpha)
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    if np.any(n < 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError(f"successes must lie in [0, trials], got successes={k!r}, trials={n!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        low, high = proportion_confint(k, np.where(n > 0, n, np.nan), alpha=alpha, method="wilson")
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def rate_table(frame: pd.DataFrame, by: str | Sequence[str], success: str, alpha: float = ALPHA) -> pd.DataFrame:
    """Share of rows where `success` is true, per group, with Wilson intervals.

    Each row of `frame` is one Bernoulli trial. Returns columns `by..., trials, successes, rate, low, high`.
    """
    keys = [by] if isinstance(by, str) else list(by)
    _require(frame, "frame", [*keys, success])
    grouped = frame.groupby(keys, observed=True, sort=True)[success]
    out = pd.DataFrame({"trials": grouped.size(), "successes": grouped.sum().astype("int64")}).reset_index()
    return _with_rates(out, alpha)


def _with_rates(out: pd.DataFrame, alpha: float) -> pd.DataFrame:
    out = out.copy()
    out["trials"] = out["trials"].astype("int64")
    out["successes"] = out["successes"].astype("int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rate"] = out["successes"] / out["trials"].where(out["trials"] > 0)
    out["low"], out["high"] = wilson_interval(out["successes"].to_numpy(), out["trials"].to_numpy(), alpha)
    return out


def model_rates(
    impressions: pd.DataFrame,
    feedback: pd.DataFrame,
    kinds: Sequence[str] = ("click", "like"),
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Online click/like rates per model: the share of shown items that received at least one event of a kind.

    Args:
        impressions: one row per slate shown, columns `impression_id, model, n_items` (items on the slate).
        feedback: columns `impression_id, item_id, kind`. Events without an impression (NaN `impression_id`)
            cannot be attributed to a model and are ignored; repeats of the same (impression, item, kind)
            count once.
    Returns:
        columns `model, kind, trials, successes, rate, low, high` (trials = items shown by that model).
    """
    _require(impressions, "impressions", ["impression_id", "model", "n_items"])
    _require(feedback, "feedback", ["impression_id", "item_id", "kind"])
    if (impressions["n_items"] < 0).any():
        raise ValueError("impressions.n_items must be >= 0, got negative values")
    shown = impressions.groupby("model", sort=True)["n_items"].sum()
    events = feedback.loc[feedback["kind"].isin(list(kinds)) & feedback["impression_id"].notna(),
                          ["impression_id", "item_id", "kind"]].drop_duplicates()
    events = events.merge(impressions[["impression_id", "model"]], on="impression_id", how="inner")
    hits = events.groupby(["model", "kind"]).size()
    rows = [
        {"model": model, "kind": kind, "trials": int(n), "successes": int(min(hits.get((model, kind), 0), n))}
        for model, n in shown.items()
        for kind in kinds
    ]
    out = pd.DataFrame(rows, columns=["model", "kind", "trials", "successes"])
    return _with_rates(out, alpha)


# ------------------------------------------------------------------------------------------- interleaving
def interleaving_credit(impressions: pd.DataFrame, feedback: pd.DataFrame, kind: str = "click") -> pd.DataFrame:
    """Team-draft credit per interleaved impression (Radlinski et al., 2008).

    Args:
        impressions: columns `impression_id, model, model_b`; a row is interleaved when `model_b` is set.
        feedback: columns `impression_id, item_id, kind, contributor` (the ranker that placed the item on the
            slate, as the store's `feedback_frame` gives it); each distinct clicked item counts once.
    Returns:
        one row per interleaved impression with at least one credited event: `impression_id, model_a,
        model_b, credit_a, credit_b, winner` where `model_a < model_b` alphabetically and `winner` is a
        model name or "tie".
    """
    _require(impressions, "impressions", ["impression_id", "model", "model_b"])
    _require(feedback, "feedback", ["impression_id", "item_id", "kind", "contributor"])
    columns = ["impression_id", "model_a", "model_b", "credit_a", "credit_b", "winner"]
    inter = impressions.loc[impressions["model_b"].notna(), ["impression_id", "model", "model_b"]]
    if inter.empty:
        return pd.DataFrame(columns=columns)
    first, second = inter["model"].astype(str).to_numpy(), inter["model_b"].astype(str).to_numpy()
    pairs = pd.DataFrame({"impression_id": inter["impression_id"].to_numpy(),
                          "model_a": np.where(first < second, first, second),
                          "model_b": np.where(first < second, second, first)})
    clicks = feedback.loc[(feedback["kind"] == kind) & feedback["impression_id"].isin(pairs["impression_id"]),
                          ["impression_id", "item_id", "contributor"]]
    clicks = clicks.drop_duplicates(["impression_id", "item_id"])
    credited = clicks.merge(pairs, on="impression_id", how="inner")
    if credited.empty:
        return pd.DataFrame(columns=columns)
    is_a = (credited["contributor"] == credited["model_a"]).to_numpy()
    is_b = (credited["contributor"] == credited["model_b"]).to_numpy()
    if not (is_a | is_b).all():
        bad = credited.loc[~(is_a | is_b), ["impression_id", "contributor"]].head(3).to_dict("records")
        raise ValueError(f"feedback.contributor must be one of the impression's two models, got {bad}")
    out = credited.assign(is_a=is_a.astype("int64")).groupby(["impression_id", "model_a", "model_b"], sort=True).agg(
        credit_a=("is_a", "sum"), credited=("is_a", "size")).reset_index()
    out["credit_b"] = out["credited"] - out["credit_a"]
    out["winner"] = np.where(out["credit_a"] > out["credit_b"], out["model_a"],
                             np.where(out["credit_b"] > out["credit_a"], out["model_b"], "tie"))
    return out[columns]


def interleaving_summary(credit: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Wins per model pair with the interleaving preference Δ and a two-sided sign test.

    Args:
        credit: the output of `interleaving_credit` (`model_a, model_b, winner`).
    Returns:
        `model_a, model_b, impressions, wins_a, wins_b, ties, win_rate_a, low, high, delta, p_value`, where
        `win_rate_a = wins_a / (wins_a + wins_b)` with its Wilson interval, `delta = (wins_a + ties/2) /
        impressions - 1/2` (Chapelle et al., 2012; > 0 means model_a is preferred) and `p_value` is the
        binomial test of wins_a against wins_b (ties dropped; 1.0 when there are no decided impressions).
    """
    from scipy.stats import binomtest

    _require(credit, "credit", ["model_a", "model_b", "winner"])
    columns = ["model_a", "model_b", "impressions", "wins_a", "wins_b", "ties", "win_rate_a", "low", "high",
               "delta", "p_value"]
    if credit.empty:
        return pd.DataFrame(columns=columns)
    frame = credit.assign(
        win_a=(credit["winner"] == credit["model_a"]).astype(int),
        win_b=(credit["winner"] == credit["model_b"]).astype(int),
        tie=(credit["winner"] == "tie").astype(int),
    )
    out = frame.groupby(["model_a", "model_b"], sort=True).agg(
        impressions=("winner", "size"), wins_a=("win_a", "sum"), wins_b=("win_b", "sum"), ties=("tie", "sum")
    ).reset_index()
    decided = out["wins_a"] + out["wins_b"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["win_rate_a"] = out["wins_a"] / decided.where(decided > 0)
    out["low"], out["high"] = wilson_interval(out["wins_a"].to_numpy(), decided.to_numpy(), alpha)
    out["delta"] = (out["wins_a"] + 0.5 * out["ties"]) / out["impressions"] - 0.5
    out["p_value"] = [
        float(binomtest(int(a), int(a + b), 0.5).pvalue) if a + b > 0 else 1.0
        for a, b in zip(out["wins_a"], out["wins_b"])
    ]
    return out[columns]


# ------------------------------------------------------------------------------------ pairwise comparisons
def _decided(comparisons: pd.DataFrame, name: str = "comparisons") -> pd.DataFrame:
    _require(comparisons, name, ["a", "b", "winner"])
    _check_winners(comparisons, name)
    frame = comparisons.loc[comparisons["winner"] != "skip", ["a", "b", "winner"]]
    if not (pd.api.types.is_string_dtype(frame["a"]) and pd.api.types.is_string_dtype(frame["b"])):
        frame = frame.assign(a=frame["a"].astype(str), b=frame["b"].astype(str))
    same = frame["a"] == frame["b"]
    if same.any():
        raise ValueError(f"{name} must compare two different players per row, got {int(same.sum())} rows with a == b")
    return frame


def _players(frame: pd.DataFrame) -> list[str]:
    return sorted(set(frame["a"].unique()) | set(frame["b"].unique()))


def _outcome_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Unique (a, b, winner) with their counts: the likelihood only depends on these."""
    return frame.groupby(["a", "b", "winner"], sort=True).size().rename("count").reset_index()


def _bt_arrays(counts: pd.DataFrame, players: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Player indices of each unique outcome, and the share of a win for a / for b (a tie is half each)."""
    index = {p: i for i, p in enumerate(players)}
    ia = counts["a"].map(index).to_numpy()
    ib = counts["b"].map(index).to_numpy()
    won = counts["winner"].to_numpy()
    share_a = np.where(won == "A", 1.0, np.where(won == "tie", 0.5, 0.0))
    return ia, ib, share_a, np.where(won == "B", 1.0, np.where(won == "tie", 0.5, 0.0))


def _fit_bt(arrays, n: int, weights: np.ndarray, scale: float, base: float, init: float, regularization: float,
            start: np.ndarray | None = None) -> np.ndarray:
    """Maximum likelihood of the Bradley-Terry model on unique outcomes weighted by their counts.

    This is the logistic regression of Chatbot Arena's `compute_mle_elo` (one +1/-1 column per player, no
    intercept; a tie is half a win each way), minimised with scipy's L-BFGS on the exact gradient: the same
    estimate as sklearn's solver without its per-fit overhead, so a bootstrap of hundreds of fits is cheap.
    """
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit
    from threadpoolctl import threadpool_limits

    ia, ib, share_a, share_b = arrays
    w_a, w_b = weights * share_a, weights * share_b

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        d = theta[ia] - theta[ib]  # log-odds that a beats b
        value = -(w_a @ log_expit(d) + w_b @ log_expit(-d)) + 0.5 * regularization * theta @ theta
        g = -w_a * expit(-d) + w_b * expit(d)  # d(value)/d(d)
        grad = np.bincount(ia, g, minlength=n) - np.bincount(ib, g, minlength=n) + regularization * theta
        return float(value), grad

    x0 = np.zeros(n) if start is None else start
    # A handful of parameters: BLAS threads only add overhead (and stall on a busy machine).
    with threadpool_limits(limits=1):
        result = minimize(loss, x0, jac=True, method="L-BFGS-B",
                          options={"gtol": 1e-10, "ftol": 1e-14, "maxiter": 2000})
    theta = result.x - result.x.mean()
    return scale / math.log(base) * theta + init


def _theta(ratings: np.ndarray, scale: float, base: float, init: float) -> np.ndarray:
    return (ratings - init) * math.log(base) / scale


def bradley_terry(
    comparisons: pd.DataFrame,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    regularization: float = 0.0,
) -> pd.Series:
    """Bradley-Terry ratings by maximum likelihood, on the Elo scale.

    P(a beats b) = 1 / (1 + base ** ((r_b - r_a) / scale)); ties count as half a win for each side; ratings are
    centred on `init`. `regularization` > 0 adds an L2 penalty (regularization / 2 * |theta|^2 on the log-odds
    scale, i.e. 1/C of a logistic regression), which keeps
    ratings finite when a player has won (or lost) every comparison; 0 gives the plain MLE.

    Args:
        comparisons: columns `a, b, winner` with winner in "A" (a won), "B", "tie", "skip" (dropped).
    Returns:
        ratings indexed by player, best first.
    """
    if regularization < 0:
        raise ValueError(f"regularization must be >= 0, got {regularization!r}")
    frame = _decided(comparisons)
    if frame.empty:
        return pd.Series(dtype=float, name="rating")
    players = _players(frame)
    counts = _outcome_counts(frame)
    ratings = _fit_bt(_bt_arrays(counts, players), len(players), counts["count"].to_numpy(dtype=float), scale, base,
                      init, regularization)
    return pd.Series(ratings, index=pd.Index(players, name="player"), name="rating").sort_values(ascending=False)


def bootstrap_bradley_terry(
    comparisons: pd.DataFrame,
    rounds: int = 200,
    seed: int = 0,
    alpha: float = ALPHA,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    regularization: float = 0.0,
) -> pd.DataFrame:
    """Bradley-Terry ratings with bootstrap percentile intervals (comparisons resampled with replacement).

    Resampling rows is done as a multinomial draw over the unique (a, b, winner) outcomes, which is the same
    distribution and costs nothing per comparison, so a million labels bootstrap as fast as a hundred.

    Returns:
        `player, rating, low, high, comparisons` (comparisons = decided rows the player took part in), best first.
    """
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    _check_alpha(alpha)
    frame = _decided(comparisons)
    columns = ["player", "rating", "low", "high", "comparisons"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    players = _players(frame)
    counts = _outcome_counts(frame)
    total = int(counts["count"].sum())
    probs = counts["count"].to_numpy(dtype=float) / total
    arrays = _bt_arrays(counts, players)
    point = _fit_bt(arrays, len(players), counts["count"].to_numpy(dtype=float), scale, base, init, regularization)
    rng = np.random.default_rng(seed)
    draws = np.empty((rounds, len(players)))
    for r in range(rounds):
        weights = rng.multinomial(total, probs).astype(float)
        draws[r] = _fit_bt(arrays, len(players), weights, scale, base, init, regularization,
                           start=_theta(point, scale, base, init))
    games = pd.concat([frame["a"], frame["b"]]).value_counts()
    out = pd.DataFrame({
        "player": players,
        "rating": point,
        "low": np.quantile(draws, alpha / 2, axis=0),
        "high": np.quantile(draws, 1 - alpha / 2, axis=0),
        "comparisons": [int(games.get(p, 0)) for p in players],
    })
    return out.sort_values("rating", ascending=False, ignore_index=True)


def elo_ratings(
    comparisons: pd.DataFrame, k: float = 4.0, scale: float = 400.0, base: float = 10.0, init: float = 1000.0
) -> pd.Series:
    """Online Elo over comparisons in row order (sort by time first); ties score 0.5.

    The update is r_a += k * (s_a - E_a) with E_a = 1 / (1 + base ** ((r_b - r_a) / scale)). Unlike
    Bradley-Terry it depends on the order of the rows; the Arena reports it next to the MLE for that reason.
    """
    frame = _decided(comparisons)
    ratings: dict[str, float] = {}
    score = {"A": 1.0, "B": 0.0, "tie": 0.5}
    for a, b, winner in frame.itertuples(index=False):
        ra, rb = ratings.get(a, init), ratings.get(b, init)
        expected_a = 1.0 / (1.0 + base ** ((rb - ra) / scale))
        s_a = score[winner]
        ratings[a] = ra + k * (s_a - expected_a)
        ratings[b] = rb + k * ((1.0 - s_a) - (1.0 - expected_a))
    return pd.Series(ratings, name="elo", dtype=float).rename_axis("player").sort_values(ascending=False)


def win_rate_matrix(comparisons: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Observed win rate of the row player against the column player (ties count half; NaN where never met).

    Returns a square DataFrame; `order` fixes the players' order (default: alphabetical).
    """
    frame = _decided(comparisons)
    players = list(order) if order is not None else _players(frame)
    index = pd.Index(players)
    ia, ib = index.get_indexer(frame["a"]), index.get_indexer(frame["b"])
    keep = (ia >= 0) & (ib >= 0)
    ia, ib = ia[keep], ib[keep]
    score = frame["winner"].map({"A": 1.0, "B": 0.0, "tie": 0.5}).to_numpy()[keep]
    n = len(players)
    games = np.bincount(ia * n + ib, minlength=n * n) + np.bincount(ib * n + ia, minlength=n * n)
    wins = np.bincount(ia * n + ib, weights=score, minlength=n * n) + np.bincount(
        ib * n + ia, weights=1.0 - score, minlength=n * n)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(games > 0, wins / np.maximum(games, 1), np.nan).reshape(n, n)
    return pd.DataFrame(rate, index=pd.Index(players, name="player"), columns=pd.Index(players, name="opponent"))


def predicted_win_matrix(ratings: pd.Series, scale: float = 400.0, base: float = 10.0) -> pd.DataFrame:
    """P(row beats column) implied by ratings on the Elo scale (the diagonal is NaN)."""
    r = ratings.to_numpy(dtype=float)
    p = 1.0 / (1.0 + base ** ((r[None, :] - r[:, None]) / scale))
    np.fill_diagonal(p, np.nan)
    return pd.DataFrame(p, index=ratings.index.rename("player"), columns=ratings.index.rename("opponent"))


def asset_comparisons(preferences: pd.DataFrame, assets: pd.DataFrame, by: str = "generator") -> pd.DataFrame:
    """Turn preference labels between two assets into comparisons between the assets' `by` attribute.

    Args:
        preferences: columns `asset_a_id, asset_b_id, choice` (plus any others, kept).
        assets: columns `asset_id` and `by` (e.g. generator, prompt style, personalized).
    Returns:
        the preference rows with `a, b, winner` added (winner = choice); rows where both assets share the same
        `by` value compare nothing about it and are dropped.
    """
    _require(preferences, "preferences", ["asset_a_id", "asset_b_id", "choice"])
    _require(assets, "assets", ["asset_id", by])
    lookup = assets.drop_duplicates("asset_id").set_index("asset_id")[by]
    out = preferences.assign(
        a=preferences["asset_a_id"].map(lookup), b=preferences["asset_b_id"].map(lookup),
        winner=preferences["choice"],
    )
    unknown = out["a"].isna() | out["b"].isna()
    if unknown.any():
        missing = sorted(set(out.loc[out["a"].isna(), "asset_a_id"]) | set(out.loc[out["b"].isna(), "asset_b_id"]))
        raise ValueError(f"preferences refer to assets missing from assets: {missing[:5]}")
    out = out.assign(a=out["a"].astype(str), b=out["b"].astype(str))
    return out.loc[out["a"] != out["b"]].reset_index(drop=True)


def personalized_win_rate(preferences: pd.DataFrame, assets: pd.DataFrame, alpha: float = ALPHA) -> dict:
    """How often the personalized asset beats the generic one, over pairs with exactly one personalized side.

    Returns `{"wins", "losses", "ties", "skips", "rate", "low", "high"}`: rate = wins / (wins + losses) with
    its Wilson interval (NaN when nothing was decided); ties and skips are reported, not counted.
    """
    _require(assets, "assets", ["asset_id", "personalized"])
    flags = assets.assign(personalized=assets["personalized"].astype(bool).map({True: "personalized",
                                                                                False: "generic"}))
    comp = asset_comparisons(preferences, flags, by="personalized")
    _check_winners(comp, "preferences", "winner")
    won = ((comp["a"] == "personalized") & (comp["winner"] == "A")) | ((comp["b"] == "personalized")
                                                                        & (comp["winner"] == "B"))
    lost = ((comp["a"] == "personalized") & (comp["winner"] == "B")) | ((comp["b"] == "personalized")
                                                                         & (comp["winner"] == "A"))
    wins, losses = int(won.sum()), int(lost.sum())
    low, high = wilson_interval([wins], [wins + losses], alpha)
    return {
        "wins": wins, "losses": losses,
        "ties": int((comp["winner"] == "tie").sum()), "skips": int((comp["winner"] == "skip").sum()),
        "rate": wins / (wins + losses) if wins + losses else float("nan"),
        "low": float(low[0]), "high": float(high[0]),
    }


# ------------------------------------------------------------------------------------------------ agreement
def _labels(labels: pd.DataFrame, drop: Sequence[str] = ("skip",)) -> pd.DataFrame:
    _require(labels, "labels", ["item_id", "annotator", "label"])
    frame = labels.loc[labels["label"].notna() & ~labels["label"].isin(list(drop)), ["item_id", "annotator", "label"]]
    # One label per (item, annotator): a relabel replaces the earlier one (rows are taken in the given order).
    return frame.drop_duplicates(["item_id", "annotator"], keep="last")


def cohen_kappa(labels_a: Sequence, labels_b: Sequence) -> float:
    """Cohen's kappa of two raters over the same items (aligned sequences); NaN when undefined."""
    from sklearn.metrics import cohen_kappa_score

    if len(labels_a) != len(labels_b):
        raise ValueError(f"labels_a and labels_b must have the same length, got {len(labels_a)} and {len(labels_b)}")
    if len(labels_a) == 0:
        return float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(cohen_kappa_score(list(labels_a), list(labels_b)))


def pairwise_cohen_kappa(labels: pd.DataFrame, min_overlap: int = 2, drop: Sequence[str] = ("skip",)) -> pd.DataFrame:
    """Cohen's kappa for every pair of annotators over the items both labeled.

    Args:
        labels: columns `item_id, annotator, label` (`drop` labels, e.g. skips, are removed first).
        min_overlap: pairs with fewer shared items are left out.
    Returns:
        `annotator_a, annotator_b, overlap, agreement (observed), kappa`.
    """
    frame = _labels(labels, drop)
    wide = frame.pivot(index="item_id", columns="annotator", values="label")
    rows = []
    for a, b in combinations(sorted(wide.columns), 2):
        both = wide[[a, b]].dropna()
        if len(both) < min_overlap:
            continue
        rows.append({
            "annotator_a": a, "annotator_b": b, "overlap": len(both),
            "agreement": float((both[a] == both[b]).mean()),
            "kappa": cohen_kappa(both[a].tolist(), both[b].tolist()),
        })
    return pd.DataFrame(rows, columns=["annotator_a", "annotator_b", "overlap", "agreement", "kappa"])


def fleiss_kappa(labels: pd.DataFrame, drop: Sequence[str] = ("skip",)) -> dict:
    """Fleiss' kappa over items rated by the same number of annotators (statsmodels).

    Fleiss' kappa needs a constant number of ratings per item: it is computed on the items carrying the most
    common count (>= 2), and the result says how many items and raters per item that was.
    Returns `{"kappa", "items", "raters_per_item"}` (kappa NaN when no item has two ratings).
    """
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    frame = _labels(labels, drop)
    per_item = frame.groupby("item_id").size()
    per_item = per_item[per_item >= 2]
    if per_item.empty:
        return {"kappa": float("nan"), "items": 0, "raters_per_item": 0}
    m = int(per_item.value_counts().sort_index(ascending=False).idxmax())
    items = per_item.index[per_item == m]
    table = pd.crosstab(frame.loc[frame["item_id"].isin(items), "item_id"],
                        frame.loc[frame["item_id"].isin(items), "label"])
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = float(sm_fleiss(table.to_numpy(), method="fleiss"))
    return {"kappa": kappa, "items": int(len(items)), "raters_per_item": m}


def krippendorff_alpha(labels: pd.DataFrame, level: str = "nominal", drop: Sequence[str] = ("skip",)) -> float:
    """Krippendorff's alpha (any number of raters, missing ratings allowed); NaN when fewer than two values."""
    import krippendorff

    frame = _labels(labels, drop)
    pairable = frame.groupby("item_id")["annotator"].transform("size") >= 2
    frame = frame.loc[pairable]
    if frame.empty or frame["label"].nunique() < 2:
        return float("nan")
    codes, uniques = pd.factorize(frame["label"], sort=True)
    frame = frame.assign(code=codes.astype(float))
    wide = frame.pivot(index="annotator", columns="item_id", values="code")
    return float(krippendorff.alpha(reliability_data=wide.to_numpy(dtype=float), level_of_measurement=level,
                                    value_domain=np.arange(len(uniques), dtype=float)))


def annotator_agreement(labels: pd.DataFrame, drop: Sequence[str] = ("skip",)) -> pd.DataFrame:
    """Per annotator: how often their label matches other annotators' labels on the same items.

    `agreement` = agreeing pairs / all pairs with other annotators over shared items (a rater who agrees
    with the crowd scores high, a random clicker scores near chance); `mean_kappa` is the overlap-weighted
    mean of their pairwise Cohen's kappas. Returns `annotator, labels, shared_items, agreement, mean_kappa`.
    """
    frame = _labels(labels, drop)
    columns = ["annotator", "labels", "shared_items", "agreement", "mean_kappa"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    per_item = frame.groupby("item_id")["annotator"].transform("size")
    same = frame.groupby(["item_id", "label"])["annotator"].transform("size")
    frame = frame.assign(pairs=per_item - 1, agree=same - 1, shared=(per_item > 1).astype(int))
    out = frame.groupby("annotator").agg(labels=("label", "size"), shared_items=("shared", "sum"),
                                         pairs=("pairs", "sum"), agree=("agree", "sum")).reset_index()
    out["agreement"] = out["agree"] / out["pairs"].where(out["pairs"] > 0)
    kappas = pairwise_cohen_kappa(frame, min_overlap=2)
    both = pd.concat([
        kappas.rename(columns={"annotator_a": "annotator"})[["annotator", "overlap", "kappa"]],
        kappas.rename(columns={"annotator_b": "annotator"})[["annotator", "overlap", "kappa"]],
    ]).dropna(subset=["kappa"])
    weighted = both.assign(wk=both["kappa"] * both["overlap"]).groupby("annotator")[["wk", "overlap"]].sum()
    out["mean_kappa"] = out["annotator"].map(weighted["wk"] / weighted["overlap"])
    return out[columns].sort_values("agreement", ascending=False, ignore_index=True)


def choice_distribution(labels: pd.DataFrame) -> pd.DataFrame:
    """Per annotator: share of A / B / tie / skip, and a binomial test of A against B.

    With sides shuffled at random, A and B should be chosen about equally often; a tiny `position_p`
    flags position bias, a high skip or tie share flags low effort. Input: `annotator, label` columns.
    Returns `annotator, labels, A, B, tie, skip, position_p`.
    """
    from scipy.stats import binomtest

    _require(labels, "labels", ["annotator", "label"])
    _check_winners(labels, "labels", "label")
    counts = labels.groupby(["annotator", "label"]).size().unstack(fill_value=0).reindex(columns=list(CHOICES),
                                                                                          fill_value=0)
    total = counts.sum(axis=1)
    out = counts.div(total, axis=0)
    out.insert(0, "labels", total)
    out["position_p"] = [
        float(binomtest(int(a), int(a + b), 0.5).pvalue) if a + b else 1.0
        for a, b in zip(counts["A"], counts["B"])
    ]
    return out.reset_index().rename_axis(columns=None)


def annotator_throughput(labels: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Labels per annotator per period, and the median seconds spent per label.

    Input: `annotator, created_at` (datetime) and optionally `time_spent_ms`. Returns
    `annotator, period, labels, median_seconds`.
    """
    _require(labels, "labels", ["annotator", "created_at"])
    times = pd.to_datetime(labels["created_at"])
    spent = labels["time_spent_ms"] / 1000.0 if "time_spent_ms" in labels else pd.Series(np.nan, index=labels.index)
    frame = pd.DataFrame({"annotator": labels["annotator"], "period": times.dt.floor(freq), "sec": spent})
    out = frame.groupby(["annotator", "period"]).agg(labels=("sec", "size"), median_seconds=("sec", "median"))
    return out.reset_index()


# ---------------------------------------------------------------------------------------- overview, eval
def activity_over_time(frames: dict[str, pd.Series], freq: str = "D", distinct: dict[str, pd.Series] | None = None
                       ) -> pd.DataFrame:
    """Counts per period for several event streams, in long form for one plot.

    Args:
        frames: series name -> timestamps (one per event).
        distinct: series name -> a DataFrame-like pair (timestamps, ids) given as a two-column DataFrame
            `time, id`: counts distinct ids per period (e.g. active users per day).
    Returns:
        `period, series, count`, sorted by period.
    """
    parts = []
    for name, times in frames.items():
        t = pd.to_datetime(pd.Series(times)).dropna()
        if t.empty:
            continue
        counts = t.dt.floor(freq).value_counts().sort_index()
        parts.append(pd.DataFrame({"period": counts.index, "series": name, "count": counts.to_numpy()}))
    for name, pairs in (distinct or {}).items():
        _require(pairs, f"distinct[{name!r}]", ["time", "id"])
        t = pd.to_datetime(pairs["time"])
        counts = pd.DataFrame({"period": t.dt.floor(freq), "id": pairs["id"]}).dropna().groupby("period")["id"].nunique()
        if counts.empty:
            continue
        parts.append(pd.DataFrame({"period": counts.index, "series": name, "count": counts.to_numpy()}))
    if not parts:
        return pd.DataFrame(columns=["period", "series", "count"])
    return pd.concat(parts, ignore_index=True).sort_values(["period", "series"], ignore_index=True)


def exposure_metrics(
    impressions: pd.DataFrame,
    catalog_size: int,
    popularity: pd.Series | None = None,
    genres: pd.Series | None = None,
    popularity_total: float | None = None,
) -> pd.DataFrame:
    """Beyond-accuracy figures of what each model actually showed.

    Args:
        impressions: columns `model, item_ids` (a list per slate).
        catalog_size: number of items that could have been shown.
        popularity: item_id -> interaction count in the training data; novelty is the mean self-information
            -log2(p(item)) of shown items, p = (count + 1) / (total + number of items).
        popularity_total: the total of the counts, when `popularity` holds only some items (the shown ones);
            None: `popularity.sum()`.
        genres: item_id -> list of genres; diversity is the mean pairwise Jaccard distance of genre sets within
            a slate (intra-list diversity).
    Returns:
        `model, slates, coverage (share of the catalog shown at least once), novelty, diversity`.
    """
    _require(impressions, "impressions", ["model", "item_ids"])
    if not isinstance(catalog_size, (int, np.integer)) or catalog_size < 1:
        raise ValueError(f"catalog_size must be a positive integer, got {catalog_size!r}")
    columns = ["model", "slates", "coverage", "novelty", "diversity"]
    if impressions.empty:
        return pd.DataFrame(columns=columns)
    shown = impressions[["model", "item_ids"]].explode("item_ids").dropna().rename(columns={"item_ids": "item_id"})
    shown["item_id"] = shown["item_id"].astype(str)
    out = impressions.groupby("model").size().rename("slates").to_frame()
    out["coverage"] = shown.groupby("model")["item_id"].nunique() / catalog_size
    if popularity is not None:
        pop = popularity.copy()
        pop.index = pop.index.astype(str)
        total = float(pop.sum() if popularity_total is None else popularity_total)
        n = max(catalog_size, len(pop))
        info = -np.log2((shown["item_id"].map(pop).fillna(0.0) + 1.0) / (total + n))
        out["novelty"] = info.groupby(shown["model"]).mean()
    else:
        out["novelty"] = np.nan
    if genres is not None:
        sets = {str(k): frozenset(v) for k, v in genres.items() if v is not None}

        def ild(items: Sequence[str]) -> float:
            gs = [sets.get(str(i), frozenset()) for i in items]
            dists = [1.0 - len(x & y) / len(x | y) if (x | y) else 0.0 for x, y in combinations(gs, 2)]
            return float(np.mean(dists)) if dists else np.nan

        out["diversity"] = impressions.assign(d=impressions["item_ids"].map(ild)).groupby("model")["d"].mean()
    else:
        out["diversity"] = np.nan
    return out.reset_index()[columns]


def eval_metrics_long(eval_runs: pd.DataFrame, latest_only: bool = True) -> pd.DataFrame:
    """Offline evaluation runs in long form: one row per (run, metric).

    Args:
        eval_runs: columns `model, dataset, split, metrics (dict name -> value), created_at`; metric names like
            "ndcg@10" are split into `metric="ndcg", k=10` (k is NaN for metrics without a cut-off).
        latest_only: keep only the newest run per (model, dataset, split).
    Returns:
        `model, dataset, split, metric, k, value, created_at`.
    """
    _require(eval_runs, "eval_runs", ["model", "dataset", "split", "metrics", "created_at"])
    columns = ["model", "dataset", "split", "metric", "k", "value", "created_at"]
    runs = eval_runs.sort_values("created_at")
    if latest_only:
        runs = runs.drop_duplicates(["model", "dataset", "split"], keep="last")
    rows = []
    for run in runs.itertuples(index=False):
        metrics = run.metrics or {}
        if not isinstance(metrics, dict):
            raise ValueError(f"eval_runs.metrics must hold dicts, got {type(metrics).__name__}")
        for name, value in metrics.items():
            if value is None or isinstance(value, (dict, list, str)):
                continue
            metric, _, k = str(name).partition("@")
            rows.append({"model": run.model, "dataset": run.dataset, "split": run.split, "metric": metric,
                         "k": float(k) if k.isdigit() else np.nan, "value": float(value),
                         "created_at": run.created_at})
    return pd.DataFrame(rows, columns=columns)
