"""The prompt policy: Thompson sampling that finds each segment's preferred style, seeded and serialisable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generation.errors import InvalidInputError
from generation.policy import COLD, DEFAULT_STYLES, Arm, PromptPolicy, Style, segment_of, styled_profile
from generation.profile import UserProfile
from generation.prompts import build_prompt

STYLES = [Style("neon", ("futuristic neon", "cosmic vistas")), Style("golden", ("soft golden light", "tender pastel tones")),
          Style("gritty", ("gritty city at night", "hard shadows")), Style("fog", ("eerie darkness", "unsettling fog"))]
# the true chance that each style wins a comparison, per segment (unknown to the policy)
TRUTH = {"scifi": {"neon": 0.8, "golden": 0.3, "gritty": 0.55, "fog": 0.45},
         "romance": {"neon": 0.3, "golden": 0.8, "gritty": 0.45, "fog": 0.4}}
BEST_ALPHA = {"scifi": 0.9, "romance": 0.3}


def _utility(segment: str, arm: Arm) -> float:
    return TRUTH[segment][arm.style.name] - 0.3 * abs(arm.alpha - BEST_ALPHA[segment])


def _run(policy: PromptPolicy, rounds: int, seed: int = 0) -> list[float]:
    """Each round: the policy's arm against a random other arm, the truly better one wins 90% of the time."""
    rng = np.random.default_rng(seed + 100)
    arms = policy.arms
    regrets = []
    for t in range(rounds):
        segment = ("scifi", "romance")[t % 2]
        chosen = policy.choose(segment)
        best = max(_utility(segment, a) for a in arms)
        regrets.append(best - _utility(segment, chosen))
        other = policy.partner(chosen)
        better, worse = (chosen, other) if _utility(segment, chosen) > _utility(segment, other) else (other, chosen)
        if rng.random() < 0.1:
            better, worse = worse, better
        policy.update_pair(segment, better, worse)
    return regrets


def test_learns_each_segments_best_style_and_alpha_and_regret_falls() -> None:
    policy = PromptPolicy(STYLES, alphas=(0.3, 0.6, 0.9), seed=0)
    regrets = _run(policy, 600)
    assert policy.best("scifi") == policy.arm("neon", 0.9)
    assert policy.best("romance") == policy.arm("golden", 0.3)
    assert np.mean(regrets[-150:]) < 0.5 * np.mean(regrets[:150])
    # a uniform random choice has a much larger regret than the learnt policy at the end
    arms = policy.arms
    random_regret = np.mean([max(_utility(s, a) for a in arms) - _utility(s, b) for s in TRUTH for b in arms])
    assert np.mean(regrets[-150:]) < 0.5 * random_regret


def test_seeded_and_serialisable_continues_identically() -> None:
    a = PromptPolicy(STYLES, seed=7)
    _run(a, 100)
    state = json.loads(json.dumps(a.to_dict()))  # JSON-able
    b = PromptPolicy.from_dict(state)
    assert [a.choose("scifi") for _ in range(20)] == [b.choose("scifi") for _ in range(20)]
    assert b.posterior_mean("romance") == a.posterior_mean("romance")
    c, d = PromptPolicy(STYLES, seed=3), PromptPolicy(STYLES, seed=3)
    assert [c.choose("x").key for _ in range(10)] == [d.choose("x").key for _ in range(10)]


def test_picks_and_likes_are_evidence_likes_weaker() -> None:
    policy = PromptPolicy(STYLES, seed=0, like_weight=0.25)
    neon, golden, fog = policy.arm("neon", 0.6), policy.arm("golden", 0.3), policy.arm("fog", 0.9)
    policy.update_pick("scifi", neon, [neon, golden, fog])
    counts = policy.counts["scifi"]["style"]
    assert counts[0].tolist() == [2.0, 0.0] and counts[1].tolist() == [0.0, 1.0] and counts[3].tolist() == [0.0, 1.0]
    assert policy.counts["scifi"]["alpha"].sum() == 0  # two styles decided those: the alphas learn nothing
    policy.update_pair("scifi", policy.arm("neon", 0.9), policy.arm("neon", 0.3))
    assert policy.counts["scifi"]["alpha"].tolist() == [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]
    assert policy.partner(neon) != neon
    policy.update_like("romance", golden)
    policy.update_like("romance", fog, liked=False)
    assert policy.counts["romance"]["style"][1].tolist() == [0.25, 0.0]
    assert policy.counts["romance"]["style"][3].tolist() == [0.0, 0.25]
    means = policy.posterior_mean("scifi")["style"]
    assert means["neon"] > means["gritty"] > means["golden"]


