"""The training loops of the iterative models: `train_epochs` (any loss; early stopping, progress bar) and
`train_bpr` (the pairwise BPR batches on top of it, shared by bpr, lightgcn, vbpr, text and freedom).

One epoch visits every training positive once in a seeded random order, pairs it with one uniformly drawn
negative that is not among the user's training positives (as RecBole's uniform sampler), and takes Adam
steps on mini-batches. With a validation matrix the loop evaluates full-ranking NDCG@10 (train items
excluded) every `eval_every` epochs, keeps the best weights and stops after `patience` evaluations without
improvement (RecBole's `stopping_step`). Everything is seeded: a torch.Generator for initialisation and a
numpy Generator for sampling; no global RNG is touched.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import scipy.sparse as sp


def sample_negatives(train: sp.csr_matrix, users: np.ndarray, rng: np.random.Generator,
                     keys: np.ndarray, candidates: np.ndarray | None = None, max_tries: int = 50) -> np.ndarray:
    """One negative per user in `users`, uniform over `candidates` (default: all items) minus its positives."""
    n_items = train.shape[1]
    draw = (lambda n: rng.integers(0, n_items, size=n)) if candidates is None else (
        lambda n: candidates[rng.integers(0, len(candidates), size=n)])
    neg = draw(len(users))
    for _ in range(max_tries):
        q = users.astype(np.int64) * n_items + neg
        pos = np.searchsorted(keys, q)
        bad = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == q)
        if not bad.any():
            break
        neg[bad] = draw(int(bad.sum()))
    return neg


def ndcg_at_k(scores, train: sp.csr_matrix, valid: sp.csr_matrix, users: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k of torch `scores` (len(users), n_items) against `valid`, train positives excluded."""
    import torch

    scores = scores.clone()
    sub_train = train[users].tocoo()
    scores[torch.from_numpy(sub_train.row).long(), torch.from_numpy(sub_train.col).long()] = -torch.inf
    top = torch.topk(scores, k, dim=1).indices.numpy()
    sub_valid = valid[users]
    hits = np.take_along_axis(sub_valid.toarray() > 0, top, axis=1)
    n_pos = np.diff(sub_valid.indptr)
    gains = 1.0 / np.log2(np.arange(2, k + 2))
    idcg = np.cumsum(gains)[np.minimum(n_pos, k) - 1]
    return float(((hits * gains).sum(1) / idcg).mean())


def valid_ndcg(module: Any, train: sp.csr_matrix, valid: sp.csr_matrix, users: np.ndarray, k: int = 10) -> float:
    """`ndcg_at_k` of `module.full_scores` over `users`, scored in chunks of users so that at most
    `recommenders.sizing.VALID_CHUNK_CELLS` scores exist at once (one chunk on ml-100k: the same figure)."""
    import torch

    from recommenders.sizing import valid_chunk_users

    chunk = valid_chunk_users(train.shape[1])
    if len(users) <= chunk:
        return ndcg_at_k(module.full_scores(torch.from_numpy(users)), train, valid, users, k)
    total = 0.0
    for start in range(0, len(users), chunk):
        part = users[start: start + chunk]
        total += ndcg_at_k(module.full_scores(torch.from_numpy(part)), train, valid, part, k) * len(part)
    return total / len(users)


