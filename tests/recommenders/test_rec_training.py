"""train_model (store logs merged in, early-stopped epochs), the evaluate/train CLI, and an ml-100k parity smoke."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommenders.__main__ import main as cli
from recommenders.data import Dataset, load_dataset
from recommenders.errors import ModelFitError
from recommenders.evaluation import evaluate_model, random_baseline
from recommenders.models import load_model
from recommenders.splits import cold_item_split, random_split
from recommenders.training import merge_interactions, train_model
from byo_helpers import write_folder


def tiny_dataset(n_users: int = 24, n_items: int = 16) -> Dataset:
    """Two tastes: even users like even items; every user has 6 positives."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(n_users):
        for i in rng.choice(np.arange(u % 2, n_items, 2), size=6, replace=False):
            rows.append((f"u{u}", f"i{i}", 4.0, int(rng.integers(0, 1000))))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)], "title": [f"t{i}" for i in range(n_items)],
                          "text": [f"t{i}" for i in range(n_items)], "genres": [[] for _ in range(n_items)],
                          "year": pd.array([None] * n_items, dtype="Int64"), "image": [None] * n_items})
    return Dataset("tiny", items, pd.DataFrame({"user_id": pd.unique(inter["user_id"])}), inter)


def test_extra_interactions_are_merged_and_validated() -> None:
    ds = tiny_dataset()
    extra = pd.DataFrame({"user_id": ["new", "new", "new", "u0"], "item_id": ["i0", "i2", "i4", "i1"],
                          "weight": [1.0, 1.0, 1.0, -1.0], "timestamp": [5, 6, 7, 8]})
    model = train_model(ds, "ease", extra_interactions=extra, reg=1.0)
    ids, _ = model.recommend("new", k=3)  # a user who only exists in the store's logs
    assert not {"i0", "i2", "i4"} & set(ids) and all(int(i[1:]) % 2 == 0 for i in ids)
    assert "i1" not in model.recommend("u0", k=16)[0]  # a dislike is never served again
    merged = merge_interactions(ds, extra)
    assert len(merged) == len(ds.interactions) + 4 and merged["weight"].iloc[-1] == -1.0
    # the dataset's ratings travel with its rows (ease-text reads them); logged rows have none
    assert (merged["rating"].iloc[:len(ds.interactions)] == ds.interactions["rating"].to_numpy()).all()
    assert merged["rating"].iloc[len(ds.interactions):].isna().all()
    with pytest.raises(ModelFitError, match="row 2, column 'item_id': 'ghost' is not an item"):
        merge_interactions(ds, pd.DataFrame({"user_id": ["a", "b"], "item_id": ["i0", "ghost"], "weight": [1, 1]}))
    with pytest.raises(ModelFitError, match="row 1, column 'weight': expected a number"):
        merge_interactions(ds, pd.DataFrame({"user_id": ["a"], "item_id": ["i0"], "weight": ["lots"]}))


def test_iterative_training_picks_epochs_by_validation() -> None:
    ds = tiny_dataset()
    model = train_model(ds, "bpr", dim=8, lr=0.05, batch_size=16, patience=3)
    chosen = model.params["epochs"]
    assert 1 <= chosen < 300 and len(model.history) == chosen  # refitted on everything for exactly that many
    assert "valid_ndcg@10" not in model.history[-1]  # the final fit has no hold-out left
    with pytest.raises(ModelFitError, match="needs item features"):
        train_model(ds, "vbpr")


def test_cli_evaluate_and_train_on_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import recommenders.features as features

    ds = tiny_dataset()
    folder = write_folder(ds, tmp_path / "shop")
    monkeypatch.setattr(features, "encode_texts",
                        lambda texts, model=None: np.random.default_rng(0).normal(size=(len(texts), 8)).astype("f4"))
    out = tmp_path / "r.json"
    assert cli(["evaluate", "--dataset", str(folder), "--model", "itemknn", "--split", "random", "--seed", "3",
                "--data-dir", str(tmp_path), "--param", "k=4", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for k in (10, 20):
        assert {f"{m}@{k}" for m in ("recall", "ndcg", "hit", "mrr", "precision", "item_coverage", "novelty",
                                     "diversity")} <= set(result["test"])
    assert result["config"]["params"]["k"] == 4 and result["fit_seconds"] >= 0 and result["eval_seconds"] >= 0
    assert cli(["train", "--dataset", str(folder), "--model", "ease", "--data-dir", str(tmp_path),
                "--out", str(tmp_path / "model")]) == 0
    assert load_model(tmp_path / "model").recommend("u1", 2)[0]
    assert cli(["evaluate", "--dataset", str(folder), "--model", "nope", "--data-dir", str(tmp_path)]) == 2


def test_cold_start_beats_random_on_a_content_signal() -> None:
    ds = tiny_dataset(n_users=40, n_items=40)
    split = cold_item_split(ds.interactions, seed=0, fraction=0.2)
    parity = np.where(np.arange(40) % 2 == 0, 1.0, -1.0)
    feats = {"text": np.c_[parity, np.random.default_rng(1).normal(scale=0.3, size=(40, 5))].astype("f4")}
    from recommenders.models import create_model

    model = create_model("text", content_dim=4, lr=0.05, batch_size=32, epochs=30).fit(
        split.train, ds.item_ids, feats)
    got = evaluate_model(model, split, parts=("test",))["test"]
    chance = random_baseline(split, model.item_ids, model.user_ids, seed=0)
    assert got["ndcg@10"] > chance["ndcg@10"] + 0.1


def test_ml100k_matches_recbole_ease(tmp_path: Path) -> None:
    """Same split (RecBole's permutation), same metrics: EASE reproduces RecBole 1.2.1's test NDCG@10 0.3295."""
    ds = load_dataset("ml-100k", tmp_path)
    split = random_split(ds.interactions, seed=2020)
    assert (len(split.train), len(split.valid), len(split.test)) == (80808, 9596, 9596)
    for part in (split.train, split.valid, split.test):  # every ml-100k user has >= 20 ratings: in every part
        assert part["user_id"].nunique() == 943
    from recommenders.models import create_model

    model = create_model("ease").fit(split.train, ds.item_ids)
    test = evaluate_model(model, split, parts=("test",))["test"]
    assert test["ndcg@10"] == pytest.approx(0.3295, abs=5e-4)
