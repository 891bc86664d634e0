"""annotation.analytics against textbook values and against synthetic data with a known truth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from annotation import analytics as an


# ------------------------------------------------------------------------------------------------ rates
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [  # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe(k, n, low, high):
    lo, hi = an.wilson_interval([k], [n])
    assert lo[0] == pytest.approx(low, abs=1e-4)
    assert hi[0] == pytest.approx(high, abs=1e-4)


def test_wilson_interval_rejects_impossible_counts_and_gives_nan_for_no_trials():
    with pytest.raises(ValueError, match="successes must lie in"):
        an.wilson_interval([5], [3])
    with pytest.raises(ValueError, match="alpha"):
        an.wilson_interval([1], [3], alpha=1.5)
    lo, hi = an.wilson_interval([0], [0])
    assert math.isnan(lo[0]) and math.isnan(hi[0])


def test_rate_table_groups_and_intervals():
    frame = pd.DataFrame({"model": ["a"] * 263 + ["b"] * 148, "hit": [True] * 81 + [False] * 182 + [True] * 15
                          + [False] * 133})
    out = an.rate_table(frame, "model", "hit").set_index("model")
    assert out.loc["a", "trials"] == 263 and out.loc["a", "successes"] == 81
    assert out.loc["a", "rate"] == pytest.approx(81 / 263)
    assert out.loc["b", "low"] == pytest.approx(0.0624, abs=1e-4)
    with pytest.raises(ValueError, match="missing \\['hit2'\\]"):
        an.rate_table(frame, "model", "hit2")


def test_model_rates_counts_distinct_shown_items_and_ignores_unattributed_events():
    impressions = pd.DataFrame({"impression_id": [1, 2, 3], "model": ["ease", "ease", "pop"], "n_items": [4, 4, 5]})
    feedback = pd.DataFrame({
        "impression_id": [1, 1, 1, 2, 3, None],
        "item_id": ["x", "x", "y", "z", "x", "q"],
        "kind": ["click", "click", "like", "click", "like", "click"],  # repeated click on x counts once
    })
    out = an.model_rates(impressions, feedback).set_index(["model", "kind"])
    assert out.loc[("ease", "click"), ["trials", "successes"]].tolist() == [8, 2]
    assert out.loc[("ease", "like"), "successes"] == 1
    assert out.loc[("pop", "click"), "successes"] == 0
    assert out.loc[("pop", "like"), "rate"] == pytest.approx(0.2)


def test_model_rates_recover_the_better_model_on_simulated_traffic():
    rng = np.random.default_rng(0)
    n = 4000
    impressions = pd.DataFrame({"impression_id": np.arange(n), "model": np.where(np.arange(n) % 2, "good", "bad"),
                                "n_items": 10})
    p = np.where(impressions["model"] == "good", 0.08, 0.04)
    likes = rng.binomial(10, p)
    feedback = pd.DataFrame({
        "impression_id": np.repeat(impressions["impression_id"], likes),
        "item_id": [str(i) for c in likes for i in range(c)],
        "kind": "like",
    })
    out = an.model_rates(impressions, feedback, kinds=("like",)).set_index("model")
    assert out.loc["good", "rate"] == pytest.approx(0.08, abs=0.01)
    assert out.loc["good", "low"] > out.loc["bad", "high"]


# ------------------------------------------------------------------------------------------ interleaving
def test_interleaving_credit_and_sign_test():
    impressions = pd.DataFrame({"impression_id": [1, 2, 3, 4], "model": ["pop", "ease", "ease", "ease"],
                                "model_b": ["ease", "pop", "pop", None]})  # 4: not interleaved
    feedback = pd.DataFrame({
        "impression_id": [1, 1, 1, 1, 2, 2, 3, 4],
        "item_id": ["a", "c", "b", "c", "a", "b", "d", "e"],  # the second click on c counts once
        "kind": ["click"] * 8,
        "contributor": ["pop", "pop", "ease", "pop", "ease", "pop", "pop", None],
    })
    credit = an.interleaving_credit(impressions, feedback).set_index("impression_id")
    assert credit.loc[1, ["model_a", "model_b", "credit_a", "credit_b", "winner"]].tolist() == ["ease", "pop", 1, 2, "pop"]
    assert credit.loc[2, "winner"] == "tie"
    assert credit.loc[3, "winner"] == "pop"
    assert 4 not in credit.index

    wins = pd.DataFrame({"model_a": "ease", "model_b": "pop", "winner": ["ease"] * 9 + ["pop"] + ["tie"] * 2})
    summary = an.interleaving_summary(wins).iloc[0]
    assert (summary["wins_a"], summary["wins_b"], summary["ties"], summary["impressions"]) == (9, 1, 2, 12)
    assert summary["p_value"] == pytest.approx(2 * 11 / 1024)  # two-sided sign test, 9 of 10
    assert summary["delta"] == pytest.approx((9 + 1) / 12 - 0.5)
    assert summary["low"] < 0.9 < summary["high"]


def test_interleaving_rejects_a_contributor_outside_the_pair():
    impressions = pd.DataFrame({"impression_id": [1], "model": ["ease"], "model_b": ["pop"]})
    feedback = pd.DataFrame({"impression_id": [1], "item_id": ["a"], "kind": ["click"], "contributor": ["bpr"]})
    with pytest.raises(ValueError, match="contributor must be one of"):
        an.interleaving_credit(impressions, feedback)


# --------------------------------------------------------------------------------------- Bradley-Terry
def test_bradley_terry_two_players_closed_form():
    comp = pd.DataFrame({"a": ["x"] * 4, "b": ["y"] * 4, "winner": ["A", "A", "A", "B"]})
    r = an.bradley_terry(comp)
    assert r["x"] - r["y"] == pytest.approx(400 * math.log10(3), abs=1e-3)  # odds 3:1
    assert (r["x"] + r["y"]) / 2 == pytest.approx(1000)
    assert list(r.index) == ["x", "y"]


def test_bradley_terry_is_the_maximum_likelihood_estimate():
    # At the MLE, each player's expected score equals its observed score (the likelihood's score equations).
    rng = np.random.default_rng(1)
    truth = {"p": 1200.0, "q": 1100.0, "r": 1000.0, "s": 900.0}
    rows = []
    names = list(truth)
    for _ in range(3000):
        a, b = rng.choice(names, 2, replace=False)
        pa = 1 / (1 + 10 ** ((truth[b] - truth[a]) / 400))
        u = rng.random()
        rows.append((a, b, "tie" if abs(u - pa) < 0.03 else ("A" if u < pa else "B")))
    comp = pd.DataFrame(rows, columns=["a", "b", "winner"])
    r = an.bradley_terry(comp)
    expected = 1 / (1 + 10 ** ((comp["b"].map(r) - comp["a"].map(r)) / 400))
    observed = comp["winner"].map({"A": 1.0, "B": 0.0, "tie": 0.5})
    for player in names:
        as_a, as_b = comp["a"] == player, comp["b"] == player
        exp_score = expected[as_a].sum() + (1 - expected[as_b]).sum()
        obs_score = observed[as_a].sum() + (1 - observed[as_b]).sum()
        assert exp_score == pytest.approx(obs_score, abs=0.05)
    assert list(r.index) == ["p", "q", "r", "s"]
    assert r["p"] - r["s"] == pytest.approx(300, abs=60)


def test_bootstrap_intervals_cover_the_estimate_and_shrink_with_data():
    rng = np.random.default_rng(2)

    def sample(n):
        wins = rng.random(n) < 0.7
        return pd.DataFrame({"a": "x", "b": "y", "winner": np.where(wins, "A", "B")})

    small = an.bootstrap_bradley_terry(sample(50), rounds=60, seed=0).set_index("player")
    large = an.bootstrap_bradley_terry(sample(2000), rounds=60, seed=0).set_index("player")
    for out in (small, large):
        assert (out["low"] <= out["rating"]).all() and (out["rating"] <= out["high"]).all()
    assert (large["high"] - large["low"])["x"] < (small["high"] - small["low"])["x"]
    assert large.loc["x", "comparisons"] == 2000
    again = an.bootstrap_bradley_terry(sample(50), rounds=60, seed=0)
    assert again.shape == (2, 5)


def test_regularization_keeps_an_undefeated_player_finite():
    comp = pd.DataFrame({"a": ["x", "x", "y"], "b": ["y", "z", "z"], "winner": ["A", "A", "tie"]})
    r = an.bradley_terry(comp, regularization=0.1)
    assert np.isfinite(r).all() and r.index[0] == "x"


def test_elo_by_hand():
    comp = pd.DataFrame({"a": ["x", "x"], "b": ["y", "y"], "winner": ["A", "tie"]})
    r = an.elo_ratings(comp, k=32)
    # game 1: both 1000, E=0.5 -> x 1016, y 984; game 2: E_x = 1/(1+10^(-32/400)), tie
    e_x = 1 / (1 + 10 ** (-32 / 400))
    assert r["x"] == pytest.approx(1016 + 32 * (0.5 - e_x))
    assert r["y"] == pytest.approx(984 - 32 * (0.5 - e_x))


def test_win_rate_matrix_and_predicted_matrix():
    comp = pd.DataFrame({"a": ["x", "y", "x", "z"], "b": ["y", "x", "y", "x"], "winner": ["A", "A", "tie", "skip"]})
    m = an.win_rate_matrix(comp, order=["x", "y", "z"])
    assert m.loc["x", "y"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert m.loc["y", "x"] == pytest.approx(1 - m.loc["x", "y"])
    assert math.isnan(m.loc["x", "z"])  # the only x-z game was skipped
    p = an.predicted_win_matrix(pd.Series({"x": 1100.0, "y": 1000.0}))
    assert p.loc["x", "y"] == pytest.approx(1 / (1 + 10 ** (-0.25)))
    assert p.loc["x", "y"] + p.loc["y", "x"] == pytest.approx(1.0)


def test_comparisons_reject_bad_input():
    with pytest.raises(ValueError, match=r"winner must be one of"):
        an.bradley_terry(pd.DataFrame({"a": ["x"], "b": ["y"], "winner": ["left"]}))
    with pytest.raises(ValueError, match="a == b"):
        an.bradley_terry(pd.DataFrame({"a": ["x"], "b": ["x"], "winner": ["A"]}))
    with pytest.raises(TypeError, match="DataFrame"):
        an.elo_ratings([("x", "y", "A")])
    assert an.bradley_terry(pd.DataFrame({"a": [], "b": [], "winner": []})).empty


def test_asset_comparisons_and_personalized_win_rate():
    assets = pd.DataFrame({"asset_id": [1, 2, 3, 4], "generator": ["sd", "fallback", "sd", "sd"],
                           "personalized": [True, False, False, True]})
    prefs = pd.DataFrame({"asset_a_id": [1, 2, 3, 4, 1, 1], "asset_b_id": [2, 1, 4, 3, 4, 3],
                          "choice": ["A", "A", "B", "tie", "A", "skip"]})
    comp = an.asset_comparisons(prefs, assets)
    assert comp[["a", "b", "winner"]].values.tolist() == [["sd", "fallback", "A"], ["fallback", "sd", "A"]]
    res = an.personalized_win_rate(prefs, assets)
    # personalized-vs-generic pairs: (1,2) win, (2,1) loss, (3,4) win, (4,3) tie, (1,3) skip; (1,4) both personalized
    assert (res["wins"], res["losses"], res["ties"], res["skips"]) == (2, 1, 1, 1)
    assert res["rate"] == pytest.approx(2 / 3) and res["low"] < 2 / 3 < res["high"]
    with pytest.raises(ValueError, match="missing from assets"):
        an.asset_comparisons(prefs.assign(asset_b_id=99), assets)


# ------------------------------------------------------------------------------------------- agreement
def _long(table: dict[str, list]) -> pd.DataFrame:
    return pd.DataFrame([(i, rater, v) for rater, values in table.items() for i, v in enumerate(values)
                         if v is not None], columns=["item_id", "annotator", "label"])


def test_cohen_kappa_wikipedia_example():
    # 50 items: both yes 20, a yes / b no 5, a no / b yes 10, both no 15 -> kappa = 0.4
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert an.cohen_kappa(a, b) == pytest.approx(0.4)
    out = an.pairwise_cohen_kappa(_long({"ann": a, "bob": b, "cy": [None] * 49 + ["yes"]}))
    assert len(out) == 1  # cy shares one item only (< min_overlap)
    row = out.iloc[0]
    assert (row["annotator_a"], row["annotator_b"], row["overlap"]) == ("ann", "bob", 50)
    assert row["kappa"] == pytest.approx(0.4) and row["agreement"] == pytest.approx(0.7)


def test_fleiss_kappa_wikipedia_example():
    # 10 subjects, 14 raters, 5 categories (Fleiss 1971 as in Wikipedia): kappa = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    rows = []
    for item, counts in enumerate(table):
        rater = 0
        for category, c in enumerate(counts):
            for _ in range(c):
                rows.append((item, f"r{rater}", f"c{category}"))
                rater += 1
    labels = pd.DataFrame(rows, columns=["item_id", "annotator", "label"])
    res = an.fleiss_kappa(labels)
    assert res["kappa"] == pytest.approx(0.20993, abs=1e-4)
    assert (res["items"], res["raters_per_item"]) == (10, 14)


def test_krippendorff_alpha_textbook_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example: alpha = 0.691
    nan = None
    data = {
        "c1": [nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
        "c2": [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
        "c3": [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4],
    }
    assert an.krippendorff_alpha(_long(data)) == pytest.approx(0.691358, abs=1e-6)
    assert math.isnan(an.krippendorff_alpha(_long({"c1": ["A", "A"], "c2": ["A", "A"]})))


def _simulated_annotators(accuracies: dict[str, float], items: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.choice(["A", "B"], items)
    rows = []
    for name, acc in accuracies.items():
        correct = rng.random(items) < acc
        labels = np.where(correct, truth, np.where(truth == "A", "B", "A"))
        rows += [(i, name, lab) for i, lab in enumerate(labels)]
    return pd.DataFrame(rows, columns=["item_id", "annotator", "label"])


def test_better_annotator_has_higher_agreement():
    labels = _simulated_annotators({"careful": 0.95, "ok": 0.85, "sloppy": 0.6})
    out = an.annotator_agreement(labels).set_index("annotator")
    assert out["agreement"].idxmax() == "careful" and out["agreement"].idxmin() == "sloppy"
    assert out.loc["careful", "mean_kappa"] > out.loc["sloppy", "mean_kappa"]
    assert out.loc["careful", "shared_items"] == 300
    assert an.fleiss_kappa(labels)["raters_per_item"] == 3
    assert 0 < an.krippendorff_alpha(labels) < 1


def test_choice_distribution_flags_position_bias():
    labels = pd.DataFrame({"annotator": ["fair"] * 40 + ["lazy"] * 40,
                           "label": ["A", "B"] * 19 + ["tie", "skip"] + ["A"] * 38 + ["skip"] * 2})
    out = an.choice_distribution(labels).set_index("annotator")
    assert out.loc["lazy", "A"] == pytest.approx(0.95)
    assert out.loc["lazy", "position_p"] < 1e-6 < 0.5 < out.loc["fair", "position_p"]
    assert out.loc["fair", ["A", "B", "tie", "skip"]].sum() == pytest.approx(1.0)


def test_annotator_throughput():
    labels = pd.DataFrame({"annotator": ["a", "a", "a", "b"],
                           "created_at": pd.to_datetime(["2026-01-01 10:00", "2026-01-01 11:00", "2026-01-02 09:00",
                                                         "2026-01-01 12:00"]),
                           "time_spent_ms": [2000, 4000, 1000, 8000]})
    out = an.annotator_throughput(labels).set_index(["annotator", "period"])
    assert out.loc[("a", pd.Timestamp("2026-01-01")), "labels"] == 2
    assert out.loc[("a", pd.Timestamp("2026-01-01")), "median_seconds"] == pytest.approx(3.0)


# ------------------------------------------------------------------------------------ overview / eval
def test_activity_over_time_counts_events_and_distinct_ids():
    t = pd.to_datetime(["2026-01-01 01:00", "2026-01-01 02:00", "2026-01-02 03:00"])
    out = an.activity_over_time({"events": pd.Series(t)},
                                distinct={"users": pd.DataFrame({"time": t, "id": ["u1", "u1", "u2"]})})
    got = {(r.period.day, r.series): r.count for r in out.itertuples()}
    assert got == {(1, "events"): 2, (2, "events"): 1, (1, "users"): 1, (2, "users"): 1}
    assert an.activity_over_time({"events": pd.Series([], dtype="datetime64[ns]")}).empty


def test_exposure_metrics():
    imps = pd.DataFrame({"model": ["pop", "pop", "ease"], "item_ids": [["1", "2"], ["1", "2"], ["3", "4"]]})
    pop = pd.Series({"1": 90, "2": 8, "3": 1, "4": 1})
    genres = pd.Series({"1": ["Drama"], "2": ["Drama"], "3": ["Comedy"], "4": ["Horror"]})
    out = an.exposure_metrics(imps, catalog_size=10, popularity=pop, genres=genres).set_index("model")
    assert out.loc["pop", "coverage"] == pytest.approx(0.2) and out.loc["pop", "slates"] == 2
    assert out.loc["ease", "novelty"] > out.loc["pop", "novelty"]
    assert out.loc["pop", "diversity"] == 0.0 and out.loc["ease", "diversity"] == 1.0
    with pytest.raises(ValueError, match="catalog_size"):
        an.exposure_metrics(imps, catalog_size=0)


def test_eval_metrics_long_keeps_latest_run():
    runs = pd.DataFrame({
        "model": ["ease", "ease", "pop"], "dataset": "ml-100k", "split": ["random", "random", "cold"],
        "metrics": [{"ndcg@10": 0.1}, {"ndcg@10": 0.3, "recall@20": 0.4, "coverage": 0.2}, {"ndcg@10": 0.05}],
        "created_at": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-01"]),
    })
    out = an.eval_metrics_long(runs)
    ease = out[out["model"] == "ease"].set_index("metric")
    assert ease.loc["ndcg", "value"] == pytest.approx(0.3) and ease.loc["recall", "k"] == 20
    assert math.isnan(ease.loc["coverage", "k"])
    assert len(an.eval_metrics_long(runs, latest_only=False)) == 5
