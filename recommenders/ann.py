"""Top-k retrieval over item vectors by inner product: exact below a size threshold, a FAISS index above it.

    index = ItemIndex(vectors)                       # (n_items, d) float32; exact or IVF by size
    ids, scores = index.search(query, k=20, exclude=seen)
    blob = index.to_bytes(); ItemIndex.from_bytes(vectors, blob)   # saved inside a model's npz
    neighbours = knn(vectors, k=32)                  # every item's k nearest others (cosine on normalised rows)

Exact scoring is one matrix-vector product and a partial sort: below `EXACT_MAX_ITEMS` it is as fast as any
index and loses nothing. Above it an inverted-file index (FAISS `IndexIVFFlat`): about 4 * sqrt(n_items)
lists, `nprobe` of them scanned per query. Inner product is turned into Euclidean distance by one extra
coordinate (v' = [v, sqrt(M^2 - |v|^2)], q' = [q, 0]; Bachrach et al., RecSys 2014): IVF's coarse assignment by
inner product favours long centroids and lost recall (0.91 against 0.97 at the same nprobe on the test set).
The candidates' scores are recomputed exactly (v . q) and sorted, so returned scores are exact. IVF was chosen over HNSW on measured numbers
(bench/bench_scale_models.py, recommenders/README.md): on this 2-core machine IVF builds a 1M-item index in
about a minute where HNSW takes many minutes, at the recall and latency targets (recall@20 >= 0.95, p99 well
under 20 ms).

Exclusions (seen items, dislikes) are handled by over-fetching `k + len(exclude)` candidates and filtering;
when too few survive (a heavy user on a small index), the query falls back to exact scoring, so `search`
always returns min(k, n_items - len(exclude)) items. Ties and order: score descending, then item index
ascending, as `recommenders.models.base.topk_indices`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from recommenders.models.base import topk_indices

EXACT_MAX_ITEMS = 50_000  # below this, exact scoring (one matvec: ~1-3 ms at 50k x 65 dims)
DEFAULT_NPROBE = 48  # IVF lists scanned per query (recall@20 >= 0.95 on the bench's 1M set with 4000 lists)
TRAIN_PER_LIST = 64  # k-means training points per list (FAISS asks for at least 39)
KNN_NPROBE = 16  # lists scanned per item when building a kNN graph (neighbours, not a served ranking)


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is pinned in requirements.txt
        raise ImportError("faiss-cpu is needed for catalogues above "
                          f"{EXACT_MAX_ITEMS:,} items: pip install faiss-cpu==1.15.1") from exc
    return faiss


def _nlist(n: int) -> int:
    return int(max(16, min(65536, round(4 * np.sqrt(n)))))


class ItemIndex:
    """Inner-product top-k over the rows of `vectors` (n_items, d).

    kind: "auto" (exact up to `exact_max` items, else "ivf"), "exact" or "ivf". An IVF index is trained on a
    seeded sample of at most TRAIN_PER_LIST vectors per list and holds a float32 copy of the vectors.
    """

    def __init__(self, vectors: np.ndarray, kind: str = "auto", exact_max: int | None = None,
                 nprobe: int = DEFAULT_NPROBE, nlist: int | None = None, seed: int = 0,
                 _index=None) -> None:
        v = np.asarray(vectors)
        if v.ndim != 2 or v.shape[0] == 0:
            raise ValueError(f"vectors: expected a non-empty (n_items, d) array, got shape {v.shape}")
        if kind not in ("auto", "exact", "ivf"):
            raise ValueError(f"kind: expected 'auto', 'exact' or 'ivf', got {kind!r}")
        if nprobe < 1:
            raise ValueError(f"nprobe: expected a positive integer, got {nprobe}")
        self.vectors = np.ascontiguousarray(v, dtype=np.float32)
        exact_max = EXACT_MAX_ITEMS if exact_max is None else exact_max
        self.kind = ("exact" if len(v) <= exact_max else "ivf") if kind == "auto" else kind
        self.nprobe = int(nprobe)
        self.index = _index
        if self.kind == "ivf" and self.index is None:
            self.index = self._build(nlist or _nlist(len(v)), seed)
        if self.index is not None:
            self.index.nprobe = self.nprobe

    @property
    def n_items(self) -> int:
        return self.vectors.shape[0]

    def _augmented(self) -> np.ndarray:
        """(n, d + 1) rows [v, sqrt(M^2 - |v|^2)], M the largest norm: L2 order on them = inner-product order."""
        sq = np.einsum("ij,ij->i", self.vectors, self.vectors)
        extra = np.sqrt(np.maximum(sq.max() - sq, 0.0))[:, None]
        return np.ascontiguousarray(np.hstack([self.vectors, extra]), dtype=np.float32)

    def _build(self, nlist: int, seed: int):
        faiss = _faiss()
        n, d = self.vectors.shape
        nlist = min(nlist, max(1, n // 39))  # FAISS wants >= 39 training points per list
        data = self._augmented()
        quantizer = faiss.IndexFlatL2(d + 1)
        index = faiss.IndexIVFFlat(quantizer, d + 1, nlist, faiss.METRIC_L2)
        sample = data
        if n > TRAIN_PER_LIST * nlist:
            sample = data[np.sort(np.random.default_rng(seed).choice(n, TRAIN_PER_LIST * nlist, replace=False))]
        index.cp.seed = int(seed)
        index.cp.niter = 10  # k-means iterations: the lists only need to be roughly balanced
        index.train(sample)
        index.add(data)
        return index

    def _query(self, q: np.ndarray) -> np.ndarray:
        return np.concatenate([q, np.zeros(q.shape[:-1] + (1,), dtype=np.float32)], axis=-1)

    # -- search ----------------------------------------------------------------------------------------------
    def exact(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        scores = self.vectors @ np.asarray(query, dtype=np.float32)
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        top = topk_indices(scores, k)
        return top, scores[top]

    def search(self, query: np.ndarray, k: int, exclude: Sequence[int] | np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (item indices, scores) of `vectors @ query`, never an index in `exclude`."""
        q = np.asarray(query, dtype=np.float32).ravel()
        if q.shape[0] != self.vectors.shape[1]:
            raise ValueError(f"query: expected {self.vectors.shape[1]} dimensions, got {q.shape[0]}")
        ex = np.unique(np.asarray(exclude, dtype=np.int64)) if exclude is not None and len(exclude) else None
        if self.kind == "exact":
            return self.exact(q, k, ex)
        n_ex = 0 if ex is None else len(ex)
        fetch = min(self.n_items, k + n_ex)
        _, ids = self.index.search(self._query(q)[None, :], fetch)
        ids = ids[0]
        ok = ids >= 0
        if ex is not None:
            ok &= ~np.isin(ids, ex)
        ids = ids[ok]
        scores = self.vectors[ids] @ q  # exact scores of the candidates
        want = min(k, self.n_items - n_ex)
        if len(ids) < want:  # too many excluded among the probed lists: exact is always right
            return self.exact(q, k, ex)
        order = np.lexsort((ids, -scores))[:k]
        return ids[order].astype(np.int64), scores[order]

    # -- persistence -----------------------------------------------------------------------------------------
    def to_bytes(self) -> np.ndarray:
        """The FAISS index serialised as a uint8 array (empty for an exact index), for a model's npz."""
        if self.index is None:
            return np.zeros(0, dtype=np.uint8)
        return _faiss().serialize_index(self.index)

    @classmethod
    def from_bytes(cls, vectors: np.ndarray, blob: np.ndarray, nprobe: int = DEFAULT_NPROBE) -> "ItemIndex":
        if blob is None or len(blob) == 0:
            return cls(vectors, kind="exact", nprobe=nprobe)
        index = _faiss().deserialize_index(np.asarray(blob, dtype=np.uint8))
        return cls(vectors, kind="ivf", nprobe=nprobe, _index=index)


