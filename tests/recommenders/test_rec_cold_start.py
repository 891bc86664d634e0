"""Item cold start (issue 27): the default model of the cold-item split, and the two-tower's validation as served."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recommenders.__main__ import _parser, main as cli
from recommenders.models import COLD_START_MODEL, COLD_START_PARAMS, create_model
from tests.recommenders.test_rec_models import FAST_SGD, ITEMS, N_ITEMS, checkerboard, parity_features
from tests.recommenders.test_rec_training import tiny_dataset
from byo_helpers import write_folder

TINY = ["--param", "epochs=3", "--param", "dim=8", "--param", "experts=2", "--param", "batch_size=16"]


@pytest.fixture()
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import recommenders.features as features

    folder = write_folder(tiny_dataset(n_users=40, n_items=40), tmp_path / "shop")
    monkeypatch.setattr(features, "encode_texts",
                        lambda texts, model=None: np.random.default_rng(0).normal(size=(len(texts), 8)).astype("f4"))
    return folder


def test_cold_item_split_without_a_model_runs_the_cold_start_default(shop: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cold.json"
    assert cli(["evaluate", "--dataset", str(shop), "--split", "cold-item", "--random-baseline", "--quiet",
                "--data-dir", str(tmp_path), "--json", str(out), *TINY]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == COLD_START_MODEL == "two-tower"
    params = result["config"]["params"]
    named = {"epochs", "dim", "experts", "batch_size"}  # TINY's --param overrides; the rest is the default's
    assert {k: params[k] for k in COLD_START_PARAMS if k not in named} == \
        {k: v for k, v in COLD_START_PARAMS.items() if k not in named}
    assert (params["epochs"], params["dim"], params["batch_size"]) == (3, 8, 16)
    assert result["test"]["ndcg@10"] >= 0 and "ndcg@10" in result["random_test"]
    assert result["config"]["protocol"].endswith("candidates = held-out cold items")
    # a --param beats the cold-start default; naming the model gives that model's own defaults
    assert cli(["evaluate", "--dataset", str(shop), "--split", "cold-item", "--quiet", "--data-dir", str(tmp_path),
                "--json", str(out), *TINY, "--param", "id_dropout=0.1"]) == 0
    assert json.loads(out.read_text())["config"]["params"]["id_dropout"] == 0.1
    assert cli(["evaluate", "--dataset", str(shop), "--split", "cold-item", "--model", "two-tower", "--quiet",
                "--data-dir", str(tmp_path), "--json", str(out), *TINY]) == 0
    assert json.loads(out.read_text())["config"]["params"]["valid_items"] == "all"


def test_other_splits_still_need_a_model(shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["evaluate", "--dataset", str(shop), "--split", "random", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--model: expected a model name with --split random" in err and "two-tower" in err
    with pytest.raises(SystemExit):  # train always names its model
        _parser().parse_args(["train", "--out", str(tmp_path / "m")])


def test_the_cold_start_default_is_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    """--help and recommenders/README.md state the same parameters the CLI uses."""
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside "cold-item"
    evaluate = _parser()._subparsers._group_actions[0].choices["evaluate"]
    help_text = " ".join(evaluate.format_help().split())
    readme = (Path(__file__).resolve().parents[2] / "recommenders" / "README.md").read_text()
    for key, value in COLD_START_PARAMS.items():
        assert f"{key}={json.dumps(value)}" in help_text, key
        assert f"{key}={json.dumps(value)}" in readme, key
    assert f"default with --split cold-item: {COLD_START_MODEL}" in help_text


def test_cold_validation_ranks_only_the_cold_items_by_content() -> None:
    """valid_items="cold": early stopping scores the items without a training positive, as they are served
    (content alone), and nothing else."""
    import pandas as pd
    import torch

    from recommenders.models import two_tower

    data = checkerboard()
    cold = data["item_id"].isin(["i10", "i11"])
    train, valid = data[~cold], data[cold]
    captured = {}
    original = two_tower.train_epochs

    def spy(module, *args, **kwargs):
        original(module, *args, **kwargs)
        captured["module"] = module

    two_tower.train_epochs = spy
    try:
        model = create_model("two-tower", **{**FAST_SGD, "batch_size": 32, "epochs": 5}, dim=8, experts=2,
                             valid_items="cold").fit(train, ITEMS, parity_features(), valid=valid)
    finally:
        two_tower.train_epochs = original
    m = captured["module"]
    with torch.no_grad():
        scores = m.full_scores(torch.arange(4))
        cold_idx = [ITEMS.index("i10"), ITEMS.index("i11")]
        assert torch.isinf(scores[:, [i for i in range(N_ITEMS) if i not in cold_idx]]).all()
        content_only, _, _ = m.item_vectors(torch.tensor(cold_idx), id_mask=torch.zeros(2))
        expected = m.user_vectors(torch.arange(4)) @ content_only.T / m.tau
        torch.testing.assert_close(scores[:, cold_idx], expected)
    assert all("valid_ndcg@10" in h for h in model.history)
    with pytest.raises(ValueError, match="valid_items: 'cold' ranks the items without a training positive"):
        create_model("two-tower", **FAST_SGD, valid_items="cold").fit(
            train, ITEMS, parity_features(), valid=pd.concat([train.iloc[:3]]))
    with pytest.raises(ValueError, match="valid_items: expected 'all' or 'cold', got 'warm'"):
        create_model("two-tower", **FAST_SGD, valid_items="warm").fit(train, ITEMS, parity_features())
