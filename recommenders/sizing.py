"""What a catalogue costs a model before it fits, what this machine can give, and the default that follows.

    cost = create_model("ease").cost(n_users, n_items, nnz, {"text": 384})   # a Cost: peak bytes, fit seconds
    budget = memory_budget()                                                  # MemAvailable / cgroup, with headroom
    check_fits(cost, budget)                                                  # ModelTooLargeError when it does not
    name, params, reason = choose_default(n_users, n_items, nnz, has_text=True, memory_budget=budget)

Every model's `fit` runs `check_fits` on its own `cost` before it allocates anything that grows with the
catalogue (a dense Gram matrix, an inverse, a similarity matrix), so a catalogue too big for the machine is
refused with a message instead of a crash (numpy's dense inverse of a 25k x 25k matrix segfaults at 17 GB RSS on
a 24 GB machine). The caller may pass the budget explicitly (tests, a server that shares its memory).

Figures are estimates of the fit's *additional* peak resident memory, calibrated with `/usr/bin/time -v` on this
project's models (bench/bench_scale_models.py --calibrate; recommenders/README.md gives the factors measured), and
of its fit time on one core of a small machine (`FLOPS`). They are pure functions of the catalogue's size and the
model's parameters: no data is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple

from recommenders.errors import ModelTooLargeError

GB = 1_000_000_000
# Dense floating-point throughput assumed for fit-time estimates (LAPACK/BLAS on one core of this 2-core
# machine; dense EASE's inverse of 8,000 items ran at 12-20 GFLOP/s here under load): an order of magnitude,
# not a promise.
FLOPS = 15e9
# Share of the memory the machine reports free that a fit may plan to use: the rest is left for the serving
# process's own growth, the page cache and neighbours.
DEFAULT_HEADROOM = 0.75
# Dense item-item models (ease, ease-text, itemknn) are the default only when their fit also stays under this
# many seconds (estimated) and this share of the budget: "fits with room".
DENSE_DEFAULT_MAX_SECONDS = 120.0
DENSE_DEFAULT_MAX_SHARE = 0.5
# Above this many items the scalable text model works on the text's top principal directions (`text_dim`).
LARGE_TEXT_ITEMS = 50_000


def format_bytes(n: float) -> str:
    """1234567890 -> '1.2 GB' (decimal units, as `free -h` and the issue speak)."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit in ("B", "kB") else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def format_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} days"


@dataclass(frozen=True)
class Cost:
    """What fitting `model` on a catalogue of a given size costs.

    peak_bytes: the fit's peak resident memory above what the process held before `fit` (the interactions
    frame and the features are the caller's). fit_seconds: an estimate on one core of this machine, or None
    where it cannot be estimated honestly (iterative models: it depends on the epochs early stopping picks).
    how: the formula in words, for the refusal message and the log.
    """

    model: str
    peak_bytes: int
    fit_seconds: float | None
    how: str

    def describe(self) -> str:
        time = f", fit about {format_seconds(self.fit_seconds)}" if self.fit_seconds is not None else ""
        return f"{self.model}: about {format_bytes(self.peak_bytes)} peak ({self.how}){time}"


# -------------------------------------------------------------------------------------------------------------
# what the machine can give
# -------------------------------------------------------------------------------------------------------------
def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value < 1 << 60 else None  # cgroup v1 writes a huge number for "no limit"


def machine_memory(proc: str | Path = "/proc", cgroup: str | Path = "/sys/fs/cgroup") -> tuple[int, str]:
    """(bytes this process could still allocate, where the figure comes from).

    The smaller of /proc/meminfo's MemAvailable and the cgroup's limit minus its current usage (cgroup v2
    `memory.max` / `memory.current`, or v1 `memory/memory.limit_in_bytes` / `memory.usage_in_bytes`). Paths are
    arguments so tests can point them at a fake tree.
    """
    proc, cgroup = Path(proc), Path(cgroup)
    available, source = None, ""
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available, source = int(line.split()[1]) * 1024, "MemAvailable"
                break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file, label in (("memory.max", "memory.current", "cgroup v2 limit"),
                                          ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes",
                                           "cgroup v1 limit")):
        limit = _read_int(cgroup / limit_file)
        if limit is None:
            continue
        usage = _read_int(cgroup / usage_file) or 0
        room = max(limit - usage, 0)
        if available is None or room < available:
            available, source = room, label
        break
    if available is None:
        raise ModelTooLargeError(f"machine memory: could not read {proc / 'meminfo'} or a cgroup limit under "
                                 f"{cgroup}; pass memory_budget=BYTES explicitly")
    return available, source


def memory_budget(headroom: float = DEFAULT_HEADROOM, proc: str | Path = "/proc",
                  cgroup: str | Path = "/sys/fs/cgroup") -> int:
    """Bytes a fit may plan to use now: `headroom` x what `machine_memory` reports."""
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom: expected a share in (0, 1], got {headroom}")
    available, _ = machine_memory(proc, cgroup)
    return int(available * headroom)


# -------------------------------------------------------------------------------------------------------------
# the check every fit runs
# -------------------------------------------------------------------------------------------------------------
def alternative_for(model: str, has_text: bool) -> str:
    """What to use instead of a model that does not fit: the scalable item-item model (with text when the
    catalogue has it), then the factor models with ANN retrieval."""
    scalable = "sparse-ease-text" if has_text else "sparse-ease"
    if model in (scalable, "sparse-ease", "sparse-ease-text"):
        return ("a factor model with ANN retrieval ('text' or 'two-tower' with features, 'bpr' without), or a "
                "machine with more memory")
    return f"'{scalable}' (sparse item-item, grows with the interactions, not with n_items^2)"


