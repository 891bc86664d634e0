"""The generation loop's dashboard figures: pure functions over frames shaped like the store's."""

from __future__ import annotations

import pandas as pd
import pytest

from app.dashboard.generation_views import (
    best_of_n_figure,
    best_of_n_outcomes,
    best_of_n_rates,
    policy_style_mix,
    policy_style_mix_figure,
    reward_accuracy_figure,
    reward_accuracy_frame,
)
from generation.reward import BestOfN, Candidate

T0 = pd.Timestamp("2026-11-01 10:00")


def test_reward_accuracy_per_version() -> None:
    runs = pd.DataFrame({
        "run_id": [1, 2, 3, 4], "model": ["reward", "ease", "reward", "reward"],
        "created_at": [T0, T0, T0 + pd.Timedelta("1D"), T0 + pd.Timedelta("2D")],
        "config": [{"version": "reward-aaa", "labels": 100}, {}, {"version": "reward-bbb", "labels": 500},
                   {"version": "reward-<b>"}],
        "heldout_accuracy": [0.55, float("nan"), 0.68, 0.74], "truth_accuracy": [0.6, float("nan"), 0.7, None],
    })
    frame = reward_accuracy_frame(runs)
    assert frame["version"].tolist() == ["reward-aaa", "reward-aaa", "reward-bbb", "reward-bbb", "reward-<b>"]
    assert frame[frame["metric"] == "heldout_accuracy"]["value"].tolist() == [0.55, 0.68, 0.74]
    fig = reward_accuracy_figure(runs)
    xs = [x for trace in fig.data for x in trace.x]
    assert "reward-&lt;b&gt;" in xs and "reward-<b>" not in xs  # names are escaped for plotly's HTML labels
    assert len(fig.data) == 2 and fig.layout.yaxis.range == (0.0, 1.0)
    assert len(reward_accuracy_frame(runs[runs["model"] == "ease"])) == 0
    with pytest.raises(ValueError, match="config"):
        reward_accuracy_frame(runs.drop(columns="config"))


def test_policy_style_mix_over_time() -> None:
    def cover(style, day):
        return {"kind": "cover", "created_at": T0 + pd.Timedelta(days=day),
                "params": {"policy": {"style": style, "alpha": 0.6}} if style else {"alpha": 0.5}}

    assets = pd.DataFrame([cover("scifi", 0), cover("drama", 0), cover("drama", 0), cover(None, 0),
                           cover("scifi", 1), {"kind": "caption", "created_at": T0, "params": {}}])
    mix = policy_style_mix(assets)
    day0 = mix[mix["period"] == T0.normalize()].set_index("style")
    assert day0.loc["drama", "n"] == 2 and day0.loc["drama", "share"] == pytest.approx(2 / 3)
    assert mix.groupby("period")["share"].sum().round(9).eq(1.0).all()
    fig = policy_style_mix_figure(mix)
    assert {t.name for t in fig.data} == {"scifi", "drama"}
    assert policy_style_mix(assets[assets["kind"] == "caption"]).empty


def test_best_of_n_win_rate_from_labels() -> None:
    cands = [Candidate(str(i), "cover", "p") for i in range(3)]
    pick = BestOfN(index=2, chosen=cands[2], scores=(0.1, 0.5, 0.9), order=(2, 1, 0), version="reward-v1")
    assert pick.as_params()["best_of_n"]["rank"] == 0 and pick.params_for(0)["best_of_n"]["rank"] == 2
    assets = pd.DataFrame({"asset_id": [10, 11, 12, 13],
                           "params": [pick.params_for(2), pick.params_for(0), pick.params_for(1), {}]})
    prefs = pd.DataFrame({
        "asset_a_id": [10, 11, 10, 12, 10, 10], "asset_b_id": [11, 10, 12, 11, 13, 12],
        "choice": ["A", "A", "B", "A", "A", "tie"],
        "created_at": [T0, T0, T0 + pd.Timedelta("1D"), T0, T0, T0],
    })
    outcomes = best_of_n_outcomes(prefs, assets)
    # rows: pick won (A=pick), pick lost (A=other), pick lost (B=other); 12 vs 11: no pick; 13: not best-of-N; tie
    assert outcomes["won"].tolist() == [True, False, False] and set(outcomes["version"]) == {"reward-v1"}
    rates = best_of_n_rates(outcomes)
    assert rates["trials"].tolist() == [2, 1] and rates["rate"].tolist() == [0.5, 0.0]
    assert (rates["low"] <= rates["rate"]).all() and (rates["rate"] <= rates["high"]).all()
    fig = best_of_n_figure(rates)
    assert list(fig.data[0].y) == [0.5, 0.0]
    assert len(best_of_n_figure(best_of_n_rates(outcomes.iloc[0:0])).data) == 0
