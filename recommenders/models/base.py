"""The one model interface; every model implements `_fit`, `_score_one` and `_fold_in` and inherits the rest.

Ids cross the boundary as strings; inside, users and items are row indices. Interactions may carry a
`weight` column (the store export): weight > 0 is a positive; weight <= 0 (a dislike) is *dropped from the
positives* but kept in the user's "seen" set, so a disliked item is never recommended to that user again.
Repeated positives count once (every rating is a positive, as in RecBole's ml-100k protocol).

Weights and explicit negatives (recommenders/signals.py maps logged events to them): a model whose class sets
`uses_weights = True` finds the positives' weights (the largest per pair) in `self._train_weights` during
`_fit`; one that sets `uses_negatives = True` finds the explicit negatives (weight < 0 and never a positive)
in `self._negatives` and uses them (EASE down-weights the neighbourhood of a disliked item); one that sets
`uses_ratings = True` finds the explicit ratings of its positives (a `rating` column, the mean per pair; None
when the frame has none) in `self._train_ratings`. The others
binarise weights and treat a negative as "seen, not positive"; weight == 0 is always only "seen".
`recommend_with_feedback` folds a visitor's session likes and dislikes into the ranking at once, and learns
from what this visit's pages showed and the visitor passed over (`skipped`: `recommenders.visit`).

Ranking is deterministic: higher score first, ties broken by the lower item index; a batch call scores each
user with the same code path as a single call, so batch and single-user results are identical.
Save/load: `params.json` (name, params, ids) + `arrays.npz` (loaded with allow_pickle=False).

Size (recommenders/sizing.py): every model states what a catalogue costs it (`cost(n_users, n_items, nnz,
feature_dims) -> Cost`: peak bytes, fit seconds where they can be estimated) and `fit` refuses, with
ModelTooLargeError, a catalogue whose cost exceeds the memory budget (default: what this machine can give now)
before it builds anything that grows with the catalogue.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommenders.errors import ColdVisitorError, ModelFitError, NotFittedError, UnknownItemError, UnknownUserError
from recommenders.sizing import Cost, check_fits, memory_budget as machine_budget

if TYPE_CHECKING:  # pragma: no cover - types only
    from recommenders.visit import VisitIndex, VisitLearning

FORMAT_VERSION = 1


def topk_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best finite scores of a 1-D array: score descending, then index ascending."""
    finite = np.isfinite(scores)
    n_ok = int(finite.sum())
    k = min(k, n_ok)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    masked = np.where(finite, scores, -np.inf)
    if k < len(masked):
        kth = np.partition(masked, len(masked) - k)[len(masked) - k]  # the k-th largest value
        cand = np.flatnonzero(masked >= kth)  # includes every tie at the boundary
    else:
        cand = np.flatnonzero(finite)
    order = np.lexsort((cand, -masked[cand]))
    return cand[order[:k]]


