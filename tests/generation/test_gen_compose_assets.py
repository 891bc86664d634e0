"""Poster composition (legible on any art), the typographic fallback, and the content-addressed store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from generation.assets import Asset, AssetStore, asset_key
from generation.compose import (
    TITLE_COLOR,
    YEAR_COLOR,
    compose_poster,
    contrast_ratio,
    palette,
    render_fallback_cover,
)


def _arts(size: int = 256) -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return {
        "white": Image.new("RGB", (size, size), (255, 255, 255)),
        "black": Image.new("RGB", (size, size), (0, 0, 0)),
        "yellow": Image.new("RGB", (size, size), (255, 240, 0)),
        "noise": Image.fromarray(noise),
        "tall": Image.new("RGB", (size, size * 2), (200, 220, 255)),
    }


@pytest.mark.parametrize("name", ["white", "black", "yellow", "noise", "tall"])
def test_title_is_legible_on_any_art(name):
    art = _arts()[name]
    poster = compose_poster(art, "The Adventures of Priscilla, Queen of the Desert", 1994)
    assert poster.size == (256, 384)  # 2:3
    pixels = np.asarray(poster)
    band = pixels[round(384 * 0.78) :]  # the title band is below the art (at most 78% of the height)
    colors, counts = np.unique(band.reshape(-1, 3), axis=0, return_counts=True)
    background = tuple(int(c) for c in colors[counts.argmax()])
    assert counts.max() > 0.6 * band.shape[0] * band.shape[1]  # a solid band, not art, behind the text
    assert contrast_ratio(TITLE_COLOR, background) >= 7.0  # WCAG AAA
    assert contrast_ratio(YEAR_COLOR, background) >= 7.0
    text = (np.abs(pixels.astype(int) - TITLE_COLOR).sum(axis=2) < 30) & (np.arange(384)[:, None] >= 256)
    assert text.sum() > 200  # the title was drawn
    cols = np.where(text.any(axis=0))[0]
    assert cols.min() > 4 and cols.max() < 251  # and fits inside the margins


def test_contrast_ratio_matches_wcag():
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast_ratio((118, 118, 118), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)
    assert contrast_ratio((10, 20, 30), (10, 20, 30)) == 1.0


def test_fallback_cover_uses_genre_palette_and_seed():
    a = render_fallback_cover("Alien", 1979, ["Horror", "Sci-Fi"], seed=0, width=128)
    again = render_fallback_cover("Alien", 1979, ["Horror", "Sci-Fi"], seed=0, width=128)
    other_seed = render_fallback_cover("Alien", 1979, ["Horror", "Sci-Fi"], seed=1, width=128)
    comedy = render_fallback_cover("Alien", 1979, ["Comedy"], seed=0, width=128)
    assert a.size == (128, 192)
    assert np.array_equal(np.asarray(a), np.asarray(again))
    assert not np.array_equal(np.asarray(a), np.asarray(other_seed))
    top_left = np.asarray(a)[2, 2]
    assert np.abs(top_left.astype(int) - palette(["Horror"])[0]).sum() < 60  # horror's dark red on top
    assert not np.array_equal(np.asarray(a)[:50], np.asarray(comedy)[:50])


def test_compose_rejects_bad_input():
    with pytest.raises(ValueError, match="title must be a non-empty string"):
        compose_poster(Image.new("RGB", (64, 64)), "  ")
    with pytest.raises(ValueError, match="art must be a PIL image"):
        compose_poster(np.zeros((64, 64, 3)), "T")  # type: ignore[arg-type]


def _asset(key: str, **kw) -> Asset:
    base = dict(kind="caption", item_id="1", user_id="u", generator="fallback", fallback=True, prompt="p",
                negative_prompt="", seed=0, params={"a": 1}, text="Hello there.", content_hash=key,
                latency_ms=1.5, personalized=True)
    base.update(kw)
    return Asset(**base)


def test_key_covers_every_input():
    base = {"generator": "m", "prompt": "p", "seed": 0, "steps": 2}
    key = asset_key("cover", base)
    assert key == asset_key("cover", dict(reversed(list(base.items()))))  # order does not matter
    for change in ({"generator": "n"}, {"prompt": "q"}, {"seed": 1}, {"steps": 3}):
        assert asset_key("cover", {**base, **change}) != key
    assert asset_key("caption", base) != key
    with pytest.raises(ValueError, match="kind must be one of"):
        asset_key("video", base)


def test_store_round_trip_and_per_request_fields(tmp_path):
    store = AssetStore(tmp_path)
    key = asset_key("caption", {"x": 1})
    assert store.get("caption", key, "u") is None
    store.put(_asset(key))
    hit = store.get("caption", key, "someone-else")
    assert hit is not None and hit.cache_hit and hit.user_id == "someone-else"
    assert (hit.text, hit.params, hit.latency_ms, hit.generator) == ("Hello there.", {"a": 1}, 1.5, "fallback")
    assert not list(tmp_path.rglob(".tmp-*"))  # atomic writes leave nothing behind

    cover_key = asset_key("cover", {"x": 2})
    stored = store.put(_asset(cover_key, kind="cover", text=None), Image.new("RGB", (8, 12), (1, 2, 3)))
    assert stored.path == str(store.image_path(cover_key)) and Image.open(stored.path).size == (8, 12)
    assert store.get("cover", cover_key, None).path == stored.path
    png_key = asset_key("cover", {"x": 3})
    png = store.put(_asset(png_key, kind="cover", text=None, params={"image_format": "png"}),
                    Image.new("RGB", (8, 12), (1, 2, 3)))
    assert png.path.endswith(".png") and np.asarray(Image.open(png.path))[0, 0].tolist() == [1, 2, 3]
    assert store.get("cover", png_key, None).path == png.path
    with pytest.raises(ValueError, match="image must be a PIL image"):
        store.put(_asset(cover_key, kind="cover"))


def test_unreadable_entry_is_a_miss_and_gets_rewritten(tmp_path):
    store = AssetStore(tmp_path)
    key = asset_key("caption", {"x": 3})
    store.meta_path("caption", key).parent.mkdir(parents=True)
    store.meta_path("caption", key).write_text("{not json")
    assert store.get("caption", key, "u") is None
    store.put(_asset(key))
    assert json.loads(store.meta_path("caption", key).read_text())["text"] == "Hello there."
    with pytest.raises(ValueError, match="key must be a sha256"):
        store.get("caption", "../../etc/passwd", None)
