"""CaptionGenerator on a tiny random Llama saved to disk and loaded by path; sanitising and the template."""

from __future__ import annotations

import time

import pytest
import torch

from generation.captions import (
    TEMPLATE_VERSION,
    CaptionGenerator,
    caption_problem,
    caption_request,
    sanitize_caption,
    template_caption,
)
from generation.errors import ModelUnavailableError
from generation.profile import UserProfile
from generation.prompts import ItemInfo


@pytest.fixture(scope="module")
def captions(tiny_lm_dir, tmp_path_factory) -> CaptionGenerator:
    return CaptionGenerator(str(tiny_lm_dir), tmp_path_factory.mktemp("assets"), max_new_tokens=24,
                            fallback_on_error=False).load()


def test_gibberish_from_the_model_falls_back_to_a_labelled_template(captions, toy_story, scifi_fan, tiny_lm_dir):
    asset = captions.generate(toy_story, scifi_fan)
    assert not captions.uses_fallback  # the model loaded ...
    assert asset.fallback and asset.generator == "fallback"  # ... but its random-weight reply was not shown
    assert asset.params["model"] == str(tiny_lm_dir)
    assert asset.params["fallback_reason"].startswith("model output unusable: ")
    assert "raw_output" in asset.params and asset.params["model_source"] == "local"
    assert asset.text == template_caption(toy_story, scifi_fan, 0, captions.max_chars)
    assert asset.personalized and asset.user_id == "u-scifi" and asset.kind == "caption"
    assert asset.prompt == caption_request(toy_story, scifi_fan, captions.max_chars)


def test_greedy_decoding_is_deterministic(tiny_lm_dir, tmp_path, toy_story, scifi_fan):
    greedy = CaptionGenerator(str(tiny_lm_dir), tmp_path, max_new_tokens=24, sample=False, candidates=1).load()
    first = greedy._complete(caption_request(toy_story, scifi_fan, 200), seed=0)
    other = CaptionGenerator(str(tiny_lm_dir), tmp_path / "b", max_new_tokens=24, sample=False, candidates=1).load()
    assert other._complete(caption_request(toy_story, scifi_fan, 200), seed=5) == first  # greedy: seed irrelevant
    with pytest.raises(ValueError, match="^candidates must be 1 with sample=False"):
        CaptionGenerator(str(tiny_lm_dir), tmp_path, sample=False)


def test_sampling_follows_the_seed_and_leaves_global_rng_alone(tiny_lm_dir, tmp_path, toy_story):
    gen = CaptionGenerator(str(tiny_lm_dir), tmp_path, max_new_tokens=16, sample=True, temperature=1.5).load()
    request = caption_request(toy_story, None, 200)
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    a, b, c = (gen._complete(request, seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), state)
    assert a == b and a != c
    messages = gen.messages(toy_story, None)
    three = gen._complete_many(messages, 7, 3)  # one prompt read, its cache shared by three samples
    assert len(three) == 3 and len(set(three)) > 1 and gen._complete_many(messages, 7, 3) == three
    assert torch.equal(torch.get_rng_state(), state)


def test_a_usable_reply_is_sanitised_and_kept(captions, toy_story, scifi_fan, monkeypatch, tiny_lm_dir):
    reply = (
        "**Toy Story** is a <b>fun</b> pick for you, see https://example.com now. "
        "Like Star Wars, it is worth a look!\n- It also has a third sentence that will not fit"
    )
    replies = ["The viewer liked: Star Wars. Toy Story is for you.", reply, "Toy Story is a fine pick for you."]
    seen = []
    monkeypatch.setattr(captions, "_sample", lambda messages, seed, n, **kw: seen.append((messages, kw)) or (replies, 30))
    asset = captions.generate(toy_story, scifi_fan, seed=42)
    assert not asset.fallback and asset.generator == str(tiny_lm_dir)
    # the echo is refused; of the two that pass, the one that also names a liked title is preferred
    assert asset.text == "Toy Story is a fun pick for you, see now. Like Star Wars, it is worth a look!"
    assert asset.params["chosen"] == 1 and asset.params["candidates"] == 3 and asset.params["generated_tokens"] == 30
    assert asset.params["rejected"][0]["problem"].startswith("echoes")
    assert "fallback_reason" not in asset.params
    messages, kwargs = seen[0]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]  # the worked example first
    assert messages[-1]["content"] == caption_request(toy_story, scifi_fan, captions.max_chars)
    assert kwargs["opening"] == asset.params["opening"] and kwargs["opening"]  # the reply's first words


def test_when_every_reply_fails_the_template_says_why(captions, toy_story, scifi_fan, monkeypatch):
    replies = ["Toy Story is a 1987 horror classic for you.", "Toy Story, directed by Tom Hanks, is for you.",
               "Toy Story is fun. Toy Story is fun."]
    monkeypatch.setattr(captions, "_sample", lambda messages, seed, n, **kw: (replies, 40))
    asset = captions.generate(toy_story, scifi_fan, seed=43)
    assert asset.fallback and asset.generator == "fallback"
    assert asset.text == template_caption(toy_story, scifi_fan, 43, captions.max_chars)
    reason = asset.params["fallback_reason"]
    assert reason.startswith("model output unusable: ") and "year 1987" in reason and "repeats a sentence" in reason
    assert [r["reply"] for r in asset.params["rejected"]] == replies


