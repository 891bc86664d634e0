"""Best-of-N with the real generator code: the fallback renderers, the tiny SD and the tiny LM."""

from __future__ import annotations

import pytest

from generation.assets import Asset
from generation.bestofn import caption_candidates, cover_candidates, pick_best, pick_best_caption, pick_first
from generation.captions import CaptionGenerator
from generation.covers import CoverGenerator
from generation.errors import InvalidInputError
from generation.policy import Arm, PromptPolicy, Style, segment_of
from generation.reward import HashingEncoder, RewardModel, UserFeatures
from reward_helpers import STYLES, make_world

ARMS = [Arm(Style(name, words), 0.6) for name, words in STYLES.items()]  # golden, gritty, neon (sorted below)


@pytest.fixture(scope="module")
def model() -> RewardModel:
    pairs, users, candidates = make_world(400, noise=0.05, seed=1)
    return RewardModel(HashingEncoder(64)).fit(pairs, users, candidates)


def _user(profile) -> UserFeatures:
    liked = {"u-scifi": "Rebels fight a galactic empire among the stars.", "u-romance": "A widower finds love on the radio."}
    return UserFeatures.from_profile(profile, [liked[profile.user_id]])


def test_fallback_covers_one_per_arm_best_is_the_preferred_style(model, tmp_path, toy_story, scifi_fan) -> None:
    gen = CoverGenerator(None, tmp_path / "assets").load()
    covers = cover_candidates(gen, toy_story, scifi_fan, ARMS, seed=3)
    assert len(covers) == 3 and len({c.path for c in covers}) == 3  # three files: seeds 3, 4, 5
    assert [c.seed for c in covers] == [3, 4, 5] and all(c.fallback for c in covers)
    for cover, arm in zip(covers, ARMS):
        assert cover.params["policy"] == {"style": arm.style.name, "keywords": list(arm.style.keywords),
                                          "alpha": 0.6, "segment": segment_of(scifi_fan)}
        assert arm.style.keywords[0] in cover.prompt
        others = {k for a in ARMS if a != arm for k in a.style.keywords}
        assert not any(k in cover.prompt for k in others)  # the table's style words gave way to the arm's
    pick = pick_best(model, _user(scifi_fan), covers)
    assert covers[pick.index].params["policy"]["style"] == "neon"
    assert pick.chosen.asset_id == covers[pick.index].content_hash
    assert pick.as_params()["best_of_n"]["n"] == 3 and pick.version == model.version


def test_tiny_sd_covers_through_the_same_code(model, tiny_sd_dir, tmp_path, toy_story, romance_fan) -> None:
    gen = CoverGenerator(str(tiny_sd_dir), tmp_path / "assets", size=64, steps=2, fallback_on_error=False).load()
    arms = [a for a in ARMS if a.style.name in ("neon", "golden")]
    covers = cover_candidates(gen, toy_story, romance_fan, arms, seed=0)
    assert not any(c.fallback for c in covers) and all(c.path for c in covers)
    pick = pick_best(model, _user(romance_fan), covers)
    assert covers[pick.index].params["policy"]["style"] == "golden"


def test_policy_arms_feed_best_of_n(model, tmp_path, toy_story, scifi_fan) -> None:
    policy = PromptPolicy([a.style for a in ARMS], alphas=(0.3, 0.9), seed=0)
    arms = [policy.choose(segment_of(scifi_fan)) for _ in range(4)]
    covers = cover_candidates(CoverGenerator(None, tmp_path).load(), toy_story, scifi_fan, arms, seed=0)
    pick = pick_best(model, _user(scifi_fan), covers)
    assert 0 <= pick.index < 4 and sorted(pick.order) == [0, 1, 2, 3]


