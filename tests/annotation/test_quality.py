"""Annotator reliability by Dawid-Skene EM with gold pairs (annotation.quality), against known cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from annotation.errors import InvalidInputError
from annotation.quality import PRIOR_CORRECT, PRIOR_WRONG, estimate_reliability, label_weights


def _simulate(accuracy: dict[str, float], items: int = 600, per_item: int = 3, seed: int = 0):
    """Items with a random better side, each labelled by `per_item` random annotators right w.p. their accuracy."""
    rng = np.random.default_rng(seed)
    truth = {str(i): "A" if rng.random() < 0.5 else "B" for i in range(items)}
    rows = []
    names = list(accuracy)
    for item, side in truth.items():
        for name in rng.choice(names, per_item, replace=False):
            right = rng.random() < accuracy[name]
            rows.append((item, name, side if right else ("B" if side == "A" else "A")))
    return pd.DataFrame(rows, columns=["item", "annotator", "label"]), truth


def test_recovers_known_accuracies_spammer_and_adversary():
    accuracy = {"careful": 0.95, "average": 0.8, "sloppy": 0.6, "spammer": 0.5, "adversary": 0.2}
    labels, truth = _simulate(accuracy)
    est = estimate_reliability(labels)
    assert est.converged
    for name, acc in accuracy.items():
        assert est.reliability[name] == pytest.approx(acc, abs=0.08), name
    assert sorted(accuracy, key=est.reliability.get) == ["adversary", "spammer", "sloppy", "average", "careful"]
    # the items' truth is recovered better than by a majority vote
    posterior = est.posterior
    em = np.mean([(posterior[i] > 0.5) == (truth[i] == "A") for i in truth])
    vote = labels.assign(a=labels["label"] == "A").groupby("item")["a"].mean()
    majority = np.mean([(vote[i] > 0.5) == (truth[i] == "A") for i in truth])
    assert em > majority + 0.02


def test_gold_only_is_the_posterior_mean_of_the_gold_answers():
    """Labels on gold items only: each annotator's confusion rows are exactly (prior + counts) normalised."""
    gold = {"g1": "A", "g2": "A", "g3": "B", "g4": "B", "g5": "A"}
    labels = pd.DataFrame([
        ("g1", "ann", "A"), ("g2", "ann", "A"), ("g3", "ann", "A"), ("g4", "ann", "B"), ("g5", "ann", "B"),
    ], columns=["item", "annotator", "label"])
    est = estimate_reliability(labels, gold)
    # truth A: 3 items, 2 answered A; truth B: 2 items, 1 answered B
    a_row = (2 + PRIOR_CORRECT) / (3 + PRIOR_CORRECT + PRIOR_WRONG)
    b_row = (1 + PRIOR_CORRECT) / (2 + PRIOR_CORRECT + PRIOR_WRONG)
    assert est.reliability["ann"] == pytest.approx((a_row + b_row) / 2)
    row = est.table.set_index("annotator").loc["ann"]
    assert (row["labels"], row["gold_labels"], row["gold_correct"]) == (5, 5, 3)
    assert est.posterior["g3"] == 0.0 and est.posterior["g1"] == 1.0


def test_gold_pins_down_who_is_right_when_two_disagree_on_everything():
    """Two annotators who always disagree: without gold EM cannot tell who is right; one gold item settles it."""
    items = [str(i) for i in range(40)]
    labels = pd.DataFrame([(i, "x", "A") for i in items] + [(i, "y", "B") for i in items],
                          columns=["item", "annotator", "label"])
    plain = estimate_reliability(labels)
    assert plain.reliability["x"] == pytest.approx(plain.reliability["y"], abs=1e-6)
    gold = estimate_reliability(pd.concat([labels, pd.DataFrame([("g", "x", "B"), ("g", "y", "B")],
                                                                columns=labels.columns)]), {"g": "B"})
    assert gold.reliability["y"] > 0.75 and gold.reliability["x"] < 0.4


def test_position_bias_is_no_better_than_chance():
    accuracy = {"a": 0.9, "b": 0.9, "c": 0.85}
    labels, truth = _simulate(accuracy, items=400, per_item=2, seed=3)
    lazy = pd.DataFrame([(i, "always-a", "A") for i in truth], columns=labels.columns)
    est = estimate_reliability(pd.concat([labels, lazy]))
    assert est.reliability["always-a"] == pytest.approx(0.5, abs=0.05)


def test_what_takes_part():
    labels = pd.DataFrame([
        ("1", "a", "A"), ("1", "b", "tie"),  # a tie says nothing about a side
        ("2", "a", "B"),  # a single label: no evidence about a
        ("3", "a", "A"), ("3", "b", "A"), ("3", "b", "B"),  # b's repeated label: the last counts
        ("4", "c", "skip"),
    ], columns=["item", "annotator", "label"])
    est = estimate_reliability(labels)
    table = est.table.set_index("annotator")
    assert table.loc["a", "labels"] == 1 and table.loc["b", "labels"] == 1 and table.loc["c", "labels"] == 0
    prior = PRIOR_CORRECT / (PRIOR_CORRECT + PRIOR_WRONG)
    assert table.loc["c", "reliability"] == pytest.approx(prior)
    assert set(est.posterior) == {"3"}
    empty = estimate_reliability(labels.iloc[:0])
    assert empty.table.empty and empty.converged


def test_bad_input_is_refused():
    with pytest.raises(InvalidInputError, match="columns"):
        estimate_reliability(pd.DataFrame({"item": [1]}))
    with pytest.raises(InvalidInputError, match="DataFrame"):
        estimate_reliability([("1", "a", "A")])
    with pytest.raises(InvalidInputError, match="gold answers"):
        estimate_reliability(pd.DataFrame(columns=["item", "annotator", "label"]), {"1": "tie"})


def test_label_weights():
    assert label_weights({"good": 0.9, "coin": 0.5, "bad": 0.2}) == pytest.approx({"good": 0.8, "coin": 0.0, "bad": 0.0})
    assert label_weights({"bad": 0.2}, floor=0.1) == {"bad": 0.1}
    with pytest.raises(InvalidInputError):
        label_weights({"x": 1.2})
