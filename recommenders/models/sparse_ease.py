"""Sparse EASE: EASE (and `ease-text`) with each item's weights restricted to its neighbourhood.

EASE's column j is a ridge regression of item j's column of X on all the other items' columns:
B[:, j] = (G_{-j,-j} + lambda I)^-1 G_{-j,j}, G = X^T X (Steck 2019: the closed form via the inverse is
the same thing for every j at once). Here each column is solved on a neighbourhood N(j) only:

    B[N(j), j] = (G[N(j), N(j)] + lambda I)^-1 G[N(j), j],   0 elsewhere

with N(j) = the `neighbours` items that co-occur most with j (largest G entries) plus, for
`sparse-ease-text`, its `text_neighbours` nearest items by MiniLM text (cosine, `recommenders.ann.knn`).
With `text_weight` w the Gram matrix is ease-text's, G = X^T X + w F F^T (F: L2-normalised text rows),
formed only on each neighbourhood (k x k), never n_items x n_items. With N(j) = every other item the
model *is* EASE / ease-text; the restriction is what makes it scale (the same idea as neighbourhood
SLIM, Ning & Karypis 2011, with EASE's closed-form ridge instead of SLIM's elastic net).

An item nobody has interacted with still gets a column (its right-hand side is w F_N f_j), so it is
scored through its text neighbours, as in ease-text; and it appears in the rows of its text neighbours,
so users who liked those are offered it.

Cost: the co-occurrence Gram is built in blocks of items and each column keeps its `gram_keep` largest
entries (the rest cannot enter a neighbourhood), so memory grows with n_items x (gram_keep + neighbours),
not n_items^2; the solves are n_items small (k x k) systems, batched by neighbourhood size. Scoring a
user is a sparse row sum (a `SparseScores`): the top-k come from the items that co-occur with the user's
history or read like it, exactly as ranking the full vector would give them.

Weights, negatives, fold-in and save/load are EASE's: positives enter X with their weight; a user's score is
x_u B - negative_weight * sum of B's rows of the items they disliked; a new user is the sum of the picked
rows; B is saved as CSR arrays in the npz.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recommenders.models.base import Recommender, SparseScores
from recommenders.sizing import FLOPS

_BLOCK_CELLS = 20_000_000  # Gram entries formed at once while building it block by block
_GATHER_CELLS = 8_000_000  # Gram lookups per batch of neighbourhood systems
# Up to this many items the (pruned) co-occurrence Gram is also held dense (float32, at most 400 MB) and the
# neighbourhood blocks are read from it by indexing: on small, dense catalogues (ml-100k: Gram rows of ~1,000
# entries) that is ~50x faster than looking entries up in the sparse rows.
DENSE_GATHER_MAX_ITEMS = 10_000


def _top_per_column(g: sp.csc_matrix, keep: int) -> sp.csc_matrix:
    """`g` with only the `keep` largest entries of each column (ties: lower row first)."""
    counts = np.diff(g.indptr)
    if counts.max(initial=0) <= keep:
        return g
    col = np.repeat(np.arange(g.shape[1]), counts)
    order = np.lexsort((g.indices, -g.data, col))
    rank = np.arange(len(order)) - np.repeat(g.indptr[:-1], counts)
    sel = order[rank < keep]
    sel.sort()  # back to column-major, rows ascending within a column
    kept = np.minimum(counts, keep)
    indptr = np.concatenate([[0], np.cumsum(kept)])
    return sp.csc_matrix((g.data[sel], g.indices[sel], indptr), shape=g.shape)


def cooccurrence(x: sp.csr_matrix, keep: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """(off-diagonal X^T X with each column's `keep` largest entries, made symmetric; its diagonal).

    Built `_BLOCK_CELLS` at a time so that the full Gram never exists."""
    x = x.astype(np.float32)
    xc = x.tocsc()
    xt = xc.T.tocsr()  # (n_items, n_users)
    n = x.shape[1]
    diag = np.asarray(x.multiply(x).sum(0), dtype=np.float64).ravel()
    item_deg = np.diff(xc.indptr).astype(np.int64)
    user_deg = np.diff(x.indptr).astype(np.int64)
    # an upper bound of each item column's Gram entries: sum over its users of their degrees
    per_item = np.asarray(xc.T @ user_deg.astype(np.float64)).ravel() if x.nnz else np.zeros(n)
    blocks, start = [], 0
    while start < n:
        stop = start + 1
        budget = per_item[start]
        while stop < n and budget + per_item[stop] <= _BLOCK_CELLS:
            budget += per_item[stop]
            stop += 1
        g = (xt @ xc[:, start:stop]).tocsc()  # (n_items, block)
        g = g.tocoo()
        off = g.row != (g.col + start)
        g = sp.csc_matrix((g.data[off], (g.row[off], g.col[off])), shape=g.shape)
        g.sum_duplicates()
        blocks.append(_top_per_column(g, keep))
        start = stop
    del item_deg
    top = sp.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0].tocsr()
    sym = top.maximum(top.T).tocsr()  # an entry kept by either of its two columns
    sym.sort_indices()
    return sym, diag


def _neighbourhoods(gram: sp.csr_matrix, k: int, text_nb: np.ndarray | None) -> sp.csr_matrix:
    """Row j: item j's k largest co-occurrence partners (ties: lower index) and its text neighbours, as the
    column indices of a CSR pattern (sorted, unique; data unused)."""
    n = gram.shape[0]
    # gram is symmetric: its CSR arrays read as CSC are its transpose, i.e. row j becomes column j
    top = _top_per_column(sp.csc_matrix((gram.data, gram.indices, gram.indptr), shape=gram.shape), k)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(top.indptr))
    cols = top.indices.astype(np.int64)
    if text_nb is not None and text_nb.size:
        tr = np.repeat(np.arange(n, dtype=np.int64), text_nb.shape[1])
        tc = text_nb.ravel().astype(np.int64)
        ok = (tc >= 0) & (tc != tr)
        rows, cols = np.concatenate([rows, tr[ok]]), np.concatenate([cols, tc[ok]])
    # duplicates (a partner that is also a text neighbour) summed away by scipy's per-row sort, not a global
    # np.unique over int64 keys (hash-based in numpy 2.4: 37 s of a 200k-item fit)
    nbs = sp.csr_matrix((np.ones(len(cols), dtype=np.int8), (rows, cols)), shape=(n, n))
    nbs.sum_duplicates()
    nbs.data[:] = 1
    return nbs


def _gather(gram: sp.csr_matrix, nb: np.ndarray, lens: np.ndarray, targets: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """For a batch of target items and their neighbourhoods `nb` (B, K) (row b: item targets[b]'s `lens[b]`
    neighbours, ascending, then unused slots): A (B, K, K) = gram[nb[b], nb[b]] and rhs (B, K) =
    gram[nb[b], targets[b]], 0 where the Gram has no entry or the slot is unused.

    The Gram rows needed are copied out (scipy's row indexing) and each is intersected with its neighbourhood by
    scipy's sorted merge of two CSR matrices (`multiply`: one pass over the rows, in C); only the entries kept are
    then looked up for their slot."""
    bsz, K = nb.shape
    n = gram.shape[1]
    A = np.zeros((bsz, K, K), dtype=np.float64)
    rhs = np.zeros((bsz, K), dtype=np.float64)
    lens = lens.astype(np.int64)
    total = int(lens.sum())
    if total == 0:
        return A, rhs

    owner = np.repeat(np.arange(bsz), lens)  # every used slot: (target, slot)
    slot = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    cols = nb[owner, slot]
    indptr = np.concatenate([[0], np.cumsum(lens)])
    member = sp.csr_matrix((np.ones(total, np.float32), cols, indptr), shape=(bsz, n))  # row b: b's neighbourhood
    keys = owner * n + cols  # ascending: owners in order, each neighbourhood ascending

    def restrict(rows_of: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gram rows `rows_of`, row r kept only on the neighbourhood of target `owners[r]`: (row, slot, value)."""
        kept = gram[rows_of].multiply(member[owners])  # the Gram's entries within the neighbourhood
        row = np.repeat(np.arange(len(owners)), np.diff(kept.indptr))
        at = np.searchsorted(keys, owners[row] * n + kept.indices)  # only the kept entries are looked up
        return row, slot[at], kept.data

    row, col, val = restrict(cols, owner)  # rows of the neighbours: the K x K blocks
    A[owner[row], slot[row], col] = val
    row, col, val = restrict(targets, np.arange(bsz))  # rows of the targets: the right-hand sides (G is symmetric)
    rhs[row, col] = val
    return A, rhs


def _batches(sizes: np.ndarray, expand: np.ndarray, cells: int) -> list[tuple[int, int]]:
    """[start, stop) ranges over items sorted by neighbourhood size (`sizes`, ascending): each range's (B, K, K)
    systems and its Gram rows to expand (`expand`, per item) stay within `cells` (a range holds at least one)."""
    n = len(sizes)
    cum = np.concatenate([[0], np.cumsum(expand, dtype=np.int64)])
    out, pos = [], 0
    while pos < n:
        k0 = max(int(sizes[pos]), 1)
        stop = min(n, pos + max(1, cells // (k0 * k0)))
        k = np.maximum(sizes[pos:stop], 1).astype(np.int64)
        ok = (np.arange(1, stop - pos + 1) * k * k <= cells) & (cum[pos + 1: stop + 1] - cum[pos] <= cells)
        end = pos + max(1, len(ok) if ok.all() else int(np.argmin(ok)))
        out.append((pos, end))
        pos = end
    return out


def _threads(threads: int | None) -> int:
    """Worker threads for the neighbourhood solves: `threads`, or the CPUs this process may run on (at most 4:
    each holds a batch of systems, ~0.3 GB)."""
    if threads is not None:
        return int(threads)
    import os

    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


class _Clock:
    """Wall and CPU seconds (all threads) of a fit's steps: `fit_profile` on the fitted model."""

    def __init__(self) -> None:
        import time

        self._time = time
        self.seconds: dict[str, float] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def mark(self, step: str) -> None:
        wall, cpu = self._time.perf_counter(), self._time.process_time()
        self.seconds[f"{step}_s"] = round(wall - self._wall, 3)
        self.seconds[f"{step}_cpu_s"] = round(cpu - self._cpu, 3)
        self._wall, self._cpu = wall, cpu


class SparseEASE(Recommender):
    name = "sparse-ease"
    uses_weights = True
    uses_negatives = True
    defaults: Mapping[str, object] = {
        "reg": 250.0,  # as `ease`
        "neighbours": 200,  # co-occurrence partners per item column (ml-100k: within 0.99x of ease; README)
        "gram_keep": 1000,  # Gram entries kept per item column before neighbourhoods are chosen
        "negative_weight": 0.5,  # as `ease`
        "threads": None,  # workers for the neighbourhood solves; None: the CPUs this process may use (at most 4)
    }

    # -- size ------------------------------------------------------------------------------------------------
    def _k(self, dims: Mapping[str, int] | None = None) -> int:
        return int(self.params["neighbours"]) + int(self.params.get("text_neighbours", 0))

    def _cost(self, n_users, n_items, nnz, dims):
        keep = min(int(self.params["gram_keep"]), max(n_items - 1, 1))
        k = min(self._k(), max(n_items - 1, 1))
        # Gram: estimated entries (sum of squared user degrees if they were even, x4 for skew), bounded by
        # the per-column cap (x2 for the symmetric union); 12 bytes an entry, three copies while it is built
        gram_cells = min(2.0 * n_items * keep, 4.0 * nnz * nnz / max(n_users, 1) + n_items, float(n_items) ** 2)
        gram = 36.0 * gram_cells + 16.0 * _BLOCK_CELLS
        # an item has at most as many co-occurrence partners as its Gram row holds entries (estimated)
        k = min(k, int(min(int(self.params["neighbours"]), gram_cells / max(n_items, 1))
                       + int(self.params.get("text_neighbours", 0))))
        weights = 2 * 12.0 * n_items * k  # B as COO then CSR (float32 data, int32/int64 indices)
        solve = 8.0 * 3 * _GATHER_CELLS + 8.0 * 4 * _GATHER_CELLS  # a batch of k x k systems, gather arrays
        text = 0.0
        d = dims.get("text", 0) if self.needs else 0
        if d and self.params.get("text_dim"):
            d = min(d, int(self.params["text_dim"]))
        if d:
            text = 4.0 * n_items * d * 2 + 16.0 * n_items * int(self.params["text_neighbours"])
        flops = n_items * (k ** 3 / 3 + 2 * k * k * d) + 4.0 * nnz * nnz / max(n_users, 1)
        if d and n_items > 50_000:
            flops += 2.0 * n_items * d * n_items / 1000  # IVF kNN: ~1/1000 of the catalogue scanned per item
        elif d:
            flops += 2.0 * n_items * n_items * d
        # Wall seconds on 2 threads, calibrated on the app's own fits after the batched solve (bench_scale_app, load
        # 2-3: 25k items 21.5 s, 1M items 246 s) and kept 1.5x above them: the flops at ~8x FLOPS (the small
        # systems run in LAPACK at full speed) + 2.7 us per (item, neighbour) for the gathers and batching
        # (estimates: 25k 33 s, 1M 368 s; before that solve, 8 us and FLOPS matched 1M's 1,207 CPU-s)
        return gram + weights + solve + text, 0.13 * flops / FLOPS + 2.7e-6 * n_items * k, (
            f"sparse Gram (<= {keep} entries a column, about {gram_cells / max(n_items, 1):.0f} estimated) and about "
            f"{k} weights per item; grows with n_items, not n_items^2")

    # -- fitting ---------------------------------------------------------------------------------------------
    def _text(self, features: dict[str, np.ndarray]) -> np.ndarray | None:
        return None

    def _text_weight(self, train: sp.csr_matrix) -> float:
        return 0.0

    def _fit(self, train: sp.csr_matrix, features: dict[str, np.ndarray], valid: sp.csr_matrix | None) -> None:
        p = self.params
        reg = float(p["reg"])
        if reg <= 0:
            raise ValueError(f"reg: expected a positive L2 strength, got {reg}")
        k = int(p["neighbours"])
        if k < 1:
            raise ValueError(f"neighbours: expected at least 1, got {k}")
        threads = p.get("threads")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads: expected None or a positive number of threads, got {threads!r}")
        keep = max(int(p["gram_keep"]), k)
        n = train.shape[1]
        clock = _Clock()
        x = (self._train_weights if self._train_weights is not None else train).tocsr()
        gram, diag = cooccurrence(x, keep)
        clock.mark("gram")
        text, text_nb = self._text(features), None
        weight = self._text_weight(train)
        clock.mark("text")
        if text is not None and int(p["text_neighbours"]) > 0:
            from recommenders.ann import KNN_NPROBE, knn

            nprobe = p.get("text_nprobe")
            text_nb, _ = knn(text, int(p["text_neighbours"]), nprobe=KNN_NPROBE if nprobe is None else int(nprobe),
                             scores=False)
            clock.mark("text_knn")
        nbs = _neighbourhoods(gram, k, text_nb)
        del text_nb
        dense = None
        if n <= DENSE_GATHER_MAX_ITEMS:
            dense = gram.toarray()
            if text is not None and weight > 0:
                dense += weight * (text @ text.T)  # ease-text's Gram, read only on the neighbourhoods
        sizes = np.diff(nbs.indptr)
        order = np.argsort(sizes, kind="stable")
        # Gram entries each item's system reads: its neighbours' rows and its own (the right-hand side)
        row_len = np.diff(gram.indptr).astype(np.float64)
        expand = (sp.csr_matrix((np.ones(nbs.nnz), nbs.indices, nbs.indptr), shape=nbs.shape) @ row_len + row_len
                  if dense is None else np.zeros(n))
        batches = _batches(sizes[order], expand[order], _GATHER_CELLS)
        clock.mark("neighbourhoods")
        data = np.zeros(nbs.nnz, dtype=np.float32)  # B^T's values on the neighbourhood pattern (row j: column j of B)

        def solve(span: tuple[int, int]) -> None:
            batch = order[span[0]: span[1]]
            lens = sizes[batch]
            K = max(int(lens.max()), 1)
            bsz = len(batch)
            which = np.repeat(np.arange(bsz), lens)
            slot = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
            src = np.repeat(nbs.indptr[batch], lens) + slot  # where each (target, slot) lives in nbs / data
            nb = np.zeros((bsz, K), dtype=np.int64)
            mask = np.zeros((bsz, K), dtype=bool)
            nb[which, slot] = nbs.indices[src]
            mask[which, slot] = True
            if not len(src):
                return
            if dense is not None:  # co-occurrence among the neighbours and with the target (unused slots: 0)
                A = dense[nb[:, :, None], nb[:, None, :]].astype(np.float64)
                A *= mask[:, :, None] & mask[:, None, :]
                rhs = dense[nb, batch[:, None]].astype(np.float64) * mask
            else:
                A, rhs = _gather(gram, nb, lens, batch)
                if text is not None and weight > 0:
                    fn = text[nb] * mask[..., None]  # (B, K, d); unused slots 0
                    A += weight * np.matmul(fn, fn.transpose(0, 2, 1))
                    rhs += weight * np.matmul(fn, text[batch][:, :, None])[..., 0]
            eye = np.arange(K)
            dvals = diag[nb] + reg
            if text is not None and weight > 0:
                dvals = dvals + weight * np.square(text[nb]).sum(-1)
            A[:, eye, eye] = np.where(mask, dvals, 1.0)  # an unused slot: 1 on the diagonal, 0 right-hand side
            b = np.linalg.solve(A, rhs[..., None])[..., 0]  # (B, K)
            data[src] = b[which, slot]

        # Small systems: one BLAS/LAPACK thread each (BLAS threads inside them only contend: 12x slower on 2
        # cores); the batches themselves go to `threads` workers (numpy, scipy's sparse kernels and LAPACK
        # release the GIL), so both cores work.
        workers = _threads(threads)
        with threadpool_limits(1):
            if workers == 1 or len(batches) == 1:
                for span in batches:
                    solve(span)
            else:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(workers, thread_name_prefix="sparse-ease") as pool:
                    list(pool.map(solve, batches))
        clock.mark("solve")
        # data holds B's columns (row j of nbs: the neighbours of item j) -> B in CSR
        B = sp.csc_matrix((data, nbs.indices, nbs.indptr), shape=(n, n)).tocsr()
        B.eliminate_zeros()
        B.sort_indices()
        self.B = B
        self._train = train
        clock.mark("weights")
        self.fit_profile = clock.seconds
        self.fit_profile["threads"] = workers

    # -- scoring ---------------------------------------------------------------------------------------------
    def _rows(self, items: np.ndarray, weight: float = 1.0, acc: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        B = self.B
        items = np.asarray(items, dtype=np.int64)
        starts, ends = B.indptr[items], B.indptr[items + 1]
        lens = ends - starts
        total = int(lens.sum())
        if total == 0:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        pos = np.arange(total) - np.repeat(np.cumsum(lens) - lens - starts, lens)
        return B.indices[pos].astype(np.int64), weight * B.data[pos].astype(np.float64)

    def _sum(self, pos: np.ndarray, neg: np.ndarray | None = None) -> SparseScores:
        idx, val = self._rows(pos)
        if neg is not None and len(neg):
            i2, v2 = self._rows(neg, -float(self.params.get("negative_weight", 0.0)))
            idx, val = np.concatenate([idx, i2]), np.concatenate([val, v2])
        n = self.B.shape[1]
        if len(idx) * 16 > n:  # many entries (a popular item's row): one dense accumulation is cheaper
            acc = np.bincount(idx, weights=val, minlength=n)
            nz = np.flatnonzero(acc)
            return SparseScores(n, nz, acc[nz])
        uniq, inv = np.unique(idx, return_inverse=True)
        return SparseScores(n, uniq, np.bincount(inv, weights=val, minlength=len(uniq)))

    def _score_one(self, user: int) -> SparseScores:
        items = self._train.indices[self._train.indptr[user]: self._train.indptr[user + 1]]
        neg = self._negatives
        if neg is not None and neg.indptr[user + 1] > neg.indptr[user]:
            return self._fold_in_feedback(items, neg.indices[neg.indptr[user]: neg.indptr[user + 1]])
        return self._fold_in(items)

    def _fold_in(self, items: np.ndarray) -> SparseScores:
        return self._sum(items)

    def _fold_in_feedback(self, items: np.ndarray, negatives: np.ndarray) -> SparseScores:
        return self._sum(items, negatives)

    # -- persistence -----------------------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {"B_data": self.B.data, "B_indices": self.B.indices, "B_indptr": self.B.indptr,
                "train_indices": self._train.indices, "train_indptr": self._train.indptr}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        n = len(self.item_ids)
        self.B = sp.csr_matrix((arrays["B_data"], arrays["B_indices"], arrays["B_indptr"]), shape=(n, n))
        ind = arrays["train_indices"]
        self._train = sp.csr_matrix((np.ones(len(ind)), ind, arrays["train_indptr"]), shape=(len(self.user_ids), n))


# text_weight "auto" = TEXT_WEIGHT_PER_POSITIVE x the mean number of positives per user: 30 on ml-100k (85 a
# user, ease-text's weight) and about 2 on the 8k synthetic catalogue (6.4 a user). Restricted to a
# neighbourhood, the text term pulls harder than ease-text's dense, low-rank one, and how much text should
# count depends on how much co-occurrence there is to learn from: on validation NDCG@10 ml-100k preferred 30
# over 10 and 3, the 8k catalogue 3 over 10 and 30 (recommenders/README.md). Pass a number to fix it.
TEXT_WEIGHT_PER_POSITIVE = 0.35


class SparseEASEText(SparseEASE):
    name = "sparse-ease-text"
    needs = ("text",)
    defaults: Mapping[str, object] = {
        "reg": 400.0,  # as `ease-text`
        "text_weight": "auto",  # see TEXT_WEIGHT_PER_POSITIVE
        "neighbours": 200,
        "text_neighbours": 50,  # nearest items by text added to every neighbourhood (cold items reach users)
        "gram_keep": 1000,
        "negative_weight": 0.5,
        # None: the text features as given; a width: their top principal directions only (choose_default asks
        # for 64 above 50k items, where the 384-d blocks would dominate the fit)
        "text_dim": None,
        "text_nprobe": None,  # IVF lists scanned per item for the text neighbours above 50k items (None: ann's 16)
        "threads": None,
    }

    def _text_weight(self, train: sp.csr_matrix) -> float:
        value = self.params["text_weight"]
        if value == "auto":
            weight = TEXT_WEIGHT_PER_POSITIVE * train.nnz / max(1, int((np.diff(train.indptr) > 0).sum()))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            weight = float(value)
        else:
            raise ValueError(f"text_weight: expected 'auto' or a non-negative weight, got {value!r}")
        self.text_weight_used = weight
        return weight

    def _text(self, features: dict[str, np.ndarray]) -> np.ndarray | None:
        if int(self.params["text_neighbours"]) < 0:
            raise ValueError(f"text_neighbours: expected >= 0, got {self.params['text_neighbours']}")
        f = np.asarray(features["text"], dtype=np.float32)
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        dim = self.params.get("text_dim")
        if dim is not None and int(dim) < f.shape[1]:
            # the text's top principal directions (uncentred SVD of a seeded sample), rows normalised again:
            # F F^T and the text neighbours at a fraction of the flops on a million items
            if int(dim) < 1:
                raise ValueError(f"text_dim: expected None or a positive width, got {dim}")
            # the right singular vectors of the sample are the eigenvectors of its d x d second moment: one
            # (d, d) eigendecomposition instead of a (20k, d) SVD (25 s of a 200k-item fit); signs may differ,
            # which changes neither F F^T nor the neighbours
            rng = np.random.default_rng(0)
            sample = f[np.sort(rng.choice(len(f), min(len(f), 20_000), replace=False))].astype(np.float64)
            _, vecs = np.linalg.eigh(sample.T @ sample)  # ascending eigenvalues
            f = f @ vecs[:, ::-1][:, : int(dim)].astype(np.float32)
            f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        return f