class LazyScores:
    """Scores of every item that a model can rank without materialising them all (a sparse item-item row sum,
    an ANN query). `np.asarray(scores)` gives the full (n_items,) float64 vector, exactly; `top(k, exclude)`
    gives the same top-k as ranking that vector (SparseScores: identical; an ANN index: approximate above its
    exact threshold). Hooks (`_score_one`, `_fold_in`, `_fold_in_feedback`) may return one instead of an array.
    """

    n: int

    def dense(self) -> np.ndarray:
        raise NotImplementedError

    def top(self, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.dense()
        return out if dtype is None else out.astype(dtype, copy=False)

    def __len__(self) -> int:
        return self.n


class SparseScores(LazyScores):
    """Scores that are 0.0 except at `indices` (unique item indices) where they are `values`."""

    def __init__(self, n: int, indices: np.ndarray, values: np.ndarray) -> None:
        self.n = int(n)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.values = np.asarray(values, dtype=np.float64)

    def dense(self) -> np.ndarray:
        out = np.zeros(self.n, dtype=np.float64)
        out[self.indices] = self.values
        return out

    def top(self, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exactly `topk_indices` of the dense vector with `exclude` at -inf: positive scores first, then the
        zero scores by ascending index, then the negative ones; ties by the lower index."""
        idx, val = self.indices, self.values
        ex = np.unique(np.asarray(exclude, dtype=np.int64)) if exclude is not None and len(exclude) else \
            np.empty(0, dtype=np.int64)
        if len(ex):
            keep = ~np.isin(idx, ex)
            idx, val = idx[keep], val[keep]
        pos, neg = val > 0, val < 0
        pi, pv = idx[pos], val[pos]
        if len(pv) > k:  # keep the k largest (and every tie of the k-th) before the exact sort
            kth = np.partition(pv, len(pv) - k)[len(pv) - k]
            keep = pv >= kth
            pi, pv = pi[keep], pv[keep]
        order = np.lexsort((pi, -pv))[:k]
        out_i, out_v = [pi[order]], [pv[order]]
        need = k - len(out_i[0])
        if need > 0:  # the zero scores, lowest index first, skipping excluded and non-zero items
            blocked = np.union1d(ex, idx[val != 0])
            stop = min(self.n, need + len(blocked))
            zeros = np.setdiff1d(np.arange(stop, dtype=np.int64), blocked, assume_unique=True)[:need]
            out_i.append(zeros)
            out_v.append(np.zeros(len(zeros)))
            need -= len(zeros)
        if need > 0:
            order = np.lexsort((idx[neg], -val[neg]))[:need]
            out_i.append(idx[neg][order])
            out_v.append(val[neg][order])
        return np.concatenate(out_i), np.concatenate(out_v)


class OffsetSparseScores(LazyScores):
    """Scores that are `offset` except at `indices` (unique item indices) where they are `values`: a blend of
    standardised sparse scores (`recommenders.visit.blend_scores`), kept sparse at any catalogue size."""

    def __init__(self, n: int, offset: float, indices: np.ndarray, values: np.ndarray) -> None:
        self.n = int(n)
        self.offset = float(offset)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.values = np.asarray(values, dtype=np.float64)

    def dense(self) -> np.ndarray:
        out = np.full(self.n, self.offset, dtype=np.float64)
        out[self.indices] = self.values
        return out

    def top(self, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exactly `topk_indices` of the dense vector with `exclude` at -inf (ranking minus a constant is the same
        ranking: SparseScores' exact top-k of the values less the offset)."""
        top, values = SparseScores(self.n, self.indices, self.values - self.offset).top(k, exclude)
        return top, values + self.offset

    def plus(self, other: "OffsetSparseScores") -> "OffsetSparseScores":
        """The element-wise sum, sparse: the offsets add, and so do the values at the union of the indices."""
        idx = np.union1d(self.indices, other.indices)
        values = np.full(len(idx), self.offset + other.offset)
        values[np.searchsorted(idx, self.indices)] += self.values - self.offset
        values[np.searchsorted(idx, other.indices)] += other.values - other.offset
        return OffsetSparseScores(self.n, self.offset + other.offset, idx, values)


def _per_pair(users: np.ndarray, items: np.ndarray, values: np.ndarray, how: str, shape: tuple[int, int]
              ) -> sp.csr_matrix:
    """(n_users, n_items) float64 CSR of `values` aggregated (`how`: "max", "mean") over repeated (user, item) rows."""
    pairs = pd.DataFrame({"u": users, "i": items, "v": values}).groupby(["u", "i"], sort=False)["v"].agg(how)
    pairs = pairs.reset_index()
    return sp.csr_matrix((pairs["v"].to_numpy(np.float64), (pairs["u"].to_numpy(), pairs["i"].to_numpy())),
                         shape=shape)


class Recommender:
    """Base class. Subclasses set `name`, `defaults` and implement the three private hooks."""

    name: ClassVar[str] = ""
    defaults: ClassVar[Mapping[str, Any]] = {}
    needs: ClassVar[tuple[str, ...]] = ()  # feature modalities that must be passed to fit
    needs_any_modality: ClassVar[bool] = False  # True: fit needs at least one feature modality, whichever it is
    iterative: ClassVar[bool] = False  # trained by epochs, accepts `valid` for early stopping
    uses_weights: ClassVar[bool] = False  # _fit reads positive weights from self._train_weights
    uses_negatives: ClassVar[bool] = False  # explicit negatives (self._negatives) change the scores
    uses_ratings: ClassVar[bool] = False  # _fit reads the positives' explicit ratings from self._train_ratings

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s) {unknown}; expected some of {sorted(self.defaults)}")
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.item_ids: list[str] = []
        self.user_ids: list[str] = []
        self._item_index: dict[str, int] = {}
        self._user_index: dict[str, int] = {}
        self._seen: sp.csr_matrix | None = None  # (n_users, n_items) every interacted item, dislikes included
        self._negatives: sp.csr_matrix | None = None  # explicit negatives (weight < 0, never a positive)
        self._train_weights: sp.csr_matrix | None = None  # largest positive weight per pair (uses_weights only)
        self._train_ratings: sp.csr_matrix | None = None  # mean rating per positive pair (uses_ratings only)
        self._visit_index: "VisitIndex | None" = None  # built on first use by `visit_index`
        self.fit_seconds: float | None = None
        self.history: list[dict[str, float]] = []  # per-evaluation validation log of iterative models
        self.progress = False  # iterative models: an epoch bar on stderr during fit (set by fit(progress=...))

    # -- fitting -------------------------------------------------------------------------------------------
    def fit(
        self,
        interactions: pd.DataFrame,
        item_ids: Sequence[str],
        features: Mapping[str, np.ndarray] | None = None,
        valid: pd.DataFrame | None = None,
        progress: bool = False,
        memory_budget: int | None = None,
    ) -> "Recommender":
        """Fit on `interactions` (user_id, item_id, optional weight) over the catalogue `item_ids`.

        `features` maps modality -> (n_items, d) array aligned with `item_ids`. `valid` (user_id, item_id)
        enables early stopping for iterative models and is ignored by the others. `progress=True` shows an
        epoch bar (loss, valid NDCG@10, best epoch) on stderr while an iterative model trains.
        `memory_budget`: bytes the fit may use (default: `recommenders.sizing.memory_budget()`, what this machine
        can give now); a model whose `cost` exceeds it raises ModelTooLargeError before any big allocation.
        """
        self.progress = bool(progress)
        start = time.perf_counter()
        item_ids = [str(i) for i in item_ids]
        if not item_ids:
            raise ModelFitError("item_ids: expected a non-empty catalogue, got 0 items")
        if len(set(item_ids)) != len(item_ids):
            raise ModelFitError("item_ids: expected unique ids, got duplicates")
        missing = [c for c in ("user_id", "item_id") if c not in interactions.columns]
        if missing:
            raise ModelFitError(f"interactions: missing column(s) {missing}; got {list(interactions.columns)}")
        if interactions.empty:
            raise ModelFitError("interactions: expected at least one row, got an empty frame")
        feats = self._check_features(features, len(item_ids))
        item_index = {iid: n for n, iid in enumerate(item_ids)}
        users = interactions["user_id"].astype(str).to_numpy()
        items = interactions["item_id"].astype(str).to_numpy()
        iidx = pd.Series(items).map(item_index)
        if iidx.isna().any():
            row = int(np.flatnonzero(iidx.isna().to_numpy())[0])
            raise ModelFitError(f"interactions: row {row + 1}, column 'item_id': {items[row]!r} is not in item_ids")
        user_codes, user_ids = pd.factorize(users)
        self.check_size(len(user_ids), len(item_ids), len(interactions), {k: v.shape[1] for k, v in feats.items()},
                        memory_budget)
        weights = (
            pd.to_numeric(interactions["weight"], errors="raise").to_numpy(dtype=float)
            if "weight" in interactions.columns
            else np.ones(len(interactions))
        )
        if not np.isfinite(weights).all():
            raise ModelFitError("interactions: column 'weight' must be finite numbers")
        shape = (len(user_ids), len(item_ids))
        iidx = iidx.to_numpy(dtype=np.int64)
        seen = sp.csr_matrix((np.ones(len(iidx), dtype=np.float32), (user_codes, iidx)), shape=shape)
        seen.sum_duplicates()
        seen.data[:] = 1.0
        pos = weights > 0
        train = sp.csr_matrix(
            (np.ones(int(pos.sum()), dtype=np.float32), (user_codes[pos], iidx[pos])), shape=shape
        )
        train.sum_duplicates()
        train.data[:] = 1.0
        if train.nnz == 0:
            raise ModelFitError("interactions: expected at least one positive (weight > 0) interaction, got none")
        neg = weights < 0
        negatives = sp.csr_matrix(
            (np.ones(int(neg.sum()), dtype=np.float32), (user_codes[neg], iidx[neg])), shape=shape)
        negatives.sum_duplicates()
        negatives = (negatives - negatives.multiply(train)).tocsr()  # a pair that is also a positive is positive
        negatives.eliminate_zeros()
        negatives.data[:] = 1.0
        self._negatives = negatives
        self._train_weights = None
        if self.uses_weights:
            self._train_weights = _per_pair(user_codes[pos], iidx[pos], weights[pos], "max", shape)
        self._train_ratings = None
        if self.uses_ratings and "rating" in interactions.columns:
            ratings = pd.to_numeric(interactions["rating"], errors="coerce").to_numpy(dtype=float)
            ok = pos & np.isfinite(ratings)
            if ok.any():
                self._train_ratings = _per_pair(user_codes[ok], iidx[ok], ratings[ok], "mean", shape)
        self.item_ids = item_ids
        self.user_ids = [str(u) for u in user_ids]
        self._item_index = item_index
        self._user_index = {u: n for n, u in enumerate(self.user_ids)}
        self._seen = seen
        self._visit_index = None
        self.history = []
        valid_matrix = self._valid_matrix(valid) if (valid is not None and self.iterative) else None
        self._fit(train, feats, valid_matrix)
        self.fit_seconds = time.perf_counter() - start
        return self

    # -- size ----------------------------------------------------------------------------------------------
    def cost(self, n_users: int, n_items: int, nnz: int, feature_dims: Mapping[str, int] | None = None) -> Cost:
        """What fitting this model on a catalogue of this size costs: a pure function of the sizes and params.

        `nnz`: interactions (rows of the frame passed to fit); `feature_dims`: modality -> feature width."""
        for name, value in (("n_users", n_users), ("n_items", n_items), ("nnz", nnz)):
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
        dims = {str(k): int(v) for k, v in (feature_dims or {}).items()}
        peak, seconds, how = self._cost(int(n_users), int(n_items), int(nnz), dims)
        # the id maps and sparse matrices every fit builds (strings, CSR seen/train/negatives, pandas temporaries)
        common = 160 * nnz + 250 * (n_users + n_items)
        return Cost(self.name, int(peak + common), seconds, how)

    def _cost(self, n_users: int, n_items: int, nnz: int, dims: dict[str, int]) -> tuple[float, float | None, str]:
        """(peak bytes beyond the common part, fit seconds or None, the formula in words)."""
        raise NotImplementedError(f"{self.name}: a model must state its cost (_cost)")

    def check_size(self, n_users: int, n_items: int, nnz: int, feature_dims: Mapping[str, int] | None = None,
                   memory_budget: int | None = None) -> Cost:
        """`cost(...)`, or ModelTooLargeError when it exceeds `memory_budget` (default: this machine's)."""
        cost = self.cost(n_users, n_items, nnz, feature_dims)
        budget = machine_budget() if memory_budget is None else int(memory_budget)
        check_fits(cost, budget, n_items, has_text="text" in (feature_dims or {}))
        return cost

    def _check_features(self, features: Mapping[str, np.ndarray] | None, n_items: int) -> dict[str, np.ndarray]:
        feats = dict(features or {})
        for need in self.needs:
            if need not in feats:
                raise ModelFitError(f"{self.name}: features[{need!r}] is required; got modalities {sorted(feats)}")
        if self.needs_any_modality and not feats:
            raise ModelFitError(f"{self.name}: expected at least one feature modality (e.g. features['text']), "
                                "got none; compute them with recommenders.features.item_features")
        for key, value in feats.items():
            arr = np.asarray(value)
            if arr.ndim != 2 or arr.shape[0] != n_items:
                raise ModelFitError(f"features[{key!r}]: expected shape ({n_items}, d) aligned with item_ids, "
                                    f"got {arr.shape}")
            feats[key] = arr.astype(np.float32, copy=False)
        return feats

    def _valid_matrix(self, valid: pd.DataFrame) -> sp.csr_matrix:
        u = valid["user_id"].astype(str).map(self._user_index)
        i = valid["item_id"].astype(str).map(self._item_index)
        ok = (u.notna() & i.notna()).to_numpy()
        m = sp.csr_matrix(
            (np.ones(int(ok.sum()), dtype=np.float32), (u[ok].astype(int), i[ok].astype(int))),
            shape=(len(self.user_ids), len(self.item_ids)),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    # -- hooks ---------------------------------------------------------------------------------------------
    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        raise NotImplementedError

    def _score_one(self, user: int) -> np.ndarray:
        """Scores (n_items,) float64 for one fitted user index."""
        raise NotImplementedError

    def _fold_in(self, items: np.ndarray) -> np.ndarray:
        """Scores (n_items,) float64 for a new user whose positives are the item indices `items`."""
        raise NotImplementedError

    def _fold_in_feedback(self, items: np.ndarray, negatives: np.ndarray) -> np.ndarray:
        """Scores for a visitor with positives `items` and explicit negatives `negatives` (item indices).

        Default: negatives do not change scores ("seen, not positive"); models with uses_negatives override."""
        return self._fold_in(items)

    def _state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        raise NotImplementedError

    # -- scoring and ranking -------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self._seen is not None

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{self.name}: call fit(...) or load_model(dir) before scoring")

    def user_index(self, user_id: str) -> int:
        self._require_fitted()
        try:
            return self._user_index[str(user_id)]
        except KeyError:
            raise UnknownUserError(
                f"user_id: expected a user seen at fit time ({len(self.user_ids)} users), got {user_id!r}"
            ) from None

    def item_index(self, item_id: str) -> int:
        self._require_fitted()
        try:
            return self._item_index[str(item_id)]
        except KeyError:
            raise UnknownItemError(
                f"item_id: expected an item of the catalogue ({len(self.item_ids)} items), got {item_id!r}"
            ) from None

    def score(self, user_idx: int) -> np.ndarray:
        """Scores (n_items,) for the fitted user at row `user_idx`."""
        self._require_fitted()
        if not 0 <= int(user_idx) < len(self.user_ids):
            raise UnknownUserError(f"user_idx: expected 0..{len(self.user_ids) - 1}, got {user_idx}")
        return np.asarray(self._score_one(int(user_idx)), dtype=np.float64)

    def scores(self, user_idx: int) -> np.ndarray | LazyScores:
        """`score(user_idx)` as the model computes it: a `LazyScores` (e.g. a sparse row sum) where the model ranks
        without materialising every item's score, else the (n_items,) array. Evaluation ranks through it."""
        self._require_fitted()
        if not 0 <= int(user_idx) < len(self.user_ids):
            raise UnknownUserError(f"user_idx: expected 0..{len(self.user_ids) - 1}, got {user_idx}")
        return self._score_one(int(user_idx))

    def score_batch(self, user_idx: Sequence[int]) -> np.ndarray:
        """Scores (len(user_idx), n_items); row r equals `score(user_idx[r])` exactly."""
        return np.stack([self.score(u) for u in user_idx]) if len(user_idx) else np.empty((0, len(self.item_ids)))

    def seen_items(self, user_idx: int) -> np.ndarray:
        self._require_fitted()
        s = self._seen
        return s.indices[s.indptr[user_idx]: s.indptr[user_idx + 1]]

    def _rank(self, scores: np.ndarray | LazyScores, k: int, exclude: np.ndarray | None
              ) -> tuple[list[str], np.ndarray]:
        if isinstance(scores, LazyScores):
            top, values = scores.top(k, exclude)
            return [self.item_ids[i] for i in top], np.asarray(values, dtype=np.float64)
        if exclude is not None and len(exclude):
            scores = scores.copy()
            scores[exclude] = -np.inf
        top = topk_indices(scores, k)
        return [self.item_ids[i] for i in top], scores[top]

    @staticmethod
    def _check_k(k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k: expected a positive integer, got {k!r}")
        return int(k)

    def recommend(self, user_id: str, k: int = 10, exclude_seen: bool = True) -> tuple[list[str], np.ndarray]:
        """Top-k (item_ids, scores) for a fitted user; raises UnknownUserError for others."""
        k = self._check_k(k)
        u = self.user_index(user_id)
        return self._rank(self._score_one(u), k, self.seen_items(u) if exclude_seen else None)

    def recommend_batch(
        self, user_ids: Sequence[str], k: int = 10, exclude_seen: bool = True
    ) -> tuple[list[list[str]], list[np.ndarray]]:
        """`recommend` for many users; element r equals `recommend(user_ids[r], ...)` exactly."""
        k = self._check_k(k)
        rows = [self.user_index(u) for u in user_ids]
        out = [self._rank(s, k, self.seen_items(u) if exclude_seen else None)
               for u, s in zip(rows, self.score_batch(rows))]
        return [ids for ids, _ in out], [sc for _, sc in out]

    def recommend_from_items(
        self, item_ids: Sequence[str], k: int = 10, exclude_seen: bool = True
    ) -> tuple[list[str], np.ndarray]:
        """Fold-in for a brand-new user who picked `item_ids` (all positives): top-k (item_ids, scores)."""
        k = self._check_k(k)
        self._require_fitted()
        if isinstance(item_ids, str) or len(item_ids) == 0:
            raise ValueError(f"item_ids: expected a non-empty sequence of item ids, got {item_ids!r}")
        picked = np.unique(np.array([self.item_index(i) for i in item_ids], dtype=np.int64))
        return self._rank(self._fold_in(picked), k, picked if exclude_seen else None)

    def user_positives(self, user_idx: int) -> np.ndarray:
        """Item indices of the fitted user's training positives (their seen items minus explicit negatives)."""
        seen = self.seen_items(user_idx)
        if self._negatives is None or self._negatives.nnz == 0:
            return seen
        neg = self._negatives
        return np.setdiff1d(seen, neg.indices[neg.indptr[user_idx]: neg.indptr[user_idx + 1]])

    def recommend_with_feedback(
        self, user_id: str | None, liked: Sequence[str] = (), disliked: Sequence[str] = (), k: int = 10,
        exclude: Sequence[str] = (), skipped: Sequence[str] = (), visit: "VisitLearning | None" = None,
    ) -> tuple[list[str], np.ndarray]:
        """Top-k (item_ids, scores) for a visitor whose session feedback counts at once.

        `user_id`: a fitted user (their training positives are the starting history; None or an unknown id:
        a new visitor). Without session feedback a fitted user gets exactly `recommend(user_id, k)`. With it,
        the history plus `liked` is folded in (`_fold_in`; a model with uses_negatives also down-weights what
        is near `disliked`); a disliked history item leaves the history (session feedback is newer than
        training data). `liked` and `disliked` are the visitor's current feedback, already resolved by the
        caller (an item is one or the other: ValueError otherwise). Never returned: the user's seen items,
        `liked`, `disliked` and `exclude`. A new visitor without likes has nothing to rank from: `ColdVisitorError`.

        `skipped`: items this visit showed and the visitor passed over (neither liked, disliked nor opened; an item
        that is also liked or disliked counts as that). With any, the ranking learns from them within the visit
        (`recommenders.visit`: the nearest training users, less those who liked what was skipped, vote; `visit`
        sets how, default `DEFAULT_VISIT`); without, nothing changes. Skipped items are not left out by
        themselves: pass them in `exclude` too when they must not come back (a page already shown).
        """
        k = self._check_k(k)
        self._require_fitted()
        for name, value in (("liked", liked), ("disliked", disliked), ("exclude", exclude), ("skipped", skipped)):
            if isinstance(value, str):
                raise ValueError(f"{name}: expected a sequence of item ids, got the string {value!r}")
        both = set(map(str, liked)) & set(map(str, disliked))
        if both:
            raise ValueError(f"liked, disliked: an item is either liked or disliked now (resolve the visitor's "
                             f"feedback first: the latest event wins), got both for {sorted(both)[:5]}")
        user = self._user_index.get(str(user_id)) if user_id is not None else None
        pos = np.array([self.item_index(i) for i in liked], dtype=np.int64)
        neg = np.array([self.item_index(i) for i in disliked], dtype=np.int64)
        out = np.array([self.item_index(i) for i in exclude], dtype=np.int64)
        skip = np.array([self.item_index(i) for i in skipped], dtype=np.int64)
        history = self.user_positives(user) if user is not None else np.empty(0, dtype=np.int64)
        if user is not None and not len(pos) and not len(neg):
            scores = self._score_one(user)
            items = history
        else:
            history = np.setdiff1d(history, neg)  # a session dislike overrides the training history
            items = np.unique(np.concatenate([history, pos]))
            if not len(items):
                raise ColdVisitorError(f"liked: a visitor the model was not fitted on needs at least one liked item, "
                                       f"got user_id={user_id!r} and no likes")
            if user is not None and self._negatives is not None:
                n = self._negatives
                neg = np.concatenate([neg, n.indices[n.indptr[user]: n.indptr[user + 1]]])
            neg = np.setdiff1d(np.unique(neg), items)
            scores = self._fold_in_feedback(items, neg) if len(neg) else self._fold_in(items)
        skip = np.setdiff1d(skip, np.concatenate([items, neg]))
        if len(skip) and len(items):
            from recommenders.visit import DEFAULT_VISIT, blend_scores

            visit = DEFAULT_VISIT if visit is None else visit
            scores = blend_scores(scores, self.visit_index().neighbour_scores(items, neg, skip, visit), visit.mix)
        seen = self.seen_items(user) if user is not None else np.empty(0, dtype=np.int64)
        return self._rank(scores, k, np.unique(np.concatenate([seen, pos, neg, out])))

    def visit_index(self) -> "VisitIndex":
        """The training positives indexed for within-visit learning (`recommenders.visit.VisitIndex`), built on
        first use and kept until the next fit."""
        self._require_fitted()
        if self._visit_index is None:
            from recommenders.visit import VisitIndex

            seen, neg = self._seen, self._negatives
            positives = seen if neg is None or neg.nnz == 0 else (seen - seen.multiply(neg)).tocsr()
            positives.eliminate_zeros()
            self._visit_index = VisitIndex(positives)
        return self._visit_index

    # -- persistence ---------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "model": self.name,
            "params": self.params,
            "item_ids": self.item_ids,
            "user_ids": self.user_ids,
            "fit_seconds": self.fit_seconds,
            "history": self.history,
        }
        arrays = {f"state__{k}": v for k, v in self._state().items()}
        arrays["seen_indptr"] = self._seen.indptr
        arrays["seen_indices"] = self._seen.indices
        if self._negatives is not None and self._negatives.nnz:
            arrays["neg_indptr"] = self._negatives.indptr
            arrays["neg_indices"] = self._negatives.indices
        tmp = directory / "arrays.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(directory / "arrays.npz")
        (directory / "params.json").write_text(json.dumps(meta))
        return directory

    @classmethod
    def _from_saved(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "Recommender":
        model = cls(**meta["params"])
        model.item_ids = list(meta["item_ids"])
        model.user_ids = list(meta["user_ids"])
        model._item_index = {iid: n for n, iid in enumerate(model.item_ids)}
        model._user_index = {u: n for n, u in enumerate(model.user_ids)}
        indices = arrays["seen_indices"]
        model._seen = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), indices, arrays["seen_indptr"]),
            shape=(len(model.user_ids), len(model.item_ids)),
        )
        shape = (len(model.user_ids), len(model.item_ids))
        neg = arrays.get("neg_indices")
        model._negatives = (sp.csr_matrix((np.ones(len(neg), dtype=np.float32), neg, arrays["neg_indptr"]), shape=shape)
                            if neg is not None else sp.csr_matrix(shape, dtype=np.float32))
        model.fit_seconds = meta.get("fit_seconds")
        model.history = list(meta.get("history", []))
        model._restore({k[len("state__"):]: v for k, v in arrays.items() if k.startswith("state__")})
        return model

    def __repr__(self) -> str:
        state = f"{len(self.user_ids)} users x {len(self.item_ids)} items" if self.is_fitted else "unfitted"
        return f"{type(self).__name__}({self.params}, {state})"


