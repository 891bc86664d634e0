"""MMRec's dataset folder as a source: loading, precomputed features as given, malformed files, the given split,
the parsed-dataset cache."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommenders.__main__ import main
from recommenders.data import load_dataset
from recommenders.errors import DatasetError
from recommenders.evaluation import evaluate_model
from recommenders.features import compute_features, item_features, precomputed_features
from recommenders.models import create_model
from recommenders.splits import make_split

INTER = """userID\titemID\trating\ttimestamp\tx_label
0\t0\t5.0\t100\t0
0\t1\t4.0\t101\t0
0\t2\t3.0\t102\t1
0\t3\t5.0\t103\t2
1\t0\t5.0\t100\t0
1\t2\t4.0\t104\t0
1\t4\t2.0\t105\t1
1\t1\t5.0\t106\t2
2\t1\t4.0\t107\t0
2\t3\t3.0\t108\t0
2\t0\t5.0\t109\t1
2\t2\t5.0\t110\t2
3\t0\t3.0\t111\t0
3\t4\t4.0\t112\t0
3\t1\t4.0\t113\t2
"""
N_ITEMS = 6  # item 5 has no interaction: listed by the mapping


def _folder(root: Path, name: str = "baby", mapping: bool = True, items: bool = True, yaml: bool = True,
            text_dim: int = 8) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / f"{name}.inter").write_text(INTER)
    rng = np.random.default_rng(0)
    n_items = N_ITEMS if mapping else 5
    np.save(folder / "text_feat.npy", rng.standard_normal((n_items, text_dim)).astype(np.float32))
    np.save(folder / "image_feat.npy", rng.standard_normal((n_items, 5)).astype(np.float32))
    if mapping:
        # MMRec's layout: original id, then the index; rows need not be in index order
        (folder / "i_id_mapping.csv").write_text(
            "asin\titemID\nB00A\t0\nB00B\t1\nB00C\t2\nB00E\t4\nB00D\t3\nB00F\t5\n")
        (folder / "u_id_mapping.csv").write_text("user_id\tuserID\nAX1\t0\nAX2\t1\nAX3\t2\nAX4\t3\n")
    if items:
        ids = ("B00A", "B00C", "B00D", "B00F") if mapping else ("0", "2", "3", "4")
        (folder / "items.csv").write_text(
            "item_id,title,text\n"
            f"{ids[0]},Soft cotton onesie,A soft cotton onesie for newborns.\n"
            f"{ids[1]},\"Bottle, glass\",\n"
            f"{ids[2]},,\n"
            f"{ids[3]},Wooden teether,Natural wood.\n")
    if yaml:
        (folder / "dataset.yaml").write_text("domain: product\nfeatures:\n  text: tiny-encoder\n")
    return folder


def test_loads_ids_titles_and_split_from_an_mmrec_folder(tmp_path):
    ds = load_dataset(_folder(tmp_path), tmp_path)
    assert ds.name == "baby" and ds.kind == "product"
    assert ds.item_ids == ["B00A", "B00B", "B00C", "B00D", "B00E", "B00F"]  # by itemID, not file order
    assert ds.users["user_id"].tolist() == ["AX1", "AX2", "AX3", "AX4"]
    assert len(ds.interactions) == 15
    first = ds.interactions.iloc[6]  # userID 1, itemID 4 -> AX2, B00E
    assert (first["user_id"], first["item_id"], first["rating"], first["timestamp"]) == ("AX2", "B00E", 2.0, 105)
    assert ds.split_labels.tolist() == [0, 0, 1, 2, 0, 0, 1, 2, 0, 0, 1, 2, 0, 0, 2]
    titles = dict(zip(ds.items["item_id"], ds.items["title"]))
    texts = dict(zip(ds.items["item_id"], ds.items["text"]))
    assert titles["B00A"] == "Soft cotton onesie" and titles["B00C"] == "Bottle, glass"
    assert titles["B00B"] == "Product 1" and titles["B00E"] == "Product 4"  # no row: generic label, itemID
    assert titles["B00D"] == "Product 3"  # a row with an empty title: generic too
    assert texts["B00C"] == "Bottle, glass"  # no text: the title
    assert texts["B00B"] == ""  # nothing to say: no generic text
    assert ds.feature_models == {"text": "tiny-encoder", "image": "unknown"}
    assert set(ds.feature_files) == {"text", "image"}
    assert ds.items["genres"].tolist() == [[]] * 6 and ds.items["year"].isna().all()


def test_without_mapping_ids_are_the_item_ids_and_labels_follow_the_domain(tmp_path):
    ds = load_dataset(_folder(tmp_path, mapping=False, items=False, yaml=False), tmp_path)
    assert ds.item_ids == ["0", "1", "2", "3", "4"]
    assert ds.users["user_id"].tolist() == ["0", "1", "2", "3"]
    assert ds.items["title"].tolist() == ["Item 0", "Item 1", "Item 2", "Item 3", "Item 4"]  # generic domain
    assert ds.kind == "generic"
    assert ds.feature_models["text"] == "unknown"  # 8-d: not MMRec's MiniLM


def test_an_undeclared_384d_text_file_is_taken_as_mmrecs_minilm(tmp_path):
    ds = load_dataset(_folder(tmp_path, yaml=False, text_dim=384), tmp_path)
    assert ds.feature_models["text"] == "all-MiniLM-L6-v2"


def test_precomputed_features_are_returned_as_given(tmp_path):
    folder = _folder(tmp_path)
    ds = load_dataset(folder, tmp_path)
    # a text model that does not exist: nothing is encoded, so nothing fails
    found = compute_features(ds, tmp_path / "cache", text_model=str(tmp_path / "no-such-model"))
    assert found.missing == {}
    np.testing.assert_array_equal(found.arrays["text"], np.load(folder / "text_feat.npy"))
    np.testing.assert_array_equal(found.arrays["image"], np.load(folder / "image_feat.npy"))
    assert isinstance(found.arrays["text"], np.memmap) and not found.arrays["text"].flags.writeable
    assert found.sources["text"] == "precomputed text_feat.npy (8-d, tiny-encoder)"
    strict = item_features(ds, tmp_path / "cache", text_model=str(tmp_path / "no-such-model"))
    assert set(strict) == {"text", "image"} and strict["image"].shape == (N_ITEMS, 5)


def test_no_text_features_and_no_texts_is_reported_not_encoded(tmp_path):
    folder = _folder(tmp_path, mapping=False, items=False)
    (folder / "text_feat.npy").unlink()
    ds = load_dataset(folder, tmp_path)
    found = compute_features(ds, tmp_path / "cache")
    assert "text" in found.missing and "text_feat.npy" in found.missing["text"]
    assert set(found.arrays) == {"image"}
    with pytest.raises(DatasetError, match="no text_feat.npy"):
        item_features(ds, tmp_path / "cache")


def test_float64_features_are_converted_once_and_the_scan_is_remembered(tmp_path):
    folder = _folder(tmp_path)
    values = np.random.default_rng(1).standard_normal((N_ITEMS, 8))
    np.save(folder / "text_feat.npy", values)  # float64, as MMRec's image_feat.npy is
    ds = load_dataset(folder, tmp_path)
    lines: list[str] = []
    feats = precomputed_features(ds, tmp_path / "cache", lines.append)
    assert feats["text"].dtype == np.float32
    np.testing.assert_allclose(feats["text"], values.astype(np.float32))
    assert any("converting float64" in line for line in lines)
    assert any("checking" in line for line in lines)  # image_feat.npy scanned once
    lines.clear()
    precomputed_features(ds, tmp_path / "cache", lines.append)
    assert lines == []  # the second start neither converts nor scans


def _malformed(tmp_path: Path, edit) -> Path:
    folder = _folder(tmp_path)
    edit(folder)
    return folder


def _replace_line(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("edit, message", [
    (lambda f: _replace_line(f, "baby.inter", "1\t4\t2.0\t105\t1", "1\t4\t2.0\t105"),
     r"baby.inter: row 7: expected 5 columns"),
    (lambda f: _replace_line(f, "baby.inter", "1\t4\t2.0\t105\t1", "1\tB00E\t2.0\t105\t1"),
     r"baby.inter: row 7, column 'itemID': expected an integer, got 'B00E'"),
    (lambda f: _replace_line(f, "baby.inter", "1\t4\t2.0\t105\t1", "1\t4\t2.0\t105\t3"),
     r"baby.inter: row 7, column 'x_label': expected 0 \(train\), 1 \(valid\) or 2 \(test\), got 3"),
    (lambda f: _replace_line(f, "baby.inter", "1\t4\t2.0\t105\t1", "-1\t4\t2.0\t105\t1"),
     r"baby.inter: row 7, column 'userID': expected a 0-based id"),
    (lambda f: _replace_line(f, "baby.inter", "1\t4\t2.0\t105\t1", "1\t6\t2.0\t105\t1"),
     r"baby.inter: row 7, column 'itemID': expected an itemID below 6 \(the rows of i_id_mapping.csv\)"),
    (lambda f: _replace_line(f, "baby.inter", "1\t4\t2.0\t105\t1", "1\t4\tgood\t105\t1"),
     r"baby.inter: row 7, column 'rating': expected a number, got 'good'"),
    (lambda f: _replace_line(f, "baby.inter", "userID\titemID", "user\titemID"),
     r"baby.inter: missing column\(s\) \['userID'\]"),
    (lambda f: np.save(f / "text_feat.npy", np.zeros((5, 8), np.float32)),
     r"text_feat.npy: has 5 rows, expected one per item: 6 \(the 6 rows of i_id_mapping.csv\)"),
    (lambda f: np.save(f / "image_feat.npy", np.zeros(6, np.float32)),
     r"image_feat.npy: expected a 2-D array"),
    (lambda f: np.save(f / "image_feat.npy", np.zeros((6, 5), np.int64)),
     r"image_feat.npy: expected float32 values, got int64"),
    (lambda f: (f / "text_feat.npy").write_bytes(b"not an npy file"),
     r"text_feat.npy: cannot be read as a .npy array"),
    (lambda f: _replace_line(f, "i_id_mapping.csv", "B00F\t5", "B00F\t4"),
     r"i_id_mapping.csv: row 6, column 'itemID': duplicate index 4"),
    (lambda f: _replace_line(f, "i_id_mapping.csv", "B00F\t5", "B00A\t5"),
     r"i_id_mapping.csv: row 6, column 'asin': expected unique ids, got 'B00A'"),
    (lambda f: _replace_line(f, "u_id_mapping.csv", "user_id\tuserID", "user_id\tuid"),
     r"u_id_mapping.csv: expected a tab-separated header of two columns"),
    (lambda f: _replace_line(f, "items.csv", "B00D,,", "B00X,,"),
     r"items.csv: row 3, column 'item_id': expected an item id listed in i_id_mapping.csv, got 'B00X'"),
    (lambda f: _replace_line(f, "items.csv", "B00D,,", "B00A,,"),
     r"items.csv: row 3, column 'item_id': duplicate id 'B00A'"),
    (lambda f: (f / "interactions.csv").write_text("user_id,item_id\n"),
     r"holds both an MMRec .inter file and interactions.csv"),
    (lambda f: (f / "other.inter").write_text(INTER),
     r"expected exactly one NAME.inter file"),
])
def test_malformed_files_are_rejected_naming_file_row_and_column(tmp_path, edit, message):
    folder = _malformed(tmp_path, edit)
    with pytest.raises(DatasetError, match=message):
        load_dataset(folder, tmp_path)


def test_non_finite_features_are_rejected_naming_the_row(tmp_path):
    folder = _folder(tmp_path)
    bad = np.zeros((N_ITEMS, 8), np.float32)
    bad[4, 2] = np.nan
    np.save(folder / "text_feat.npy", bad)
    ds = load_dataset(folder, tmp_path)  # the scan happens when features are asked for
    with pytest.raises(DatasetError, match=r"text_feat.npy: row 4 \(itemID\), column 2: expected finite numbers"):
        compute_features(ds, tmp_path / "cache")


def test_given_split_keeps_x_label_and_uses_mmrecs_test_protocol(tmp_path):
    ds = load_dataset(_folder(tmp_path), tmp_path)
    split = make_split(ds.interactions, "given", labels=ds.split_labels)
    assert (len(split.train), len(split.valid), len(split.test)) == (8, 3, 4)
    assert split.valid["item_id"].tolist() == ["B00C", "B00E", "B00A"]
    assert not split.test_excludes_valid
    # pop ranks B00A (3 train users) first; user AX3's valid item is B00A and test item B00C: MMRec's protocol
    # leaves the valid item among the test candidates (B00C ranks 2nd), RecBole's removes it (B00C ranks 1st)
    model = create_model("pop").fit(split.train, ds.item_ids)
    mmrec = evaluate_model(model, split)["test"]
    recbole = evaluate_model(model, replace(split, test_excludes_valid=True))["test"]
    assert mmrec["ndcg@10"] < recbole["ndcg@10"]


def test_given_split_needs_labels():
    frame = pd.DataFrame({"user_id": ["a"], "item_id": ["x"]})
    with pytest.raises(DatasetError, match="no split of its own"):
        make_split(frame, "given")
    with pytest.raises(DatasetError, match="one label per interaction"):
        make_split(frame, "given", labels=np.array([0, 1]))


def test_cli_evaluates_on_the_folders_own_split(tmp_path, capsys):
    folder = _folder(tmp_path)
    code = main(["evaluate", "--dataset", str(folder), "--model", "pop", "--split", "given", "--quiet",
                 "--data-dir", str(tmp_path / "data"), "--json", str(tmp_path / "out.json")])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["split"] == "given" and "train items only (MMRec's)" in result["config"]["protocol"]
    assert result["config"]["features"] == {"image": [6, 5], "text": [6, 8]}
    assert (tmp_path / "data" / "datasets").is_dir()  # the parsed dataset was cached


def test_parsed_dataset_cache_is_used_and_invalidated(tmp_path):
    folder = _folder(tmp_path)
    cache = tmp_path / "datasets"
    lines: list[str] = []
    first = load_dataset(folder, tmp_path, cache_dir=cache, say=lines.append)
    assert not any("from the cache" in line for line in lines)
    lines.clear()
    second = load_dataset(folder, tmp_path, cache_dir=cache, say=lines.append)
    assert any("from the cache" in line for line in lines)
    for name in ("items", "users", "interactions"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    assert second.split_labels.tolist() == first.split_labels.tolist()
    assert (second.feature_files, second.feature_models, second.domain) == \
        (first.feature_files, first.feature_models, first.domain)
    assert second.content_hash() == first.content_hash()
    # an edited source file (new size and mtime) is parsed again, and the stale entry goes
    _replace_line(folder, "items.csv", "Wooden teether", "Wooden teether ring")
    os.utime(folder / "items.csv", ns=(1, 1))
    lines.clear()
    third = load_dataset(folder, tmp_path, cache_dir=cache, say=lines.append)
    assert not any("from the cache" in line for line in lines)
    assert "Wooden teether ring" in third.items["title"].tolist()
    assert len(list(cache.glob("mmrec-baby-*"))) == 1


def test_a_generated_catalogue_of_moderate_size_loads_and_splits(tmp_path):
    from recommenders.synthetic import SynthConfig, write_catalogue

    cfg = SynthConfig(n_items=40_000, n_users=15_000, n_interactions=150_000, layout="mmrec", seed=5,
                      text_space="random", text_dim=32, image_dim=16)
    summary = write_catalogue(cfg, tmp_path / "shop")
    ds = load_dataset(tmp_path / "shop", tmp_path, cache_dir=tmp_path / "datasets")
    assert len(ds.items) == 40_000 and len(ds.users) == 15_000 and len(ds.interactions) == summary["interactions"]
    assert ds.items["title"].str.len().min() > 10  # items.csv titles
    assert all(len(g) == 1 for g in ds.items["genres"].iloc[:100])  # and the category as a genre
    feats = compute_features(ds, tmp_path / "features")
    assert feats.arrays["text"].shape == (40_000, 32) and feats.arrays["image"].shape == (40_000, 16)
    split = make_split(ds.interactions, "given", labels=ds.split_labels)
    assert len(split.train) + len(split.valid) + len(split.test) == len(ds.interactions)
    assert set(split.test["user_id"]) <= set(split.train["user_id"])  # every user has train rows
    again = load_dataset(tmp_path / "shop", tmp_path, cache_dir=tmp_path / "datasets")
    pd.testing.assert_frame_equal(again.interactions, ds.interactions)
