"""Validation-only model selection (recommenders.search) and the CLI's progress bar / --quiet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommenders.__main__ import main as cli
from recommenders.errors import UnknownModelError
from recommenders.search import best_model, grid, search, write_selection
from recommenders.splits import Split, random_split
from tests.recommenders.test_rec_training import tiny_dataset
from byo_helpers import write_folder


class SplitTouched(AssertionError):
    pass


class Untouchable:
    """Stands in for the test split: any use at all raises."""

    def __getattr__(self, name):
        raise SplitTouched(f"the test split was read ({name})")

    def __getitem__(self, key):
        raise SplitTouched(f"the test split was read ([{key!r}])")

    def __len__(self):
        raise SplitTouched("the test split was read (len)")

    def __iter__(self):
        raise SplitTouched("the test split was read (iter)")


def guarded_split(seed: int = 0) -> tuple[Split, Split]:
    ds = tiny_dataset(n_users=40, n_items=20)
    real = random_split(ds.interactions, seed=seed)
    return real, Split(real.name, real.seed, real.train, real.valid, Untouchable())  # type: ignore[arg-type]


def test_search_never_reads_the_test_split() -> None:
    real, guarded = guarded_split()
    items = tiny_dataset(n_users=40, n_items=20).item_ids
    with pytest.raises(SplitTouched):  # the guard works: a normal evaluation does read it
        from recommenders.evaluation import evaluate_model
        from recommenders.models import create_model

        evaluate_model(create_model("ease").fit(real.train, items), guarded)
    feats = {"text": np.random.default_rng(0).normal(size=(20, 6)).astype("f4")}
    result = search(guarded, items, feats,
                    {"ease": {"reg": [1.0, 10.0, 100.0]}, "bpr": {"lr": [0.01, 0.05]}},
                    fixed={"bpr": {"epochs": 5, "batch_size": 16, "dim": 8}}, seed=3)
    assert len(result["trials"]) == 5
    best = max(result["trials"], key=lambda t: t["valid_ndcg@10"])
    assert result["best"] == {"model": best["model"], "params": best["params"], "valid_ndcg@10": best["valid_ndcg@10"]}
    assert {t["model"] for t in result["trials"]} == {"ease", "bpr"}
    assert all(t["fixed"] == {"epochs": 5, "batch_size": 16, "dim": 8} for t in result["trials"] if t["model"] == "bpr")


def test_search_choice_is_the_validation_maximum_and_is_seeded() -> None:
    """The selected EASE lambda is the one with the best valid NDCG@10, recomputed independently."""
    from recommenders.evaluation import evaluate_model
    from recommenders.models import create_model

    real, guarded = guarded_split(seed=1)
    items = tiny_dataset(n_users=40, n_items=20).item_ids
    regs = [0.5, 5.0, 50.0, 500.0]
    result = search(guarded, items, None, {"ease": {"reg": regs}})
    valid = {r: evaluate_model(create_model("ease", reg=r).fit(real.train, items), real, parts=("valid",))
             ["valid"]["ndcg@10"] for r in regs}
    assert result["best"]["params"]["reg"] == max(regs, key=lambda r: (valid[r], -regs.index(r)))
    assert grid({"a": [1, 2, 3], "b": [4, 5]}, 3, seed=7) == grid({"a": [1, 2, 3], "b": [4, 5]}, 3, seed=7)
    assert len(grid({"a": [1, 2, 3], "b": [4, 5]}, 100, seed=7)) == 6
    with pytest.raises(ValueError, match="unknown parameter 'lambda'"):
        search(guarded, items, None, {"ease": {"lambda": [1.0]}})
    with pytest.raises(UnknownModelError):
        search(guarded, items, None, {"svd": {"k": [1]}})


def test_best_model_reads_the_selection_file(tmp_path: Path) -> None:
    path = write_selection({"best": {"model": "ease-text", "params": {"reg": 400.0, "text_weight": 30.0},
                                     "valid_ndcg@10": 0.26}, "trials": []}, tmp_path / "sel" / "selection.json")
    assert best_model(path) == ("ease-text", {"reg": 400.0, "text_weight": 30.0})
    with pytest.raises(FileNotFoundError, match="path: expected a model-selection JSON"):
        best_model(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{\"trials\": []}")
    with pytest.raises(ValueError, match="is not a model-selection file"):
        best_model(tmp_path / "bad.json")
    (tmp_path / "unknown.json").write_text(json.dumps({"best": {"model": "svd", "params": {}}}))
    with pytest.raises(UnknownModelError, match="best model 'svd'"):
        best_model(tmp_path / "unknown.json")


@pytest.fixture()
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import recommenders.features as features

    ds = tiny_dataset()
    folder = write_folder(ds, tmp_path / "shop")
    monkeypatch.setattr(features, "encode_texts",
                        lambda texts, model=None: np.random.default_rng(0).normal(size=(len(texts), 8)).astype("f4"))
    return folder


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_progress_bar_on_stderr_json_alone_on_stdout(shop: Path, tmp_path: Path, quiet: bool,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evaluate", "--dataset", str(shop), "--model", "bpr", "--data-dir", str(tmp_path),
            "--param", "epochs=4", "--param", "batch_size=16", "--param", "dim=8"]
    assert cli(args + (["--quiet"] if quiet else [])) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)  # stdout is exactly one JSON document
    assert result["model"] == "bpr" and result["epochs_run"] >= 1
    if quiet:
        assert "epoch" not in err and "ndcg=" not in err
    else:
        assert "bpr" in err and "epoch" in err and "loss=" in err and "ndcg=" in err and "best=" in err


def test_cli_search_writes_a_selection_the_app_can_read(shop: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "selection.json"
    assert cli(["search", "--dataset", str(shop), "--models", "ease", "itemknn", "--data-dir", str(tmp_path),
                "--max-trials", "2", "--out", str(out), "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    name, params = best_model(out)
    assert (name, params) == (printed["best"]["model"], printed["best"]["params"]) and printed["trials"] == 4
    saved = json.loads(out.read_text())
    assert saved["protocol"].endswith("test never read") and len(saved["trials"]) == 4
    assert cli(["search", "--dataset", str(shop), "--models", "pop", "--data-dir", str(tmp_path),
                "--out", str(out)]) == 2  # no search space for pop
    assert cli(["search", "--dataset", str(shop), "--models", "ease", "--fixed", "nonsense",
                "--data-dir", str(tmp_path), "--out", str(out)]) == 2


def test_every_search_space_point_is_a_valid_model() -> None:
    """A space that names a parameter a model lost, or fixed blend weights for another number of partners, fails
    here rather than in the middle of `python -m recommenders search`."""
    from recommenders.models import MODEL_NAMES, create_model
    from recommenders.search import SEARCH_SPACES, grid

    for name, space in SEARCH_SPACES.items():
        assert name in MODEL_NAMES
        for params in grid(space, max_trials=10_000, seed=0):
            create_model(name, **params)
