"""Real-size catalogues (issue 23): costs before fitting, refusal instead of a crash, the sparse EASE models,
ANN retrieval and the default that follows the catalogue."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommenders import sizing
from recommenders.ann import ItemIndex, knn
from recommenders.errors import ModelFitError, ModelTooLargeError
from recommenders.models import create_model, load_model
from recommenders.models.base import SparseScores, topk_indices

ROOT = Path(__file__).resolve().parents[2]


def random_interactions(n_users: int, n_items: int, nnz: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user_id": [f"u{u}" for u in rng.integers(0, n_users, nnz)],
                         "item_id": [f"i{i}" for i in rng.integers(0, n_items, nnz)]})


def text_features(n_items: int, d: int = 16, seed: int = 1) -> dict[str, np.ndarray]:
    return {"text": np.random.default_rng(seed).normal(size=(n_items, d)).astype(np.float32)}


# -- what the machine can give ---------------------------------------------------------------------------------
def test_machine_memory_reads_meminfo_and_the_smaller_cgroup_room(tmp_path: Path) -> None:
    proc, cg = tmp_path / "proc", tmp_path / "cg"
    proc.mkdir()
    cg.mkdir()
    (proc / "meminfo").write_text("MemTotal: 24000000 kB\nMemAvailable:   20000000 kB\n")
    assert sizing.machine_memory(proc, cg) == (20000000 * 1024, "MemAvailable")
    (cg / "memory.max").write_text("max\n")  # no limit: MemAvailable stands
    assert sizing.machine_memory(proc, cg)[1] == "MemAvailable"
    (cg / "memory.max").write_text(str(8 * 10**9))
    (cg / "memory.current").write_text(str(3 * 10**9))
    assert sizing.machine_memory(proc, cg) == (5 * 10**9, "cgroup v2 limit")
    assert sizing.memory_budget(0.5, proc, cg) == int(2.5 * 10**9)
    with pytest.raises(ValueError, match="headroom"):
        sizing.memory_budget(0, proc, cg)
    with pytest.raises(ModelTooLargeError, match="pass memory_budget"):
        sizing.machine_memory(tmp_path / "nowhere", tmp_path / "nowhere")


def test_costs_are_pure_functions_of_the_size() -> None:
    ease = create_model("ease")
    small, big = ease.cost(1000, 2000, 20000), ease.cost(1000, 4000, 20000)
    assert small == ease.cost(1000, 2000, 20000)
    assert 3.5 < (big.peak_bytes - 160 * 20000) / (small.peak_bytes - 160 * 20000) < 4.5  # n_items^2
    assert big.fit_seconds > 7 * small.fit_seconds  # n_items^3
    sparse = create_model("sparse-ease-text")
    a = sparse.cost(40_000, 25_000, 290_000, {"text": 384})
    b = sparse.cost(300_000, 1_000_000, 2_400_000, {"text": 384})
    assert b.peak_bytes < 16e9 < ease.cost(300_000, 1_000_000, 2_400_000).peak_bytes
    assert a.peak_bytes < create_model("ease-text").cost(40_000, 25_000, 290_000, {"text": 384}).peak_bytes / 4
    with pytest.raises(ValueError, match="n_items"):
        ease.cost(10, -1, 5)


# -- refusal before the dense fit ------------------------------------------------------------------------------
@pytest.fixture
def no_dense_fit(monkeypatch: pytest.MonkeyPatch):
    """Any dense Gram, inverse or similarity now fails the test: the refusal must come first."""
    from recommenders.models import ease, itemknn

    def boom(*args, **kwargs):
        raise AssertionError("the dense fit was reached")

    monkeypatch.setattr(np.linalg, "inv", boom)
    monkeypatch.setattr(ease.EASE, "_gram", boom)
    monkeypatch.setattr(itemknn.ItemKNN, "_fit", boom)


@pytest.mark.parametrize("name", ["ease", "ease-text", "itemknn"])
def test_a_catalogue_above_the_dense_limit_never_reaches_the_dense_fit(name: str, no_dense_fit) -> None:
    # 300k items: a dense n_items^2 model needs terabytes; refused on this machine's own budget
    items = [f"i{i}" for i in range(300_000)]
    data = random_interactions(2_000, 300_000, 6_000)
    with pytest.raises(ModelTooLargeError) as err:
        create_model(name).fit(data, items, text_features(300_000, 8))
    msg = str(err.value)
    assert f"model {name!r} is too large for this machine for 300,000 items" in msg
    assert "TB" in msg and "this machine can give about" in msg and "sparse-ease" in msg
    assert isinstance(err.value, ModelFitError)


def test_an_explicit_budget_refuses_a_small_catalogue_too(no_dense_fit) -> None:
    data = random_interactions(50, 40, 300)
    items = [f"i{i}" for i in range(40)]
    with pytest.raises(ModelTooLargeError, match=r"can give about 1 kB now\. Use 'sparse-ease'"):
        create_model("ease").fit(data, items, memory_budget=1000)


def test_the_cli_prints_the_refusal_and_exits_2(tmp_path: Path) -> None:
    from recommenders.catalog import write_synthetic_catalog

    folder = write_synthetic_catalog(tmp_path / "shop", "product", n_items=40, n_users=16, images=False)
    proc = subprocess.run(
        [sys.executable, "-m", "recommenders", "train", "--dataset", str(folder), "--model", "ease",
         "--memory-budget", "2kB", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "m"), "--quiet"],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: model 'ease' is too large for this machine for 40 items")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "m").exists()


# -- the default follows the catalogue -------------------------------------------------------------------------
def test_choose_default_keeps_ease_text_on_ml100k_and_goes_sparse_above() -> None:
    budget = 16 * 10**9
    name, params, reason = sizing.choose_default(943, 1682, 100_000, True, budget)
    assert (name, params) == ("ease-text", {}) and "fits this catalogue with room" in reason
    assert sizing.choose_default(943, 1682, 100_000, False, budget).model == "ease"
    name, params, reason = sizing.choose_default(40_000, 25_000, 290_000, True, budget)
    assert name == "sparse-ease-text" and params == {} and "the dense ease-text would need about" in reason
    assert sizing.choose_default(300_000, 1_000_000, 2_400_000, False, budget).model == "sparse-ease"
    assert sizing.choose_default(300_000, 1_000_000, 2_400_000, True, budget).params == {"text_dim": 64}
    # a small machine: the dense model no longer fits with room
    assert sizing.choose_default(5_000, 8_000, 100_000, True, 2 * 10**9).model == "sparse-ease-text"
    with pytest.raises(ModelTooLargeError, match="sparse-ease-text"):
        sizing.choose_default(300_000, 1_000_000, 2_400_000, True, 10**8)
    with pytest.raises(ValueError, match="n_items"):
        sizing.choose_default(10, 0, 5, True, budget)


# -- sparse EASE -----------------------------------------------------------------------------------------------
def _fitted_pair(dense: str, sparse: str, **params):
    # dense enough that every pair of items co-occurs: each neighbourhood is then every other item
    data = random_interactions(60, 30, 1500, seed=3)
    items = [f"i{i}" for i in range(30)]
    feats = text_features(30)
    a = create_model(dense, **params).fit(data, items, feats)
    b = create_model(sparse, neighbours=29, **({"text_neighbours": 29} if "text" in sparse else {}),
                     **params).fit(data, items, feats)
    return a, b


@pytest.mark.parametrize("dense,sparse,params", [("ease", "sparse-ease", {"reg": 5.0}),
                                                 ("ease-text", "sparse-ease-text", {"reg": 5.0, "text_weight": 2.0})])
def test_full_neighbourhoods_give_exactly_ease(dense: str, sparse: str, params: dict) -> None:
    a, b = _fitted_pair(dense, sparse, **params)
    assert b.B.getnnz() == 30 * 29
    np.testing.assert_allclose(b.B.toarray(), a.B, rtol=1e-4, atol=1e-6)
    assert a.recommend("u1", 10) [0] == b.recommend("u1", 10)[0]


def test_sparse_gather_equals_dense_gather(monkeypatch: pytest.MonkeyPatch) -> None:
    from recommenders.models import sparse_ease

    data = random_interactions(80, 50, 700, seed=5)
    items = [f"i{i}" for i in range(50)]
    feats = text_features(50)
    params = {"reg": 3.0, "neighbours": 7, "text_neighbours": 3, "gram_keep": 12}
    dense = create_model("sparse-ease-text", **params).fit(data, items, feats)
    monkeypatch.setattr(sparse_ease, "DENSE_GATHER_MAX_ITEMS", 0)
    monkeypatch.setattr(sparse_ease, "_GATHER_CELLS", 300)  # many small batches
    monkeypatch.setattr(sparse_ease, "_BLOCK_CELLS", 50)  # the Gram in many blocks
    sparse = create_model("sparse-ease-text", **params).fit(data, items, feats)
    np.testing.assert_allclose(sparse.B.toarray(), dense.B.toarray(), rtol=1e-4, atol=1e-6)
    assert dense.B.getnnz(axis=0).max() <= 10  # at most neighbours + text_neighbours weights per column


def test_items_without_interactions_are_ranked_by_text() -> None:
    # two genres; item "new" has no interactions and reads like genre A
    rng = np.random.default_rng(0)
    a_items, b_items = [f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]
    rows = [(f"u{u}", i) for u in range(30) for i in (a_items if u % 2 == 0 else b_items) if rng.random() < 0.7]
    data = pd.DataFrame(rows, columns=["user_id", "item_id"])
    items = a_items + b_items + ["new"]
    f = rng.normal(scale=0.05, size=(21, 8)).astype(np.float32)
    f[:10, 0] += 1.0
    f[10:20, 1] += 1.0
    f[20, 0] += 1.0
    model = create_model("sparse-ease-text", reg=1.0, text_weight=5.0, neighbours=5, text_neighbours=3).fit(
        data, items, {"text": f})
    ids, _ = model.recommend_from_items(["a0", "a1", "a2"], k=21)
    assert ids.index("new") < min(ids.index(b) for b in b_items)
    ids, _ = model.recommend_from_items(["b0", "b1", "b2"], k=21)
    assert ids.index("new") > max(ids.index(b) for b in b_items if b not in ("b0", "b1", "b2"))
    plain = create_model("sparse-ease", reg=1.0, neighbours=5).fit(data, items)
    assert plain.score(0)[20] == 0.0  # without text, nothing reaches it


def test_dislikes_pull_neighbours_down_and_save_load_keeps_them(tmp_path: Path) -> None:
    data = random_interactions(60, 30, 600, seed=7)
    items = [f"i{i}" for i in range(30)]
    model = create_model("sparse-ease", reg=2.0, neighbours=10).fit(data, items)
    liked = ["i1", "i2"]
    plain_ids, plain = model.recommend_with_feedback(None, liked=liked, k=28)
    ids, scores = model.recommend_with_feedback(None, liked=liked, disliked=["i3"], k=27)
    assert "i3" not in ids
    near = np.argsort(-model.B[model.item_index("i3")].toarray().ravel())[:3]
    for j in near:
        iid = items[j]
        if iid in ids and iid in plain_ids and iid not in liked:
            assert scores[ids.index(iid)] < plain[plain_ids.index(iid)]
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.recommend_with_feedback(None, liked=liked, disliked=["i3"], k=27)[0] == ids


def test_sparse_scores_rank_exactly_as_the_dense_vector() -> None:
    rng = np.random.default_rng(11)
    for trial in range(200):
        n = int(rng.integers(1, 40))
        m = int(rng.integers(0, n + 1))
        idx = rng.choice(n, m, replace=False)
        vals = rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0], m)  # ties, zeros and negatives on purpose
        s = SparseScores(n, idx, vals)
        ex = rng.choice(n, int(rng.integers(0, n)), replace=False)
        k = int(rng.integers(1, n + 2))
        dense = np.asarray(s).copy()
        dense[ex] = -np.inf
        want = topk_indices(dense, k)
        got, got_v = s.top(k, ex)
        np.testing.assert_array_equal(got, want, err_msg=f"trial {trial}")
        np.testing.assert_array_equal(got_v, dense[want])


# -- ANN retrieval ---------------------------------------------------------------------------------------------
def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, d))
    return (centres[rng.integers(0, 64, n)] + 0.6 * rng.normal(size=(n, d))).astype(np.float32)


def test_ann_recall_at_20_against_exact_scoring() -> None:
    import faiss

    faiss.omp_set_num_threads(1)
    v = clustered(100_000, 32)
    index = ItemIndex(v)
    assert index.kind == "ivf"
    queries = clustered(200, 32, seed=1)
    recall = []
    for q in queries:
        got, _ = index.search(q, 20)
        want, _ = index.exact(q, 20)
        recall.append(len(set(got) & set(want)) / 20)
    assert np.mean(recall) >= 0.95, np.mean(recall)


def test_ann_exclusions_overfetch_then_fall_back_to_exact() -> None:
    v = clustered(3_000, 8, seed=2)
    index = ItemIndex(v, kind="ivf", nprobe=1, nlist=50)
    q = v[0]
    top, _ = index.exact(q, 50)
    got, scores = index.search(q, 10, exclude=top[:5])
    assert not set(got) & set(top[:5]) and len(got) == 10 and np.all(np.diff(scores) <= 0)
    # exclude almost everything the probed list holds: only exact scoring can still give 10 items
    many = np.setdiff1d(np.arange(3_000), np.arange(2_990, 3_000))
    got, _ = index.search(q, 10, exclude=many)
    assert sorted(got) == list(range(2_990, 3_000))
    blob = index.to_bytes()
    again = ItemIndex.from_bytes(v, blob, nprobe=1)
    np.testing.assert_array_equal(again.search(q, 10, exclude=top[:5])[0], index.search(q, 10, exclude=top[:5])[0])
    assert ItemIndex.from_bytes(v, ItemIndex(v, kind="exact").to_bytes()).kind == "exact"


def test_knn_exact_and_ivf_agree_on_most_neighbours() -> None:
    v = clustered(5_000, 16, seed=3)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    exact, _ = knn(v, 10)
    approx, _ = knn(v, 10, exact_max=0)
    assert (exact != np.arange(5_000)[:, None]).all() and (approx != np.arange(5_000)[:, None]).all()
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx)])
    assert overlap > 0.8, overlap


def test_factor_models_rank_through_the_index_above_the_threshold(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    from recommenders import ann
    from recommenders.models.base import FactorScores

    monkeypatch.setattr(ann, "EXACT_MAX_ITEMS", 100)  # a 400-item catalogue is "large" here
    data = random_interactions(80, 400, 3_000, seed=9)
    items = [f"i{i}" for i in range(400)]
    model = create_model("bpr", dim=8, epochs=3, batch_size=256, seed=1).fit(data, items)
    assert model._ann is not None and model._ann.kind == "ivf"
    assert isinstance(model._score_one(0), FactorScores)
    seen = set(data.loc[data["user_id"] == model.user_ids[0], "item_id"])
    ids, scores = model.recommend(model.user_ids[0], k=20)
    exact = model.score(0)  # the exact dense scores
    exact[[model.item_index(i) for i in seen]] = -np.inf
    want = [items[i] for i in topk_indices(exact, 20)]
    assert not set(ids) & seen
    assert ids == want  # the index probes every list of so small a catalogue: exactly the dense ranking
    np.testing.assert_allclose(scores, exact[[model.item_index(i) for i in ids]], rtol=1e-5)
    model.save(tmp_path / "m")
    with np.load(tmp_path / "m" / "arrays.npz") as npz:
        assert npz["state__ann"].dtype == np.uint8 and len(npz["state__ann"]) > 0
    again = load_model(tmp_path / "m")
    assert again.recommend(model.user_ids[0], k=20)[0] == ids
    fold, _ = again.recommend_with_feedback(None, liked=["i1", "i2"], disliked=["i3"], k=10)
    assert len(fold) == 10 and not {"i1", "i2", "i3"} & set(fold)


def test_sparse_row_sums_equal_the_dense_product_on_both_paths() -> None:
    # 3,000 items: a short history takes the sorted (unique) path, a long one the dense accumulation
    data = random_interactions(400, 3_000, 8_000, seed=13)
    items = [f"i{i}" for i in range(3_000)]
    model = create_model("sparse-ease", reg=2.0, neighbours=20).fit(data, items)
    dense_b = model.B.toarray().astype(np.float64)
    popular = np.argsort(-np.diff(model.B.indptr))[:40]
    for picked in (np.array([5, 17]), popular):
        s = model._fold_in(picked)
        np.testing.assert_allclose(np.asarray(s), dense_b[picked].sum(0), rtol=1e-6, atol=1e-9)
        neg = model._fold_in_feedback(picked, np.array([3]))
        np.testing.assert_allclose(np.asarray(neg), dense_b[picked].sum(0) - 0.5 * dense_b[3], rtol=1e-6, atol=1e-9)
    assert len(model._rows(popular)[0]) * 16 > 3_000 > len(model._rows(np.array([5, 17]))[0]) * 16


def test_evaluation_ranks_sparse_scores_as_the_dense_vector() -> None:
    # the evaluation ranks a SparseScores by its own exact top-k (no n_items vector per user at 1M items)
    from types import SimpleNamespace

    from recommenders.evaluation import evaluate_model
    from recommenders.splits import random_split

    data = random_interactions(200, 300, 3_000, seed=11)
    split = random_split(data, seed=0)
    model = create_model("sparse-ease", reg=2.0, neighbours=10).fit(split.train, [f"i{i}" for i in range(300)])
    assert isinstance(model.scores(0), SparseScores)
    fast = evaluate_model(model, split)
    dense = SimpleNamespace(user_ids=model.user_ids, item_ids=model.item_ids, score=model.score)  # no `scores`
    slow = evaluate_model(dense, split)
    for part in ("valid", "test"):
        assert fast[part]["n_users"] > 100
        for key, value in slow[part].items():
            if key != "eval_seconds":
                assert fast[part][key] == pytest.approx(value, abs=1e-12), (part, key)
