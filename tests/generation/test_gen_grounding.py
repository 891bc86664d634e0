"""Caption grounding: captions that invent a year, a person, a place or a genre are dropped."""

from __future__ import annotations

import pytest

from generation.captions import template_caption
from generation.errors import InvalidInputError
from generation.grounding import check_caption, filter_grounded, grounding_problems
from generation.profile import UserProfile
from generation.prompts import ItemInfo

ITEM = ItemInfo("1", "Toy Story", 1995, ["Animation", "Children's", "Comedy"],
                "Toys come alive when their owner Andy leaves the room.")
PROFILE = UserProfile("u", liked_titles=["Star Wars (1977)", "Aladdin (1992)"], top_genres=["Sci-Fi", "Comedy"],
                      keywords=["futuristic neon", "playful mood"])

GROUNDED = [
    "Because you enjoyed Star Wars (1977), Toy Story (1995) should suit you: more of the comedy you love.",
    "Toy Story (1995) is a film of animation, children's and comedy, picked for you.",
    "Toy Story matches your taste for sci-fi and comedy, with a playful mood.",
    "Fans of Aladdin will love Toy Story. It is fun for everyone!",
    "Andy's toys come alive in Toy Story, a gem of the 1990s.",
]
INVENTED = {
    "Toy Story is a 1987 classic you will love.": "year 1987",
    "Directed by Steven Spielberg, Toy Story delights.": "name 'Steven Spielberg'",
    "Steven Spielberg made Toy Story a delight.": "name 'Steven Spielberg'",
    "Tom Hanks voices the cowboy in Toy Story.": "name 'Tom Hanks'",
    "Set in Paris, Toy Story charms everyone.": "place 'Paris'",
    "Toy Story follows toys lost in Tokyo.": "place 'Tokyo'",
    "A romantic tale of toys that come alive.": "genre 'romantic'",
    "A chilling horror ride about toys.": "genre 'horror'",
    "Toy Story is a western at heart.": "genre 'western'",
    "Toy Story brings back the 80s with a grin.": "decade 'the 80s'",
    "A gem of the 1960s, Toy Story is fun.": "decade 1960s",
}


@pytest.mark.parametrize("text", GROUNDED)
def test_grounded_captions_pass(text: str) -> None:
    assert grounding_problems(text, ITEM, PROFILE) == []


@pytest.mark.parametrize("text,claim", list(INVENTED.items()))
def test_invented_facts_are_named(text: str, claim: str) -> None:
    problems = grounding_problems(text, ITEM, PROFILE)
    assert any(p.startswith(claim) for p in problems), problems


def test_facts_from_the_profile_only_count_when_the_profile_is_given() -> None:
    text = "Toy Story is for fans of Star Wars and sci-fi."
    assert grounding_problems(text, ITEM, PROFILE) == []
    problems = grounding_problems(text, ITEM, None)
    assert any("Star Wars" in p for p in problems) and any("sci-fi" in p for p in problems)


def test_filter_keeps_order_and_reports_reasons() -> None:
    texts = [GROUNDED[0], *INVENTED, GROUNDED[1]]
    kept, dropped = filter_grounded(texts, ITEM, PROFILE)
    assert kept == [GROUNDED[0], GROUNDED[1]]
    assert [d.text for d in dropped] == list(INVENTED) and all(not d.grounded and d.problems for d in dropped)
    assert check_caption(GROUNDED[2], ITEM, PROFILE).grounded
    with pytest.raises(InvalidInputError, match="texts"):
        filter_grounded("one caption", ITEM, PROFILE)


@pytest.mark.parametrize("seed", range(6))
def test_the_template_fallback_is_always_grounded(seed: int) -> None:
    for profile in (PROFILE, None):
        text = template_caption(ITEM, profile, seed, 220)
        assert grounding_problems(text, ITEM, profile) == [], text