def test_tiny_lm_captions_ranked_and_invented_facts_dropped(model, tiny_lm_dir, tmp_path, toy_story,
                                                          scifi_fan) -> None:
    gen = CaptionGenerator(str(tiny_lm_dir), tmp_path, max_new_tokens=16, sample=True, temperature=1.5,
                           fallback_on_error=False).load()
    captions = caption_candidates(gen, toy_story, scifi_fan, n=3, seed=0)
    assert 1 <= len(captions) <= 3 and len({c.text for c in captions}) == len(captions)
    invented = Asset(kind="caption", item_id=toy_story.item_id, user_id=scifi_fan.user_id, generator="sim",
                     fallback=False, prompt="req", negative_prompt="", seed=9,
                     text="A 1987 western classic by Steven Spielberg.", content_hash="f" * 64)
    pick, dropped = pick_best_caption(model, _user(scifi_fan), [invented, *captions], toy_story, scifi_fan)
    assert [d.text for d in dropped] == [invented.text] and len(dropped[0].problems) == 3
    assert pick is not None and pick.chosen.text in {c.text for c in captions}
    none, all_dropped = pick_best_caption(model, _user(scifi_fan), [invented], toy_story, scifi_fan)
    assert none is None and len(all_dropped) == 1


def test_without_a_choice_nothing_is_scored(model, tmp_path, toy_story, scifi_fan) -> None:
    """No reward model (`pick_first`), or a single candidate: the given order stands, no score, no version."""
    covers = cover_candidates(CoverGenerator(None, tmp_path).load(), toy_story, scifi_fan, ARMS, seed=0)
    first = pick_first(covers)
    assert first.index == 0 and first.order == (0, 1, 2) and first.chosen.asset_id == covers[0].content_hash
    assert [first.params_for(i)["best_of_n"] for i in range(3)] == [
        {"n": 3, "rank": i, "score": None, "version": None} for i in range(3)]
    alone = pick_best(model, _user(scifi_fan), covers[:1])
    assert alone.index == 0 and alone.scores == (None,) and alone.version is None


def _caption(item, text: str, tag: str) -> Asset:
    return Asset(kind="caption", item_id=item.item_id, user_id="u-scifi", generator="sim", fallback=False,
                 prompt="req", negative_prompt="", seed=0, text=text, content_hash=tag * 64)


def test_caption_choice_counts_every_caption_and_leaves_the_dropped_unranked(model, toy_story, scifi_fan) -> None:
    captions = [_caption(toy_story, "Toy Story: picked for you.", "a"),
                _caption(toy_story, "A 1987 western classic by Steven Spielberg.", "f"),
                _caption(toy_story, "Toy Story, a comedy where toys come alive.", "b")]
    pick, dropped = pick_best_caption(model, _user(scifi_fan), captions, toy_story, scifi_fan)
    params = [pick.params_for(i)["best_of_n"] for i in range(3)]
    assert [p["n"] for p in params] == [3, 3, 3] and params[1]["rank"] is None and params[1]["score"] is None
    assert sorted(params[i]["rank"] for i in (0, 2)) == [0, 1] and params[0]["score"] is not None
    assert pick.index in (0, 2) and pick.chosen.text == captions[pick.index].text and pick.version == model.version
    assert [d.text for d in dropped] == [captions[1].text]
    unscored, again = pick_best_caption(None, None, captions, toy_story, scifi_fan)
    assert unscored.index == 0 and unscored.order == (0, 2) and unscored.version is None and again == dropped
    assert unscored.params_for(2)["best_of_n"] == {"n": 3, "rank": 1, "score": None, "version": None}


def test_bad_input(model, tmp_path, toy_story, scifi_fan) -> None:
    gen = CoverGenerator(None, tmp_path).load()
    with pytest.raises(InvalidInputError, match="arms"):
        cover_candidates(gen, toy_story, scifi_fan, [], seed=0)
    with pytest.raises(InvalidInputError, match="assets"):
        pick_best(model, _user(scifi_fan), [])
    with pytest.raises(InvalidInputError, match="assets"):
        pick_first([])
    with pytest.raises(InvalidInputError, match="model"):
        pick_best(None, _user(scifi_fan), [ARMS])