# -- helpers shared by factor models ---------------------------------------------------------------------------
class FactorScores(LazyScores):
    """score = V . query + b over a factor model's items, ranked through its ANN index (`recommenders.ann`)."""

    def __init__(self, model: "FactorModel", query: np.ndarray) -> None:
        self.model, self.query, self.n = model, np.asarray(query, dtype=np.float64), len(model.V)

    def dense(self) -> np.ndarray:
        return self.model.V @ self.query + self.model.b

    def top(self, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        return self.model.ann_index().search(np.append(self.query, 1.0), k, exclude)


class FactorModel(Recommender):
    """score(u, i) = U[u] . V[i] + b[i]; subclasses fill `self.U`, `self.V`, `self.b` (float64) in `_fit`.

    Above `recommenders.ann.EXACT_MAX_ITEMS` items the top-k come from an IVF index over the rows [V[i], b[i]]
    (query [u, 1]; built at the end of the fit, saved in the npz, so a restart does not rebuild it); `score`
    stays exact. Below it, scoring is the exact dense product, as before.
    """

    U: np.ndarray
    V: np.ndarray
    b: np.ndarray
    _ann: Any = None

    def _scores(self, query: np.ndarray) -> np.ndarray | FactorScores:
        from recommenders.ann import EXACT_MAX_ITEMS

        if len(self.V) <= EXACT_MAX_ITEMS:
            return self.V @ query + self.b
        return FactorScores(self, query)

    def _score_one(self, user: int) -> np.ndarray | FactorScores:
        return self._scores(self.U[user])

    def _fold_in(self, items: np.ndarray) -> np.ndarray | FactorScores:
        """A new user's vector is the mean of the picked items' vectors (for LightGCN this is what one
        propagation step over the new user's edges computes, up to normalisation)."""
        return self._scores(self.V[items].mean(0))

    def ann_index(self):
        """The item index (`recommenders.ann.ItemIndex`) over [V, b]; rebuilt if the catalogue changed."""
        from recommenders.ann import ItemIndex

        if self._ann is None or self._ann.n_items != len(self.V):
            self._ann = ItemIndex(np.hstack([self.V, self.b[:, None]]))
        return self._ann

    def _set_factors(self, U: np.ndarray, V: np.ndarray, b: np.ndarray | None = None, ann: np.ndarray | None = None
                     ) -> None:
        from recommenders.ann import EXACT_MAX_ITEMS, ItemIndex

        self.U = np.ascontiguousarray(U, dtype=np.float64)
        self.V = np.ascontiguousarray(V, dtype=np.float64)
        self.b = np.zeros(len(V)) if b is None else np.asarray(b, dtype=np.float64)
        self._ann = None
        if len(self.V) > EXACT_MAX_ITEMS:  # built now (fit or load), not at the first request
            vectors = np.hstack([self.V, self.b[:, None]])
            self._ann = ItemIndex.from_bytes(vectors, ann) if ann is not None and len(ann) else ItemIndex(vectors)

    def _state(self) -> dict[str, np.ndarray]:
        state = {"U": self.U, "V": self.V, "b": self.b}
        if self._ann is not None and self._ann.n_items == len(self.V):
            state["ann"] = self._ann.to_bytes()
        return state

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._set_factors(arrays["U"], arrays["V"], arrays["b"], arrays.get("ann"))
