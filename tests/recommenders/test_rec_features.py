"""Item features: the real MiniLM text encoder, the disk cache, and a tiny CLIP image encoder built from config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from generation.testing import build_tiny_clip
import recommenders.features as features
from recommenders.data import load_dataset
from recommenders.features import item_features


def _folder(root: Path, texts: list[str], images: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    items = pd.DataFrame({"item_id": [f"m{i}" for i in range(len(texts))], "title": texts})
    items.to_csv(root / "items.csv", index=False)
    pd.DataFrame({"user_id": ["u"] * len(texts), "item_id": items["item_id"]}).to_csv(root / "interactions.csv",
                                                                                       index=False)
    if images:
        from PIL import Image

        (root / "images").mkdir(exist_ok=True)
        for i in range(len(texts) - 1):  # the last item has no image
            Image.new("RGB", (40, 40), color=(60 * i, 255 - 60 * i, 90)).save(root / "images" / f"m{i}.png")
    return root


def test_text_features_real_minilm_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["A space opera with starships", "Starships battle in outer space", "A quiet romance in Paris"]
    ds = load_dataset(_folder(tmp_path / "d", texts), tmp_path)
    feats = item_features(ds, tmp_path / "cache")
    text = feats["text"]
    assert text.shape == (3, 384) and text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    assert text[0] @ text[1] > text[0] @ text[2]  # a real encoder: the two space films are closer
    assert len(list((tmp_path / "cache").glob("text-*.npy"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("the cache must be used: no model may be loaded on the second call")

    monkeypatch.setattr(features, "encode_texts", boom)
    np.testing.assert_array_equal(item_features(ds, tmp_path / "cache")["text"], text)
    changed = load_dataset(_folder(tmp_path / "d2", texts[:2] + ["Something else entirely"]), tmp_path)
    with pytest.raises(AssertionError, match="the cache must be used"):
        item_features(changed, tmp_path / "cache")  # new content hash -> recomputed, not served stale


def test_image_features_tiny_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load_dataset(_folder(tmp_path / "d", ["red", "green", "blue", "no picture"], images=True), tmp_path)
    assert ds.has_images
    clip = str(build_tiny_clip(tmp_path / "clip"))
    monkeypatch.setattr(features, "encode_texts", lambda texts, model=None: np.eye(len(texts), 5, dtype=np.float32))
    feats = item_features(ds, tmp_path / "cache", image_model=clip)
    image = feats["image"]
    assert image.shape == (4, 12) and image.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(image[:3], axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(image[3], 0.0)  # no image -> zero row
    assert not np.allclose(image[0], image[1])
    assert set(item_features(ds, tmp_path / "cache")) == {"text"}  # no image model -> text only


def test_missing_image_model_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load_dataset(_folder(tmp_path / "d", ["a", "b"], images=True), tmp_path)
    monkeypatch.setattr(features, "encode_texts", lambda texts, model=None: np.eye(len(texts), 5, dtype=np.float32))
    with pytest.raises(FileNotFoundError, match="image_model: cannot load CLIP"):
        item_features(ds, tmp_path / "cache", image_model=str(tmp_path / "no-such-clip"))
