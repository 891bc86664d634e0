"""CoverGenerator on a tiny Stable Diffusion saved to disk and loaded by path (the real loading code)."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch
from PIL import Image

from generation.assets import IMAGE_FORMATS
from generation.compose import compose_poster
from generation.covers import CoverGenerator
from generation.errors import ModelUnavailableError
from generation.prompts import build_prompt
from generation.testing import fake_hf_cache


def pixels(asset) -> np.ndarray:
    return np.asarray(Image.open(asset.path)).astype(np.int16)


@pytest.fixture(scope="module")
def covers_factory(tiny_sd_dir, tmp_path_factory):
    def make(asset_dir=None, **kw) -> CoverGenerator:
        kw.setdefault("size", 64)
        kw.setdefault("steps", 2)
        return CoverGenerator(
            str(tiny_sd_dir), asset_dir or tmp_path_factory.mktemp("assets"), fallback_on_error=False, **kw
        )

    return make


@pytest.fixture(scope="module")
def covers(covers_factory) -> CoverGenerator:
    return covers_factory().load()


def test_same_inputs_same_image_across_instances(covers, covers_factory, toy_story, scifi_fan):
    a = covers.generate(toy_story, scifi_fan, seed=7)[0]
    fresh = covers_factory()  # another instance, another store: a real second model call
    b = fresh.generate(toy_story, scifi_fan, seed=7)[0]
    assert not a.cache_hit and not b.cache_hit
    assert np.array_equal(pixels(a), pixels(b))
    assert a.content_hash == b.content_hash
    assert Image.open(a.path).size == (64, 96)  # 2:3 poster around 64x64 art


def test_candidates_have_distinct_seeds_and_differ(covers, toy_story, scifi_fan):
    assets = covers.generate(toy_story, scifi_fan, n=3, seed=100)
    assert [a.seed for a in assets] == [100, 101, 102]
    assert len({a.content_hash for a in assets}) == 3
    art = [pixels(a)[:64] for a in assets]  # the generated part of the poster
    assert np.abs(art[0] - art[1]).mean() > 1.0 and np.abs(art[1] - art[2]).mean() > 1.0


def test_output_is_the_bare_diffusers_image_framed(covers, tiny_sd_dir, toy_story, scifi_fan):
    """No hidden changes: the poster holds exactly what a bare diffusers call makes for the same prompt and seed."""
    from diffusers import AutoPipelineForText2Image

    asset = covers.generate(toy_story, scifi_fan, seed=3, alpha=0.5)[0]
    pipe = AutoPipelineForText2Image.from_pretrained(str(tiny_sd_dir))
    pipe.set_progress_bar_config(disable=True)
    bare = pipe(
        build_prompt(toy_story, scifi_fan, 0.5).text,
        num_inference_steps=2,
        guidance_scale=0.0,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(3),
    ).images[0]
    expected = compose_poster(bare, toy_story.title, toy_story.year)
    encoded = io.BytesIO()
    expected.save(encoded, format="JPEG", **IMAGE_FORMATS["jpeg"][2])  # the store's default encoding
    assert asset.path.endswith(".jpg")
    assert np.array_equal(pixels(asset), np.asarray(Image.open(encoded)).astype(np.int16))


def test_png_is_lossless(covers_factory, toy_story):
    gen = covers_factory(image_format="png")
    asset = gen.generate(toy_story, None, seed=3)[0]
    art = gen._denoise(build_prompt(toy_story, None, 0.0), 3, None, 0, 2)
    assert asset.path.endswith(".png") and asset.params["image_format"] == "png"
    expected = np.asarray(compose_poster(art, toy_story.title, toy_story.year)).astype(np.int16)
    assert np.array_equal(pixels(asset), expected)


def test_personalized_and_generic_covers_differ(covers, toy_story, scifi_fan, romance_fan):
    scifi = covers.generate(toy_story, scifi_fan, seed=0)[0]
    romance = covers.generate(toy_story, romance_fan, seed=0)[0]
    generic = covers.generate(toy_story, None, seed=0)[0]
    assert scifi.personalized and romance.personalized and not generic.personalized
    assert len({scifi.prompt, romance.prompt, generic.prompt}) == 3
    assert generic.user_id is None and scifi.user_id == "u-scifi"
    assert not np.array_equal(pixels(scifi)[:64], pixels(generic)[:64])  # same seed, other prompt, other art


def test_cache_hit_skips_the_model(covers, toy_story, romance_fan, monkeypatch):
    first = covers.generate(toy_story, romance_fan, n=2, seed=500)
    calls = []
    monkeypatch.setattr(covers, "_denoise", lambda *a, **k: calls.append(a) or pytest.fail("model called"))
    again = covers.generate(toy_story, romance_fan, n=2, seed=500)
    assert calls == [] and all(a.cache_hit for a in again)
    assert [a.path for a in again] == [a.path for a in first]
    assert [a.latency_ms for a in again] == [a.latency_ms for a in first]  # the provenance of the original


def test_progress_is_reported_per_step(covers, toy_story):
    seen = []
    covers.generate(toy_story, None, n=2, seed=900, callback=lambda step, total: seen.append((step, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    seen.clear()
    covers.generate(toy_story, None, n=2, seed=900, callback=lambda step, total: seen.append((step, total)))
    assert seen == [(2, 4), (4, 4)]  # cached candidates advance by a whole candidate


def test_provenance_is_complete(covers, toy_story, scifi_fan, tiny_sd_dir):
    asset = covers.generate(toy_story, scifi_fan, seed=11, alpha=0.75)[0]
    assert asset.kind == "cover" and asset.generator == str(tiny_sd_dir) and not asset.fallback
    assert asset.prompt == build_prompt(toy_story, scifi_fan, 0.75).text and asset.seed == 11
    assert asset.negative_prompt == ""  # guidance off: no negative prompt is used, none is recorded
    assert asset.params["steps"] == 2 and asset.params["width"] == 64 and asset.params["alpha"] == 0.75
    assert asset.params["model_source"] == "local" and asset.params["dtype"] == "float32"
    assert asset.params["keywords"] and all(k in asset.prompt for k in asset.params["keywords"])
    assert asset.latency_ms > 0 and len(asset.content_hash) == 64
    assert set(asset.to_dict()) >= {"kind", "item_id", "user_id", "generator", "fallback", "prompt", "negative_prompt",
                                     "seed", "params", "path", "text", "content_hash", "latency_ms", "personalized",
                                     "cache_hit"}


def test_guidance_records_the_negative_prompt(covers_factory, toy_story):
    asset = covers_factory(guidance_scale=3.0).generate(toy_story, None, seed=1)[0]
    assert asset.negative_prompt.startswith("text, letters") and asset.params["guidance_scale"] == 3.0


def test_hub_id_found_in_the_hf_cache(tiny_sd_dir, tmp_path, toy_story):
    fake_hf_cache(tmp_path / "hf", "org/tiny-sd", tiny_sd_dir)
    gen = CoverGenerator("org/tiny-sd", tmp_path / "assets", size=64, cache_dir=tmp_path / "hf", fallback_on_error=False)
    asset = gen.generate(toy_story, None)[0]
    assert asset.generator == "org/tiny-sd" and asset.params["model_source"] == "cache" and not asset.fallback


def test_missing_model_fails_fast_or_falls_back_labelled(tmp_path, toy_story, scifi_fan):
    start = time.perf_counter()
    strict = CoverGenerator("org/not-here", tmp_path, size=64, cache_dir=tmp_path / "hf", fallback_on_error=False)
    with pytest.raises(ModelUnavailableError, match="cover model 'org/not-here' is not available"):
        strict.load()
    assert time.perf_counter() - start < 5.0

    lenient = CoverGenerator("org/not-here", tmp_path, size=64, cache_dir=tmp_path / "hf").load()
    assert lenient.uses_fallback and "org/not-here" in lenient.unavailable_reason
    assets = lenient.generate(toy_story, scifi_fan, n=2, seed=0)
    for asset in assets:
        assert asset.fallback and asset.generator == "fallback"
        assert asset.params["renderer"] == "typographic-v1" and asset.params["prompt_used"] is False
        assert "org/not-here" in asset.params["fallback_reason"]
        assert asset.prompt == build_prompt(toy_story, scifi_fan, 0.5).text  # the prompt is still stored
        assert Image.open(asset.path).size == (64, 96)
    assert not np.array_equal(pixels(assets[0]), pixels(assets[1]))  # candidates differ by seed


def test_fallback_file_is_shared_by_users_each_keeping_its_prompt(tmp_path, toy_story, scifi_fan, romance_fan,
                                                                  monkeypatch):
    """The typographic cover does not read the prompt: other users of the same item and seed get the same file
    without a second render, yet each asset records its own prompt and personalization."""
    import generation.covers as covers_module

    gen = CoverGenerator(None, tmp_path, size=64)
    scifi = gen.generate(toy_story, scifi_fan, seed=4)[0]
    monkeypatch.setattr(covers_module, "render_fallback_cover", lambda *a, **k: pytest.fail("rendered twice"))
    romance = gen.generate(toy_story, romance_fan, seed=4)[0]
    generic = gen.generate(toy_story, None, seed=4)[0]
    assert not scifi.cache_hit and romance.cache_hit and generic.cache_hit
    assert scifi.path == romance.path == generic.path
    assert romance.prompt == build_prompt(toy_story, romance_fan, 0.5).text != scifi.prompt
    assert romance.params["keywords"] == list(build_prompt(toy_story, romance_fan, 0.5).keywords)
    assert romance.personalized and not generic.personalized and generic.user_id is None
    assert romance.user_id == "u-romance"
    other_seed = CoverGenerator(None, tmp_path, size=64)
    monkeypatch.undo()
    assert other_seed.generate(toy_story, romance_fan, seed=5)[0].path != scifi.path


def test_no_model_configured_is_the_fallback(tmp_path, toy_story):
    gen = CoverGenerator(None, tmp_path, size=64)
    asset = gen.generate(toy_story, None)[0]
    assert asset.fallback and asset.params["fallback_reason"] == "no cover model configured (model=None)"
    assert gen.generate(toy_story, None)[0].cache_hit


@pytest.mark.parametrize(
    "kwargs, name",
    [({"n": 0}, "n"), ({"n": 17}, "n"), ({"seed": -1}, "seed"), ({"alpha": 2}, "alpha"), ({"callback": 3}, "callback")],
)
def test_generate_checks_inputs(kwargs, name, tmp_path, toy_story):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        CoverGenerator(None, tmp_path, size=64).generate(toy_story, None, **kwargs)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"size": 60}, "size"), ({"steps": 0}, "steps"), ({"device": "tpu"}, "device"), ({"model": ""}, "model"),
     ({"image_format": "gif"}, "image_format")],
)
def test_constructor_checks_inputs(kwargs, name, tmp_path):
    kwargs.setdefault("model", None)
    with pytest.raises(ValueError, match=f"^{name} must be"):
        CoverGenerator(asset_dir=tmp_path, **kwargs)


def test_a_broken_model_directory_is_reported_not_crashed(tmp_path, toy_story):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}')
    with pytest.raises(ModelUnavailableError, match="found, but failed to load"):
        CoverGenerator(str(broken), tmp_path / "a", fallback_on_error=False).load()
    lenient = CoverGenerator(str(broken), tmp_path / "a", size=64)
    asset = lenient.generate(toy_story, None)[0]
    assert asset.fallback and "failed to load" in asset.params["fallback_reason"]


def test_the_model_loads_once(covers, toy_story):
    pipe = covers._pipe
    assert covers.load() is covers and covers._pipe is pipe
    covers.generate(toy_story, None, seed=4242)
    assert covers._pipe is pipe