def train_bpr(
    module: Any,
    train: sp.csr_matrix,
    valid: sp.csr_matrix | None,
    params: Mapping[str, Any],
    rng: np.random.Generator,
    log: list[dict[str, float]],
    on_epoch: Callable[[int], None] | None = None,
    negatives: np.ndarray | None = None,
    progress: bool = False,
    desc: str = "",
) -> None:
    """Fit `module` (an nn.Module with `loss(u, i, j)` and `full_scores(users)`) in place.

    params: epochs, batch_size, lr, eval_every, patience (and the module's own). `negatives`: the item
    indices negatives are drawn from (default all items).
    """
    import torch

    coo = train.tocoo()
    pos_u = coo.row.astype(np.int64)
    pos_i = coo.col.astype(np.int64)
    keys = np.sort(pos_u * train.shape[1] + pos_i)
    batch = int(params["batch_size"])

    def batches():
        order = rng.permutation(len(pos_u))
        neg = sample_negatives(train, pos_u[order], rng, keys, negatives)
        for start in range(0, len(order), batch):
            sl = order[start: start + batch]
            yield (torch.from_numpy(pos_u[sl]), torch.from_numpy(pos_i[sl]), torch.from_numpy(neg[start: start + batch]))

    train_epochs(module, batches, train, valid, params, log, on_epoch=on_epoch, progress=progress, desc=desc)


def minibatches(rng: np.random.Generator, batch_size: int, *arrays: np.ndarray) -> Callable[[], Iterable[tuple]]:
    """For `train_epochs`: each call shuffles the rows (the same permutation for every array) and yields them in
    batches of `batch_size`, as torch tensors."""
    import torch

    def batches():
        order = rng.permutation(len(arrays[0]))
        for start in range(0, len(order), batch_size):
            sl = order[start: start + batch_size]
            yield tuple(torch.from_numpy(a[sl]) for a in arrays)

    return batches


def train_epochs(
    module: Any,
    batches: Callable[[], Iterable[tuple]],
    train: sp.csr_matrix,
    valid: sp.csr_matrix | None,
    params: Mapping[str, Any],
    log: list[dict[str, float]],
    on_epoch: Callable[[int], None] | None = None,
    progress: bool = False,
    desc: str = "",
) -> None:
    """The epoch loop shared by every iterative model: Adam on `module.loss(*batch)` for each batch that
    `batches()` yields (one call per epoch), validation NDCG@10 of `module.full_scores` (train items excluded)
    every `eval_every` epochs, best weights kept, stop after `patience` evaluations without gain.

    `progress=True` draws a tqdm bar on stderr with the epoch's loss, the last validation NDCG@10 and the
    best epoch so far; nothing is ever written to stdout.
    """
    import torch

    opt = torch.optim.Adam(module.parameters(), lr=float(params["lr"]))
    epochs = int(params["epochs"])
    eval_every = max(1, int(params["eval_every"]))
    patience = int(params["patience"])
    eval_users = np.flatnonzero(np.diff(valid.indptr) > 0) if valid is not None else np.empty(0, dtype=np.int64)
    best, best_state, bad_rounds, best_epoch = -math.inf, None, 0, 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc=desc or "fit", unit="epoch", file=sys.stderr, dynamic_ncols=True, leave=True)
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            module.train()
            total, count = 0.0, 0
            for batch in batches():
                loss = module.loss(*batch)
                opt.zero_grad()
                loss.backward()
                opt.step()
                n = len(batch[0])
                total += float(loss.detach()) * n
                count += n
            entry = {"epoch": epoch, "loss": total / max(count, 1), "seconds": time.perf_counter() - t0}
            if len(eval_users) and epoch % eval_every == 0:
                module.eval()
                with torch.no_grad():
                    score = valid_ndcg(module, train, valid, eval_users)
                entry["valid_ndcg@10"] = score
                if score > best:
                    best, bad_rounds, best_epoch = score, 0, epoch
                    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                else:
                    bad_rounds += 1
            log.append(entry)
            if bar is not None:
                post = {"loss": f"{entry['loss']:.4f}"}
                if "valid_ndcg@10" in entry:
                    post.update(ndcg=f"{entry['valid_ndcg@10']:.4f}", best=f"{best:.4f}@{best_epoch}")
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if on_epoch is not None:
                on_epoch(epoch)
            if len(eval_users) and bad_rounds >= patience:
                break
    finally:
        if bar is not None:
            bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()


def torch_generator(seed: int):
    import torch

    return torch.Generator().manual_seed(int(seed))