def knn(vectors: np.ndarray, k: int, exact_max: int | None = None, chunk: int = 1024,
        nprobe: int = KNN_NPROBE, seed: int = 0, scores: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Each row's `k` most similar other rows by inner product: (indices (n, k) int64, scores (n, k) float32).

    Rows with fewer than k others get -1 padding. Exact (chunked brute force) up to `exact_max` rows, an IVF
    index above (approximate: neighbour lists, not a served ranking). `scores=False`: the neighbours only
    (scores None), which above `exact_max` saves re-scoring n x k candidates."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(v)
    if not 1 <= k:
        raise ValueError(f"k: expected a positive number of neighbours, got {k}")
    kk = min(k, n - 1)
    out_i = np.full((n, k), -1, dtype=np.int64)
    out_s = np.full((n, k), -np.inf, dtype=np.float32)
    if kk < 1:
        return out_i, (out_s if scores else None)
    if n <= (EXACT_MAX_ITEMS if exact_max is None else exact_max):
        for start in range(0, n, chunk):
            sim = v[start: start + chunk] @ v.T  # (chunk, n)
            rows = np.arange(start, min(start + chunk, n))
            sim[rows - start, rows] = -np.inf
            part = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
            ps = np.take_along_axis(sim, part, 1)
            order = np.lexsort((part, -ps), axis=1)
            out_i[rows, :kk] = np.take_along_axis(part, order, 1)
            out_s[rows, :kk] = np.take_along_axis(ps, order, 1)
        return out_i, (out_s if scores else None)
    built = ItemIndex(v, kind="ivf", nprobe=nprobe, seed=seed)
    index = built.index
    for start in range(0, n, 65536):
        _, i = index.search(built._query(v[start: start + 65536]), kk + 1)
        rows = np.arange(start, min(start + 65536, n))
        self_hit = i == rows[:, None]
        # drop the row itself (or the last neighbour when the row was not among its own results)
        drop = np.where(self_hit.any(1), self_hit.argmax(1), kk)
        keep = np.ones_like(i, dtype=bool)
        keep[np.arange(len(rows)), drop] = False
        out_i[rows, :kk] = i[keep].reshape(len(rows), kk)
        if scores:
            s = np.einsum("ij,ikj->ik", v[start: start + 65536], v[np.maximum(i, 0)])
            s[i < 0] = -np.inf
            out_s[rows, :kk] = s[keep].reshape(len(rows), kk)
    return out_i, (out_s if scores else None)