def check_fits(cost: Cost, budget: int, n_items: int | None = None, has_text: bool = False) -> None:
    """Raise ModelTooLargeError when `cost.peak_bytes` exceeds `budget` (bytes); the message names the need,
    what the machine has, and what to use instead."""
    if cost.peak_bytes <= budget:
        return
    size = f" for {n_items:,} items" if n_items is not None else ""
    raise ModelTooLargeError(
        f"model {cost.model!r} is too large for this machine{size}: it needs about {format_bytes(cost.peak_bytes)} "
        f"({cost.how}), and this machine can give about {format_bytes(budget)} now. "
        f"Use {alternative_for(cost.model, has_text)} instead.")


# -------------------------------------------------------------------------------------------------------------
# the default follows the catalogue
# -------------------------------------------------------------------------------------------------------------
def scaled_params(model: str, n_items: int, has_text: bool) -> dict:
    """The parameters `model` is served with at this catalogue size (the default ones elsewhere): above
    LARGE_TEXT_ITEMS, sparse-ease-text works on the text's top 64 directions (same 8k NDCG@10, 0.2048 vs 0.2049,
    at 6x fewer flops)."""
    if model == "sparse-ease-text" and has_text and n_items > LARGE_TEXT_ITEMS:
        return {"text_dim": 64}
    return {}


class Choice(NamedTuple):
    model: str
    params: dict
    reason: str


def choose_default(n_users: int, n_items: int, nnz: int, has_text: bool, memory_budget: int,
                   feature_dims: Mapping[str, int] | None = None) -> Choice:
    """The model to serve by default for a catalogue of this size on a machine with `memory_budget` bytes.

    The dense EASE family (`ease-text` with text, `ease` without: the best NDCG@10 measured on ml-100k) where it
    fits with room: estimated peak at most DENSE_DEFAULT_MAX_SHARE of the budget and fit at most
    DENSE_DEFAULT_MAX_SECONDS. Above that the sparse item-item model (`sparse-ease-text` / `sparse-ease`), whose
    cost grows with the interactions. When even that does not fit, a ModelTooLargeError names what would.
    `reason` is one sentence for the Status tab and the log.
    """
    from recommenders.models import create_model

    for name, value in (("n_users", n_users), ("n_items", n_items), ("nnz", nnz), ("memory_budget", memory_budget)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "nnz" else 1):
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    dims = dict(feature_dims or {})
    if has_text and "text" not in dims:
        dims["text"] = 384  # MiniLM's width, the project's text encoder
    dense = "ease-text" if has_text else "ease"
    dense_cost = create_model(dense).cost(n_users, n_items, nnz, dims)
    where = f"{n_items:,} items, {n_users:,} users, {nnz:,} interactions; {format_bytes(memory_budget)} to use"
    if (dense_cost.peak_bytes <= DENSE_DEFAULT_MAX_SHARE * memory_budget
            and (dense_cost.fit_seconds or 0.0) <= DENSE_DEFAULT_MAX_SECONDS):
        return Choice(dense, {}, f"{dense}: the exact dense model fits this catalogue with room ({where}; it needs "
                                 f"about {format_bytes(dense_cost.peak_bytes)} and "
                                 f"{format_seconds(dense_cost.fit_seconds or 0.0)} to fit).")
    scalable = "sparse-ease-text" if has_text else "sparse-ease"
    params = scaled_params(scalable, n_items, has_text)
    sparse_cost = create_model(scalable, **params).cost(n_users, n_items, nnz, dims)
    check_fits(sparse_cost, memory_budget, n_items, has_text)
    why = (f"the dense {dense} would need about {format_bytes(dense_cost.peak_bytes)}"
           + (f" and {format_seconds(dense_cost.fit_seconds)}" if dense_cost.fit_seconds else "") + " to fit")
    return Choice(scalable, params, f"{scalable}: {why} ({where}); the sparse item-item model needs about "
                                f"{format_bytes(sparse_cost.peak_bytes)}"
                                + (f" and {format_seconds(sparse_cost.fit_seconds)}" if sparse_cost.fit_seconds else "")
                                + ".")


# -------------------------------------------------------------------------------------------------------------
# formulas shared by several models
# -------------------------------------------------------------------------------------------------------------
# Validation NDCG@10 of iterative models scores at most this many (user, item) cells at once
# (recommenders/models/sgd.py); on ml-100k every validation user fits in one chunk.
VALID_CHUNK_CELLS = 50_000_000


def valid_chunk_users(n_items: int) -> int:
    return max(1, VALID_CHUNK_CELLS // max(n_items, 1))


def factor_bytes(n_users: int, n_items: int, nnz: int, dim: int, content_width: int = 0,
                 content_dim: int = 0) -> float:
    """Peak of a torch factor model trained with Adam: parameters x 4 (weights, gradient, two Adam moments) in
    float32, the float64 copies kept for serving, the content matrix, the sampler's arrays (u, i, negatives,
    sorted keys: 32 bytes per interaction), one validation chunk of scores (float32 + its clone + a bool
    mask: 9 bytes a cell) and, above 50k items, the ANN index."""
    params = (n_users + n_items) * (dim + content_dim) + n_items + content_width * (content_dim or dim)
    chunk = min(n_users, valid_chunk_users(n_items)) * n_items * 9
    # above 50k items the IVF index over [V, b] (recommenders/ann.py): float32 copy, augmented rows, FAISS lists
    index = 12.0 * n_items * (max(dim, content_dim) + 2) if n_items > 50_000 else 0.0
    return index + 16 * params + 16 * (n_users + n_items) * max(dim, content_dim) + 4 * n_items * content_width \
        + 32 * nnz + chunk