def test_cache_hit_skips_the_model(captions, toy_story, romance_fan, monkeypatch):
    first = captions.generate(toy_story, romance_fan, seed=3)
    monkeypatch.setattr(captions, "_sample", lambda *a: pytest.fail("model called"))
    again = captions.generate(toy_story, romance_fan, seed=3)
    assert again.cache_hit and again.text == first.text and again.content_hash == first.content_hash


def test_missing_model_fails_fast_or_falls_back_labelled(tmp_path, toy_story, scifi_fan):
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="caption model 'org/no-llm' is not available"):
        CaptionGenerator("org/no-llm", tmp_path, cache_dir=tmp_path / "hf", fallback_on_error=False).load()
    assert time.perf_counter() - start < 5.0
    gen = CaptionGenerator("org/no-llm", tmp_path, cache_dir=tmp_path / "hf")
    asset = gen.generate(toy_story, scifi_fan)
    assert gen.uses_fallback and asset.fallback and asset.generator == "fallback"
    assert "org/no-llm" in asset.params["fallback_reason"] and asset.params["template"] == TEMPLATE_VERSION


def test_a_tokenizer_without_chat_template_is_refused(tiny_lm_dir, tmp_path):
    import json
    import shutil

    copy = shutil.copytree(tiny_lm_dir, tmp_path / "no-template")
    (copy / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelUnavailableError, match="no chat template"):
        CaptionGenerator(str(copy), tmp_path, fallback_on_error=False).load()


@pytest.mark.parametrize("max_chars", [40, 80, 220])
def test_template_is_grounded_and_within_limits(max_chars, scifi_fan):
    item = ItemInfo("9", "Star Trek: The Wrath of Khan", 1982, ["Action", "Adventure", "Sci-Fi"])
    for seed in range(4):
        text = template_caption(item, scifi_fan, seed, max_chars)
        assert 0 < len(text) <= max_chars
        assert "Star Trek" in text or "Wrath" in text
        assert caption_problem(text, item, scifi_fan) is None or max_chars < 60
    long = template_caption(item, scifi_fan, 0, 220)
    assert any(t in long for t in scifi_fan.liked_titles) and "sci-fi" in long.lower()
    generic = template_caption(item, None, 0, 220)
    assert not any(t in generic for t in scifi_fan.liked_titles)
    assert "action, adventure and sci-fi" in generic


def test_template_captions_of_one_slate_do_not_all_name_the_same_film(scifi_fan):
    assert len(scifi_fan.liked_titles) >= 2
    items = [ItemInfo(str(i), f"Space Film {i}", 1990 + i, ["Sci-Fi"]) for i in range(12)]
    captions = [template_caption(item, scifi_fan, 0, 220) for item in items]
    named = {title for text in captions for title in scifi_fan.liked_titles if title in text}
    assert len(named) >= 2
    assert captions == [template_caption(item, scifi_fan, 0, 220) for item in items]  # deterministic


def test_sanitiser_cuts_at_sentence_boundaries():
    assert sanitize_caption("One two three. Four five six. Seven.", 100) == "One two three. Four five six."
    assert sanitize_caption("One two three. Four five six seven eight nine.", 20) == "One two three."
    assert sanitize_caption("A sentence that never ends because tokens ran", 200) == ""
    assert sanitize_caption("A sentence far too long for the limit given here.", 20) == ""
    assert sanitize_caption("# Title\n\n`code` and <i>it</i>\x07 ok.", 100) == "Title code and it ok."
    assert sanitize_caption('"Quoted reply here."', 100) == "Quoted reply here."


def test_problem_detector(toy_story):
    profile = UserProfile("u", ["Alien"], ["Sci-Fi"], ["cosmic vistas"])
    assert caption_problem("Toy Story suits you: animation, and plenty of comedy.", toy_story, profile) is None
    assert caption_problem("Short.", toy_story, profile).startswith("no complete sentence")
    assert caption_problem("ÿ¿Ã ©®± ¶·¸ ¹º» ¼½¾ Toy Story ¿ÀÁ ÂÃÄ.", toy_story, profile).startswith("not prose")
    assert caption_problem("Xkcd qwrtp zxcvb Toy Story mnbvc lkjhg.", toy_story, profile).startswith("not words")
    assert caption_problem("You will enjoy this one a great deal tonight.", toy_story, profile).startswith(
        "does not name the item")
    assert caption_problem("Like Alien, Toy Story is one that should win you over.", toy_story, profile) is None
    assert caption_problem("Like Alien, this one is a pick that should win you over.", toy_story,
                           profile).startswith("does not name the item")


def test_inputs_are_checked(tmp_path, toy_story):
    gen = CaptionGenerator(None, tmp_path)
    with pytest.raises(ValueError, match="^item must be"):
        gen.generate("Toy Story")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^seed must be"):
        gen.generate(toy_story, None, seed=-3)
    with pytest.raises(ValueError, match="^max_chars must be"):
        CaptionGenerator(None, tmp_path, max_chars=10)
