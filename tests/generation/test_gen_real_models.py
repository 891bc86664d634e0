"""The real default checkpoints, when they are in the local HF cache (marked `slow`; skipped otherwise)."""

from __future__ import annotations

import pytest

from generation.captions import DEFAULT_MODEL as CAPTION_MODEL
from generation.captions import CaptionGenerator
from generation.covers import DEFAULT_MODEL as COVER_MODEL
from generation.covers import CoverGenerator
from generation.loading import ModelUnavailableError, resolve_model

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


def test_smollm_caption(tmp_path, toy_story, scifi_fan):
    _require(CAPTION_MODEL, "config.json")
    captions = CaptionGenerator(CAPTION_MODEL, tmp_path, fallback_on_error=False)
    asset = captions.generate(toy_story, scifi_fan)
    assert 0 < len(asset.text) <= captions.max_chars and "<" not in asset.text
    if asset.fallback:  # a small model may still miss: then the reason must say why
        assert asset.params["fallback_reason"].startswith("model output unusable")
    else:
        assert asset.generator == CAPTION_MODEL
