"""The generation loop's real-caption mode: traits measured from a caption's text, and a run end to end."""

from __future__ import annotations

import itertools
import json

import pytest

from annotation import store
from annotation.db import make_engine, make_session_factory
from app.simulate.cli import main
from app.simulate.generation_world import LONG_WORDS, Visitor, caption_text, measure_traits
from generation.profile import UserProfile
from generation.prompts import ItemInfo

LIKER = UserProfile("7", liked_titles=["Godfather, The", "Big", "Alien"], top_genres=["Crime", "Sci-Fi"],
                    keywords=["mob"])
GODFATHER_II = ItemInfo("10", "Godfather: Part II, The", 1974, ["Action", "Crime", "Drama"], "")
BLADE_RUNNER = ItemInfo("11", "Blade Runner", 1982, ["Film-Noir", "Sci-Fi"], "")
CRIME_STORY = ItemInfo("12", "Crime Story", None, ["Crime"], "")


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    from generation.testing import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm") / "model")


@pytest.mark.parametrize("text, item, traits", [
    # a liked title as a person writes it, a genre word, short, a full stop
    ("If you loved The Godfather, The Godfather: Part II is a crime film.", GODFATHER_II, (1, 1, 0, 0)),
    # the data's inverted spelling counts too; "gangster" is a word for crime; 13 words besides the titles; "!"
    ("Since you enjoyed Godfather, The, The Godfather: Part II is a gangster story you will want to watch "
     "again and again!", GODFATHER_II, (1, 1, 1, 1)),
    # "big" is not the title "Big"; "funny" promises a genre, it does not name one; 12 words: not long
    ("The Godfather: Part II is a big, funny and moving story for quiet evenings at home.", GODFATHER_II,
     (0, 0, 0, 0)),
    # genre words of the item's genres only: "romantic" names romance, which Blade Runner is not
    ("Blade Runner is a romantic tale of rain and neon!", BLADE_RUNNER, (0, 0, 0, 1)),
    ("Fans of Alien will find that Blade Runner is a moody sci-fi noir.", BLADE_RUNNER, (1, 1, 0, 0)),
    # a genre word inside the item's title does not count; an exclamation mark inside the text is not an ending
    ("Crime Story is one for you.", CRIME_STORY, (0, 0, 0, 0)),
    ("Blade Runner, wow! A pick for you, like Alien.", BLADE_RUNNER, (1, 0, 0, 0)),
])
def test_measure_traits_of_hand_written_captions(text, item, traits) -> None:
    assert measure_traits(text, item, LIKER) == traits


def test_long_is_counted_in_words_besides_the_titles() -> None:
    def words(n: int) -> str:
        return " ".join(["word"] * n)

    # "is" and n words besides the titles; digits are not words
    assert measure_traits(f"Blade Runner is {words(LONG_WORDS - 1)}.", BLADE_RUNNER, LIKER)[2] == 1
    assert measure_traits(f"Blade Runner is {words(LONG_WORDS - 2)} 1982.", BLADE_RUNNER, LIKER)[2] == 0
    # the titles' own words do not count: "If you loved" + "is" + LONG_WORDS - 5 words
    assert measure_traits(f"If you loved Alien, Blade Runner is {words(LONG_WORDS - 5)}.", BLADE_RUNNER, LIKER)[2] == 0


def test_template_captions_measure_as_written() -> None:
    """The measurement agrees with the template simulator on every trait set (an item with genres, not liked)."""
    visitor = Visitor("7", LIKER, None, "crime", "dark")
    for item in (GODFATHER_II, BLADE_RUNNER):
        for traits in itertools.product((0, 1), repeat=4):
            assert measure_traits(caption_text(item, visitor, traits), item, LIKER) == traits


def test_real_captions_with_a_tiny_lm_run_end_to_end(tmp_path, tiny_lm_dir) -> None:
    """A tiny random LM writes gibberish: every candidate is the template fallback, still judged and counted."""
    url = f"sqlite:///{tmp_path / 'vitrine.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("VITRINE_DATA_DIR", str(tmp_path / "data"))
    mp.setenv("VITRINE_CAPTION_RUNTIME", "transformers")  # the tiny LM on transformers: no ONNX build in a test
    mp.delenv("DATABASE_URL", raising=False)
    try:
        code = main(["--reward", "--captions", "real", "--caption-model", str(tiny_lm_dir), "--labels", "10",
                     "--holdout", "10", "--checkpoints", "10", "--users", "4", "--trials", "2", "--eval-pairs", "10",
                     "--encoder", "hashing", "--seed", "3", "--database-url", url, "--json", str(tmp_path / "r.json")])
    finally:
        mp.undo()
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    captions = report["captions"]
    assert captions["source"] == "real" and captions["runtime"] == "transformers"
    assert captions["made"] >= 2 * captions["loop_pairs"] + 2 * 2  # the loop's pairs and the best-of-2 trials
    assert captions["fallback"] == captions["made"]
    assert set(report["learning_curve"][0]["truth_accuracy_by_kind"]) == {"cover", "caption"}
    with make_session_factory(make_engine(url))() as s:
        assets = store.assets_frame(s)
    shown = assets[assets["kind"] == "caption"]
    assert len(shown) == 2 * captions["loop_pairs"] and shown["fallback"].all()
    assert (shown["generator"] == "fallback").all()
    for row in shown.itertuples():  # the traits stored are the ones measured from the stored text
        assert len(row.params["traits"]) == 4 and row.params["traits"][3] == int(row.text.endswith("!"))
    assert captions["later_pairs"] == report["learning_curve"][0]["n_test_by_kind"]["caption"]
    assert 0.0 <= captions["later_pairs_oracle_accuracy"] <= 1.0
    assert 0 <= captions["later_pairs_same_traits"] <= captions["later_pairs"]
