"""Bring-your-own catalogues: the declared domain, image paths kept inside the folder, each modality on its own,
and a catalogue that grows at runtime (content models rank the new items at once)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from generation.testing import build_tiny_clip
from recommenders.__main__ import main as cli
from recommenders.catalog import append_items, extend_model, grow_features, write_synthetic_catalog
from recommenders.data import load_dataset
from recommenders.errors import DatasetError, ModelFitError
from recommenders.features import compute_features, item_features
from recommenders.models import create_model, load_model


# -- the declared domain ------------------------------------------------------------------------------------
@pytest.mark.parametrize("domain", ["book", "product", "music"])
@pytest.mark.parametrize("declare", ["yaml", "column"])
def test_a_catalogue_declares_its_domain(tmp_path: Path, domain: str, declare: str) -> None:
    ds = load_dataset(write_synthetic_catalog(tmp_path / "c", domain, declare=declare), tmp_path)
    assert ds.kind == domain and ds.domain["domain"] == domain
    assert ds.folder == str((tmp_path / "c").resolve())
    if declare == "yaml":
        assert ds.domain["noun"] in ("book", "product", "song")


def test_undeclared_is_generic_ml100k_is_film_and_bad_specs_are_named(tmp_path: Path) -> None:
    assert load_dataset(write_synthetic_catalog(tmp_path / "g", "book", declare="none"), tmp_path).kind == "generic"
    assert load_dataset("ml-100k", tmp_path).domain == {"domain": "film"}
    folder = write_synthetic_catalog(tmp_path / "b", "book")
    spec = folder / "dataset.yaml"
    spec.write_text("domain: book\nstyle_hints:\n  Fantasy: [magical glow, mythic atmosphere]\n  Mystery: moody\n")
    assert load_dataset(folder, tmp_path).domain["style_hints"] == {
        "Fantasy": ["magical glow", "mythic atmosphere"], "Mystery": ["moody"]}
    for text, match in [
        ("domain: podcast\n", r"dataset.yaml: key 'domain': expected one of \['film', 'book'"),
        ("domain: book\ncolour: red\n", r"unknown key\(s\) \['colour'\]"),
        ("domain: book\nnoun: '<b>'\n", r"key 'noun': expected a short word"),
        ("- book\n", "expected a mapping"),
        ("domain: [book\n", "cannot be read as YAML"),
        ("domain: book\nstyle_hints: [a, b]\n", "key 'style_hints': expected a mapping"),
    ]:
        spec.write_text(text)
        with pytest.raises(DatasetError, match=match):
            load_dataset(folder, tmp_path)
    spec.unlink()
    items = pd.read_csv(folder / "items.csv")
    items["domain"] = ["book"] * (len(items) - 1) + ["music"]
    items.to_csv(folder / "items.csv", index=False)
    with pytest.raises(DatasetError, match=r"items.csv: column 'domain': expected one value for every row"):
        load_dataset(folder, tmp_path)


# -- image paths stay inside the dataset folder ---------------------------------------------------------------
@pytest.mark.parametrize("value", ["../../etc/passwd", "/etc/passwd", "images/../../outside.png"])
def test_an_image_path_outside_the_folder_is_refused(tmp_path: Path, value: str) -> None:
    (tmp_path / "outside.png").write_bytes(b"\x89PNG")
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    (folder / "items.csv").write_text(f"item_id,title,image\nx,Fine,\ny,Evil,{value}\n")
    (folder / "interactions.csv").write_text("user_id,item_id\nu,x\n")
    with pytest.raises(DatasetError) as err:
        load_dataset(folder, tmp_path)
    message = str(err.value)
    assert "items.csv: row 2, column 'image'" in message and "outside the dataset folder" in message
    assert value in message


def test_a_linked_image_leading_outside_is_refused_an_absolute_path_inside_is_fine(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG")
    folder = tmp_path / "c"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "inside.png").write_bytes(b"\x89PNG")
    os.symlink(secret, folder / "images" / "y.png")
    (folder / "interactions.csv").write_text("user_id,item_id\nu,x\n")
    (folder / "items.csv").write_text(f"item_id,title,image\nx,Fine,{folder / 'images' / 'inside.png'}\ny,Link,y.png\n")
    with pytest.raises(DatasetError, match=r"row 2, column 'image': 'y.png' resolves outside"):
        load_dataset(folder, tmp_path)
    (folder / "items.csv").write_text("item_id,title\nx,Fine\ny,Link\n")  # found by images/<item_id>.*
    with pytest.raises(DatasetError, match=r"images/y.png: the image of item 'y' \(row 2 of items.csv\) links outside"):
        load_dataset(folder, tmp_path)
    (folder / "images" / "y.png").unlink()
    (folder / "items.csv").write_text(f"item_id,title,image\nx,Fine,{folder / 'images' / 'inside.png'}\ny,Other,\n")
    ds = load_dataset(folder, tmp_path)
    assert ds.items["image"].tolist() == [str((folder / "images" / "inside.png").resolve()), None]


# -- each modality on its own -------------------------------------------------------------------------------
def test_images_without_an_image_model_still_serve_ease_text(tmp_path: Path) -> None:
    ds = load_dataset(write_synthetic_catalog(tmp_path / "c", "book", n_items=24), tmp_path)
    assert ds.has_images
    for image_model in (None, str(tmp_path / "no-such-clip"), "org/clip-not-cached"):
        fs = compute_features(ds, tmp_path / "cache", image_model=image_model)
        assert set(fs.arrays) == {"text"} and set(fs.missing) == {"image"}
        assert "VITRINE_IMAGE_MODEL" in fs.missing["image"] or "could not be loaded" in fs.missing["image"]
        assert fs.notes() == [f"image features unavailable: {fs.missing['image']}"]
    # the strict form still raises for a configured model that is not there
    with pytest.raises(FileNotFoundError, match="image_model: cannot load CLIP"):
        item_features(ds, tmp_path / "cache", image_model=str(tmp_path / "no-such-clip"))
    model = create_model("ease-text").fit(ds.interactions, ds.item_ids, fs.arrays)
    genre = _genre(ds)
    fantasy = {i for i in ds.item_ids if genre[i] == "Fantasy"}
    checked = 0
    for user in ("u0", "u4", "u8"):  # they like Fantasy: the Fantasy books not yet read come first
        unseen = fantasy - set(ds.interactions.query("user_id == @user")["item_id"])
        if unseen:
            assert set(model.recommend(user, k=len(unseen))[0]) == unseen
            checked += 1
    assert checked


def test_a_missing_text_model_keeps_the_image_features(tmp_path: Path) -> None:
    ds = load_dataset(write_synthetic_catalog(tmp_path / "c", "product", n_items=8), tmp_path)
    fs = compute_features(ds, tmp_path / "cache", text_model=str(tmp_path / "no-minilm"),
                          image_model=str(build_tiny_clip(tmp_path / "clip")))
    assert set(fs.arrays) == {"image"} and fs.arrays["image"].shape == (8, 12)
    assert "text model" in fs.missing["text"] and "VITRINE_TEXT_MODEL" in fs.missing["text"]
    vbpr = create_model("vbpr", epochs=2, dim=8, content_dim=8).fit(ds.interactions, ds.item_ids, fs.arrays)
    assert len(vbpr.recommend("u1", k=2)[0]) == 2  # served on the image modality alone


# -- a catalogue that grows while the app runs --------------------------------------------------------------
def _genre(ds) -> dict[str, str]:
    return dict(zip(ds.items["item_id"], ds.items["genres"].map(lambda g: g[0])))


def test_added_items_are_ranked_at_once_by_content_models(tmp_path: Path) -> None:
    folder = write_synthetic_catalog(tmp_path / "books", "book", n_items=24, n_users=12)
    before = load_dataset(folder, tmp_path)
    feats = compute_features(before, tmp_path / "features").arrays
    models_dir = tmp_path / "models"
    create_model("ease-text").fit(before.interactions, before.item_ids, feats).save(models_dir / "ease-text")
    create_model("text", epochs=40, seed=1).fit(before.interactions, before.item_ids, feats).save(models_dir / "text")
    create_model("ease").fit(before.interactions, before.item_ids).save(models_dir / "ease")

    new = write_synthetic_catalog(tmp_path / "new", "book", n_items=8, start=24, seed=5, interactions=False)
    code = cli(["add-items", str(new), "--dataset", str(folder), "--data-dir", str(tmp_path),
                "--models-dir", str(models_dir)])
    assert code == 0
    grown = load_dataset(folder, tmp_path)
    added = [f"b{k}" for k in range(24, 32)]
    assert grown.item_ids == before.item_ids + added
    assert all(Path(p).parent == (folder / "images").resolve() for p in grown.items["image"].iloc[24:])
    genre = _genre(grown)
    fantasy_new = {i for i in added if genre[i] == "Fantasy"}
    assert fantasy_new == {"b24", "b28"}
    # u0 likes Fantasy: every Fantasy book u0 has not read, the two new ones included, comes first
    unseen = {i for i in grown.item_ids if genre[i] == "Fantasy"} - set(before.interactions.query(
        "user_id == 'u0'")["item_id"])
    for name in ("ease-text", "text"):
        model = load_model(models_dir / name)
        assert model.item_ids == grown.item_ids
        ids, _ = model.recommend("u0", k=len(unseen))
        assert set(ids) == unseen, (name, ids)
    ease = load_model(models_dir / "ease")
    assert ease.item_ids == before.item_ids  # an ID model picks them up at the next retrain
    # the features of the grown catalogue were written where compute_features looks: nothing re-encoded
    cached = compute_features(grown, tmp_path / "features")
    assert cached.arrays["text"].shape == (32, 384)
    np.testing.assert_allclose(cached.arrays["text"][:24], feats["text"], atol=1e-6)


def test_added_items_cli_reports_and_bad_batches_change_nothing(tmp_path: Path, capsys) -> None:
    folder = write_synthetic_catalog(tmp_path / "songs", "music", n_items=8, n_users=4, images=False)
    table = (folder / "items.csv").read_bytes()
    again = write_synthetic_catalog(tmp_path / "dup", "music", n_items=2, start=7, interactions=False, images=False)
    assert cli(["add-items", str(again), "--dataset", str(folder), "--data-dir", str(tmp_path)]) == 2
    assert "row 1, column 'item_id': 'm7' is already in the catalogue" in capsys.readouterr().err
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "items.csv").write_text("item_id,title,image\nz,Zed,../../etc/passwd\n")
    assert cli(["add-items", str(evil), "--dataset", str(folder), "--data-dir", str(tmp_path)]) == 2
    assert "outside the dataset folder" in capsys.readouterr().err
    assert cli(["add-items", str(evil), "--dataset", "ml-100k", "--data-dir", str(tmp_path)]) == 2
    assert "cannot grow" in capsys.readouterr().err
    assert (folder / "items.csv").read_bytes() == table  # nothing half-written
    good = write_synthetic_catalog(tmp_path / "ok", "music", n_items=3, start=8, interactions=False, images=False)
    assert cli(["add-items", str(good), "--dataset", str(folder), "--data-dir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["added"] == ["m8", "m9", "m10"] and out["items"] == 11 and out["features"]["text"] == [11, 384]
    assert load_dataset(folder, tmp_path).kind == "music"


def test_extend_model_checks_its_inputs(tmp_path: Path) -> None:
    ds = load_dataset(write_synthetic_catalog(tmp_path / "c", "book", n_items=8, images=False), tmp_path)
    feats = {"text": np.eye(9, 4, dtype=np.float32)}
    model = create_model("ease-text").fit(ds.interactions, ds.item_ids, {"text": feats["text"][:8]})
    with pytest.raises(ModelFitError, match="the model's 8 items first"):
        extend_model(model, ["new", *ds.item_ids], feats)
    with pytest.raises(ModelFitError, match=r"features\['text'\]: expected 9 rows"):
        extend_model(model, [*ds.item_ids, "new"], {"text": feats["text"][:8]})
    ease = create_model("ease").fit(ds.interactions, ds.item_ids)
    with pytest.raises(ModelFitError, match="picks new items up at the next retrain"):
        extend_model(ease, [*ds.item_ids, "new"], feats)
    grown = extend_model(model, [*ds.item_ids, "new"], feats)
    assert grown.item_ids[-1] == "new" and grown.recommend("u0", k=9, exclude_seen=False)[0]
    # dislikes survive the refit: a disliked item is still never recommended to that user
    disliked = ds.interactions.query("rating < 2 and user_id == 'u0'")["item_id"].tolist()
    assert disliked and not set(disliked) & set(grown.recommend("u0", k=9)[0])


def test_grow_features_recomputes_when_the_catalogue_was_rewritten(tmp_path: Path, monkeypatch) -> None:
    import recommenders.features as F

    a = load_dataset(write_synthetic_catalog(tmp_path / "a", "book", n_items=4, images=False), tmp_path)
    b = load_dataset(write_synthetic_catalog(tmp_path / "b", "book", n_items=5, seed=9, images=False), tmp_path)
    calls = []
    monkeypatch.setattr(F, "encode_texts", lambda texts, model=None: calls.append(len(texts)) or
                        np.ones((len(texts), 3), np.float32))
    fs = grow_features(a, {"text": np.zeros((4, 3), np.float32)}, b, tmp_path / "cache")
    assert calls == [5] and fs.arrays["text"].shape == (5, 3)  # other texts: everything encoded anew
    grown = append_items(tmp_path / "a", write_synthetic_catalog(tmp_path / "n", "book", n_items=2, start=4,
                                                                   interactions=False, images=False))
    fs = grow_features(a, {"text": np.zeros((4, 3), np.float32)}, grown, tmp_path / "cache")
    assert calls == [5, 2] and fs.arrays["text"][:4].sum() == 0 and fs.arrays["text"][4:].sum() == 6


# -- the served covers as an image modality of their own -------------------------------------------------------
def test_cover_embeddings_feed_vbpr_as_a_modality(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import recommenders.features as F
    from generation.covers import CoverGenerator
    from generation.prompts import ItemInfo
    from recommenders.models.vbpr import content_matrix

    ds = load_dataset(write_synthetic_catalog(tmp_path / "c", "music", n_items=12, n_users=8, images=False), tmp_path)
    covers = CoverGenerator(None, tmp_path / "assets", size=64)  # typographic covers: the genre sets the palette
    paths = {r.item_id: covers.generate(ItemInfo(r.item_id, r.title, int(r.year), list(r.genres), r.text))[0].path
             for r in ds.items.itertuples()}
    del paths["m11"]  # an item whose cover is not made yet: a zero row
    clip = str(build_tiny_clip(tmp_path / "clip"))
    cover = F.cover_features(ds.item_ids, paths, tmp_path / "cache", clip)
    assert cover.shape == (12, 12) and cover.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(cover[:11], axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(cover[11], 0.0)
    assert len({row.tobytes() for row in cover[:11]}) == 11  # every cover its own embedding
    monkeypatch.setattr(F, "encode_images", lambda *a, **k: (_ for _ in ()).throw(AssertionError("cache missed")))
    np.testing.assert_array_equal(F.cover_features(ds.item_ids, paths, tmp_path / "cache", clip), cover)
    text = np.eye(12, 6, dtype=np.float32)
    feats = {"text": text, "cover": cover}
    assert content_matrix(feats).shape == (12, 18)  # vbpr fuses every modality it is given
    with_cover = create_model("vbpr", epochs=3, dim=8, content_dim=8, seed=0).fit(ds.interactions, ds.item_ids, feats)
    without = create_model("vbpr", epochs=3, dim=8, content_dim=8, seed=0).fit(ds.interactions, ds.item_ids,
                                                                              {"text": text})
    assert not np.allclose(with_cover.score(0), without.score(0))  # the cover modality changes the ranking model


def test_extend_text_model_recovers_its_own_projection_for_a_new_item(tmp_path: Path) -> None:
    """`text` scores an item by theta_u . (E f_i): fitted with a cold item X in the catalogue, then X removed and
    added back through extend_model, X gets the very vector the model gave it (the items span the content)."""
    import scipy.sparse as sp

    ds = load_dataset(write_synthetic_catalog(tmp_path / "c", "book", n_items=12, images=False), tmp_path)
    inter = ds.interactions[ds.interactions["item_id"] != "b11"]  # b11: no interactions, a cold item
    rng = np.random.default_rng(0)
    feats = {"text": rng.normal(size=(12, 5)).astype(np.float32)}
    model = create_model("text", epochs=5, content_dim=4, seed=0).fit(inter, ds.item_ids, feats)
    v_cold, b_cold = model.V[11].copy(), model.b[11]
    model.V, model.b, model.item_ids = model.V[:11], model.b[:11], model.item_ids[:11]
    model._item_index = {i: n for n, i in enumerate(model.item_ids)}
    model._seen = sp.csr_matrix(model._seen.toarray()[:, :11])
    extend_model(model, ds.item_ids, feats)
    np.testing.assert_allclose(model.V[11], v_cold, rtol=1e-5, atol=1e-6)
    assert model.item_ids[-1] == "b11" and np.isfinite(model.b[11])
    assert np.isclose(model.b[11], b_cold, atol=0.05)  # the bias map is an estimate (warm items have own biases)
