"""Profiles and personalized prompts: two users with different histories get the prompts one expects."""

from __future__ import annotations

import pytest

from generation.errors import InvalidInputError
from generation.profile import GENRE_STYLES, UserProfile, build_profile
from generation.prompts import NEGATIVE_PROMPT, ItemInfo, build_prompt, prompt_pair

SCIFI_STYLE = set(GENRE_STYLES["scifi"])
ROMANCE_STYLE = set(GENRE_STYLES["romance"])


def test_profile_reflects_liked_items_only(scifi_fan, romance_fan):
    assert scifi_fan.top_genres[0] == "Sci-Fi"
    assert "Romance" not in scifi_fan.top_genres  # rated 1 star: not liked
    assert SCIFI_STYLE <= set(scifi_fan.keywords)
    assert not ROMANCE_STYLE & set(scifi_fan.keywords)
    assert romance_fan.top_genres[0] == "Romance"
    assert ROMANCE_STYLE <= set(romance_fan.keywords)
    assert not SCIFI_STYLE & set(romance_fan.keywords)
    assert "Western" not in romance_fan.top_genres
    # newest first, disliked titles left out
    assert scifi_fan.liked_titles == ["Return of the Jedi", "Alien", "Star Wars"]
    # a content word recurring in liked items becomes a keyword
    assert "galactic" in scifi_fan.keywords


def test_recency_decides_between_equal_tastes():
    rows = [
        {"item_id": str(i), "title": f"t{i}", "genres": [g], "rating": 5.0, "timestamp": ts}
        for i, (g, ts) in enumerate([("Western", 10), ("Horror", 20), ("Western", 30), ("Horror", 40)])
    ]
    assert build_profile("u", rows).top_genres[0] == "Horror"  # the two Horror likes are the newer ones
    rows[3]["timestamp"] = 5
    assert build_profile("u", rows).top_genres[0] == "Western"


def test_preferred_prompts_feed_the_keywords(scifi_history):
    plain = build_profile("u", scifi_history)
    pref = "poster art for the film \"X\" (1990), watercolor wash, watercolor wash, cinematic composition, highly detailed"
    boosted = build_profile("u", scifi_history, preferred_prompts=[pref, pref, pref])
    assert "watercolor wash" not in plain.keywords
    assert boosted.keywords[0] == "watercolor wash"
    assert "cinematic composition" not in boosted.keywords  # every prompt has it: no signal
    assert boosted.preferred_prompts == [pref] * 3


def test_personalized_prompts_follow_each_users_taste(toy_story, scifi_fan, romance_fan):
    scifi = build_prompt(toy_story, scifi_fan, alpha=0.5)
    romance = build_prompt(toy_story, romance_fan, alpha=0.5)
    generic = build_prompt(toy_story, None)
    assert scifi.personalized and romance.personalized and not generic.personalized
    assert scifi.text != romance.text != generic.text
    assert any(k in scifi.text for k in SCIFI_STYLE) and not any(k in scifi.text for k in ROMANCE_STYLE)
    assert any(k in romance.text for k in ROMANCE_STYLE) and not any(k in romance.text for k in SCIFI_STYLE)
    for prompt in (scifi, romance, generic):
        assert prompt.text.startswith('poster art for the film "Toy Story" (1995)')  # the item stays the subject
        assert prompt.negative == NEGATIVE_PROMPT
        assert all(k in prompt.text for k in prompt.keywords)
    assert generic.keywords == [] and not any(k in generic.text for k in scifi_fan.keywords)
    # a user keyword the item already has (comedy's warm colours) is the item's phrase, not repeated
    shared = [k for k in romance_fan.keywords if k in generic.item_phrases]
    assert shared and all(romance.text.count(k) <= 1 for k in shared) and not set(shared) & set(romance.keywords)
    assert prompt_pair(toy_story, scifi_fan, 0.5) == (scifi, generic)


def test_alpha_weighs_item_against_user(toy_story, scifi_fan):
    prompts = [build_prompt(toy_story, scifi_fan, a) for a in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert prompts[0] == build_prompt(toy_story, None)  # alpha 0 is the generic prompt
    n_user = [len(p.keywords) for p in prompts]
    n_item = [len(p.item_phrases) for p in prompts]
    assert n_user == sorted(n_user) and n_user[0] == 0 and n_user[-1] > n_user[1]
    assert n_item == sorted(n_item, reverse=True) and n_item[-1] >= 1
    # the heavier side comes first
    text = prompts[-1].text
    assert text.index(prompts[-1].keywords[0]) < text.index(prompts[-1].item_phrases[0])
    text = prompts[1].text
    assert text.index(prompts[1].item_phrases[0]) < text.index(prompts[1].keywords[0])


def test_cold_start_user_gets_the_generic_prompt(toy_story):
    empty = UserProfile("new")
    assert empty.is_empty
    assert build_prompt(toy_story, empty, 1.0).text == build_prompt(toy_story, None).text


def test_prompt_is_readable_and_short(toy_story, scifi_fan):
    prompt = build_prompt(toy_story, scifi_fan, 0.5)
    assert len(prompt.text.split()) < 45  # fits CLIP's 77 tokens with room to spare
    assert "<" not in prompt.text and "\n" not in prompt.text


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda item, prof: build_prompt(item, prof, alpha=1.5), "alpha"),
        (lambda item, prof: build_prompt("Toy Story", prof), "item"),
        (lambda item, prof: build_prompt(item, {"user_id": "x"}), "profile"),
        (lambda item, prof: build_profile("", []), "user_id"),
        (lambda item, prof: build_profile("u", [{"item_id": "1", "rating": "five"}]), "history[0]['rating']"),
        (lambda item, prof: build_profile("u", [{"title": "no id"}]), "history[0]['item_id']"),
        (lambda item, prof: build_profile("u", [{"item_id": "1", "genres": "Drama"}]), "history[0]['genres']"),
        (lambda item, prof: ItemInfo("1", "", 1995), "ItemInfo.title"),
        (lambda item, prof: ItemInfo("1", "T", "1995"), "ItemInfo.year"),
    ],
)
def test_bad_input_is_named(call, name, toy_story, scifi_fan):
    with pytest.raises(InvalidInputError) as err:
        call(toy_story, scifi_fan)
    assert str(err.value).startswith(name) and " must be " in str(err.value) and ", got " in str(err.value)


def test_numpy_year_is_accepted():
    np = pytest.importorskip("numpy")
    assert ItemInfo("1", "T", np.int64(1999)).year == 1999