def test_arm_of_asset_params_and_styled_prompts() -> None:
    policy = PromptPolicy(seed=0)  # the default styles: one per genre of the old fixed table
    assert len(policy.styles) == len(DEFAULT_STYLES) >= 18
    arm = policy.arm("scifi", 0.6)
    profile = UserProfile("u", liked_titles=["Emma"], top_genres=["Romance", "Drama"],
                          keywords=["soft golden light", "tender pastel tones", "intimate mood", "matchmaker"])
    assert segment_of(profile) == "romance" and segment_of(None) == COLD and segment_of(["unknown"]) == COLD
    styled = styled_profile(profile, arm)
    # the table's style words (romance's, drama's) gave way to the arm's; the content word stays
    assert styled.keywords == ["futuristic neon", "cosmic vistas", "matchmaker"]
    assert profile.keywords[0] == "soft golden light"
    from generation.prompts import ItemInfo

    prompt = build_prompt(ItemInfo("1", "Heat", 1995, ["Crime"], "A detective hunts a thief."), styled, arm.alpha)
    assert "futuristic neon" in prompt.text
    assert policy.arm_of(prompt.keywords, prompt.alpha) == arm
    assert policy.arm_of([], 0.0) is None and policy.arm_of(["cosmic vistas"], 0.0) is None
    assert arm.as_params("romance") == {"policy": {"style": "scifi", "keywords": ["futuristic neon", "cosmic vistas"],
                                                   "alpha": 0.6, "segment": "romance"}}


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="alphas"):
        PromptPolicy(STYLES, alphas=(0.0, 0.5))
    with pytest.raises(InvalidInputError, match="styles"):
        PromptPolicy([STYLES[0], STYLES[0]])
    with pytest.raises(InvalidInputError, match="style"):
        PromptPolicy(STYLES).arm("nope", 0.5)
    with pytest.raises(InvalidInputError, match="segment"):
        PromptPolicy(STYLES).choose("")
    with pytest.raises(InvalidInputError, match="state"):
        PromptPolicy.from_dict({"nothing": 1})


def test_labels_on_stored_assets_update_the_policy_through_their_params() -> None:
    policy = PromptPolicy(STYLES, alphas=(0.3, 0.9), seed=0)
    neon, golden = policy.arm("neon", 0.9), policy.arm("golden", 0.9)
    assert policy.arm_from_params(neon.as_params("scifi")) == neon
    # a cover made before the policy existed: its prompt keywords name the style
    legacy = {"keywords": ["soft golden light", "playful"], "alpha": 0.8}
    assert policy.arm_from_params(legacy) == golden
    assert policy.arm_from_params({"keywords": [], "alpha": 0.0}) is None  # a generic cover
    assert policy.arm_from_params({"policy": {"style": "unknown", "alpha": 0.5}}) is None
    assert policy.arm_from_params(None) is None
    assert policy.update_from_label("scifi", neon.as_params("scifi"), legacy, "B")
    assert policy.counts["scifi"]["style"][1].tolist() == [1.0, 0.0] and policy.counts["scifi"]["style"][0].tolist() == [0.0, 1.0]
    assert not policy.update_from_label("scifi", neon.as_params("scifi"), legacy, "tie")
    assert not policy.update_from_label("scifi", neon.as_params("scifi"), {"alpha": 0.0}, "A")
    assert policy.n_updates == 1
