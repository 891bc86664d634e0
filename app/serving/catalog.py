"""The catalog: the dataset's items and users held in memory for look-ups, histories and user profiles.

The dataset's tables are held in one immutable snapshot: a catalog that grows while the app runs
(`python -m recommenders add-items`, the admin action; see `app.serving.growth`) is swapped in whole by `replace`, so a
request reads one snapshot from start to end and needs no lock. The profile LRU has its own lock and is emptied
on a swap. The simulator and the flows share the catalog. Nothing here touches the database.

No picker lists the catalog: the snapshot holds search indexes (`recommenders.lookup`), built with it and swapped
with it, that answer in milliseconds at a million items: user ids by prefix (`suggest_users`), items by title and,
when the query encoder is the model that made the item text features, by meaning (`search_items`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from app import checks
from app.errors import bad

if TYPE_CHECKING:  # pragma: no cover - types only
    from generation.domain import Domain
    from generation.profile import UserProfile
    from generation.prompts import ItemInfo
    from recommenders.data import Dataset

__all__ = ["Catalog", "QueryEncoder", "LIKE_RATING", "PROFILE_CACHE", "SEARCH_HITS", "SEARCH_MODES", "year_of"]

LIKE_RATING = 4.0  # a dataset rating at or above this counts as a like (history, profile, "why")
PROFILE_CACHE = 4096  # user profiles kept in memory (a profile is a few hundred bytes)
SEARCH_HITS = 20  # suggestions a picker shows: enough to choose from, small whatever the catalog's size
SEARCH_MODES = ("title", "meaning")
QUERY_MAX = 200  # characters of a search query (a title or a short description)
_EMPTY = (np.array([]), np.array([]), np.array([]))


@dataclass(frozen=True)
class QueryEncoder:
    """The text encoder that embeds a search query (`recommenders.lookup.query_encoder`), loaded once at start."""

    encode: Callable[[list[str]], np.ndarray]  # texts -> (n, dim) L2-normalised
    model: str  # its name (compared with the model that made the item text features)
    dim: int


def year_of(row: dict[str, Any]) -> int | None:
    """An item row's year as an int, or None when the dataset has none (NaN in pandas)."""
    year = row.get("year")
    return None if year is None or pd.isna(year) else int(year)


KEYPHRASE_SAMPLE = 50_000  # item texts the keyphrase IDF is counted over: every text below this, a seeded sample
# above (a document frequency is a share: 50k texts estimate it well, and counting 1M texts took minutes)


@dataclass(frozen=True)
class _Snapshot:
    """One version of the catalog's tables, built once and never changed (see the module docstring).

    Lean at a million items: the items stay one DataFrame (a row becomes a dict only when asked for), ids are
    looked up through pandas indexes, and the histories are one array sorted by user, newest first, with each
    user's slice (CSR): no per-item or per-user Python object."""

    dataset: "Dataset"
    items: pd.DataFrame  # the dataset's items, positions 0..n-1
    pos: pd.Index  # item id (str) -> row in `items`
    users: pd.Index  # dataset user ids (str)
    hist_users: pd.Index  # users with a history -> their slice of the arrays below
    hist_ptr: np.ndarray  # (n_hist_users + 1,) slice bounds
    hist_items: np.ndarray  # item ids (str objects), by user, newest first
    hist_ratings: np.ndarray  # float
    hist_stamps: np.ndarray  # int
    text: np.ndarray | None  # (n_items, d) text features, or None
    keyphrases: Any  # generation.profile.KeyphraseIndex over the items' text
    user_index: Any  # recommenders.lookup.IdIndex over dataset.users (rows in its order), most active first
    search: Any  # recommenders.lookup.ItemSearch: titles, and meaning when the query encoder fits the features
    popular: list[str]  # the SEARCH_HITS items with the most interactions (a picker's first suggestions)

    @classmethod
    def build(cls, dataset: "Dataset", text_features: np.ndarray | None, domain: "Domain",
              text_model: str | None = None, query: QueryEncoder | None = None) -> "_Snapshot":
        from generation.profile import KeyphraseIndex
        from recommenders.lookup import IdIndex, ItemSearch, MeaningIndex, TitleIndex

        items = dataset.items.reset_index(drop=True)
        text = None if text_features is None else np.asarray(text_features, dtype=np.float32)
        if text is not None and text.shape[0] != len(items):
            raise ValueError(f"text_features: expected {len(items)} rows (one per item), got {text.shape}")
        inter = dataset.interactions
        users = inter["user_id"].astype(str).to_numpy(dtype=object)
        stamps = inter["timestamp"].to_numpy() if "timestamp" in inter else np.zeros(len(inter), dtype=np.int64)
        order = np.lexsort((-stamps.astype(np.int64), users))  # by user, newest first
        sorted_users = users[order]
        starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]]) if len(order) else np.array([], int)
        texts = items["text"].fillna("").astype(str) if "text" in items else pd.Series([], dtype=str)
        if len(texts) > KEYPHRASE_SAMPLE:
            texts = texts.sample(KEYPHRASE_SAMPLE, random_state=0)
        # search indexes (recommenders.lookup): titles ranked by popularity, user ids by activity
        item_ids = items["item_id"].astype(str).to_numpy(dtype=object)
        user_ids = dataset.users["user_id"].astype(str).to_numpy(dtype=object)
        per_item = pd.Series(inter["item_id"].astype(str).to_numpy(dtype=object)).value_counts()
        per_user = pd.Series(users).value_counts()
        titles = TitleIndex(item_ids, items["title"].fillna("").astype(str).to_numpy(dtype=object),
                            popularity=per_item.reindex(item_ids).fillna(0).to_numpy())
        meaning = MeaningIndex(text, text_model, query.encode if query else None, query.model if query else None,
                               query.dim if query else None)
        return cls(
            dataset=dataset, items=items, pos=pd.Index(items["item_id"].astype(str)),
            users=pd.Index(dataset.users["user_id"].astype(str)),
            hist_users=pd.Index(sorted_users[starts]), hist_ptr=np.r_[starts, len(order)].astype(np.int64),
            hist_items=inter["item_id"].astype(str).to_numpy(dtype=object)[order],
            hist_ratings=inter["rating"].to_numpy(float)[order], hist_stamps=stamps[order],
            text=text, keyphrases=KeyphraseIndex(texts.tolist(), domain),
            user_index=IdIndex(user_ids, activity=per_user.reindex(user_ids).fillna(0).to_numpy()),
            search=ItemSearch(titles, meaning),
            popular=per_item.index[per_item.index.isin(item_ids)][:SEARCH_HITS].astype(str).tolist(),
        )

    def at(self, item_id: str) -> int | None:
        """The row of `item_id` in `items`, or None."""
        found = self.pos.get_indexer([item_id])[0]
        return None if found < 0 else int(found)

    def row(self, at: int) -> dict[str, Any]:
        """The item at `at` as a dict of plain Python values (numpy scalars unboxed)."""
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.items.iloc[at].items()}

    def history(self, user_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item ids, ratings, timestamps) of a dataset user, newest first (empty for anyone else)."""
        k = self.hist_users.get_indexer([user_id])[0]
        if k < 0:
            return _EMPTY
        lo, hi = self.hist_ptr[k], self.hist_ptr[k + 1]
        return self.hist_items[lo:hi], self.hist_ratings[lo:hi], self.hist_stamps[lo:hi]


class Catalog:
    """Items, users and histories of one dataset, with the text features used to explain a recommendation."""

    def __init__(self, dataset: "Dataset", text_features: np.ndarray | None = None, *, domain: "Domain | None" = None,
                 llm_keywords: "Callable[[list[ItemInfo]], list[str] | None] | None" = None,
                 text_model: str | None = None, query_encoder: QueryEncoder | None = None) -> None:
        """`domain`: the dataset's declared domain (its words in prompts and profiles; from the dataset when None).
        `llm_keywords`: PMG's first step when a caption LLM is loaded (it names the preferences of liked items);
        without it, profiles use TF-IDF keyphrases over the catalog's text. `text_model`: the model that made
        `text_features` (None: not known); `query_encoder`: the encoder of search queries. Search by meaning is
        offered only when both are the same model (`recommenders.lookup.meaning_compatible`)."""
        from generation.domain import Domain

        self.domain = domain if domain is not None else Domain.from_spec(dataset.domain)
        self._text_model = text_model
        self._query = query_encoder
        self._s = _Snapshot.build(dataset, text_features, self.domain, text_model, query_encoder)
        self._llm_keywords = llm_keywords
        self._profiles: OrderedDict[tuple[str, tuple[str, ...], tuple[str, ...]], UserProfile] = OrderedDict()
        self._lock = threading.Lock()
        self.version = 1  # counts `replace` calls: a page built on an older version refreshes its item pickers

    def replace(self, dataset: "Dataset", text_features: np.ndarray | None = None) -> None:
        """Serve `dataset` (the same catalog, grown) from the next look-up on; cached profiles are dropped (their
        keyphrases were computed over the old items)."""
        snapshot = _Snapshot.build(dataset, text_features, self.domain, self._text_model, self._query)
        with self._lock:
            self._s = snapshot
            self._profiles.clear()
            self.version += 1

    @property
    def dataset(self) -> "Dataset":
        return self._s.dataset

    # -- items ------------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.dataset.name)

    @property
    def item_ids(self) -> list[str]:
        """Every item id (a list of the whole catalog: for growth and tests, never for a page)."""
        return self._s.pos.tolist()

    @property
    def n_items(self) -> int:
        return len(self._s.pos)

    @property
    def has_text_features(self) -> bool:
        return self._s.text is not None

    def item(self, item_id: object) -> dict[str, Any]:
        """The dataset row of `item_id`; `AppInputError` when it is not in the catalog."""
        item_id = checks.text("item_id", item_id, checks.ID_MAX)
        s = self._s
        at = s.at(item_id)
        if at is None:
            raise bad("item_id", f"an item of the {self.name} catalog", item_id)
        return s.row(at)

    def item_label(self, item_id: str) -> str:
        row = self.item(item_id)
        year = year_of(row)
        return f"{row['title']} ({year})" if year is not None else str(row["title"])

    def item_labels(self, item_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(label, item_id) of the given items that are in the catalog (a picker's chosen items), in order."""
        pos = self._s.pos
        return [(self.item_label(i), i) for i in dict.fromkeys(map(str, item_ids)) if i in pos]

    def popular_items(self, k: int = SEARCH_HITS) -> list[tuple[str, str]]:
        """(label, item_id) of the items with the most interactions: what a picker suggests before any typing."""
        return [(self.item_label(i), i) for i in self._s.popular[:k]]

    @property
    def meaning_search(self) -> tuple[bool, str]:
        """(available, why not): search by meaning needs item text features and a query encoder of the same model."""
        return self._s.search.meaning_available

    def search_items(self, query: object, mode: str = "title", k: int = SEARCH_HITS) -> tuple[list[tuple[str, str]], str]:
        """(up to k (label, item_id) matches best first, a note when `mode` could not be used): by title (token
        prefixes, an exact item id first) or by meaning (the query's embedding against the item text features;
        by title, with a note saying why, when that is unavailable). Milliseconds at a million items."""
        if mode not in SEARCH_MODES:
            raise bad("mode", f"one of {list(SEARCH_MODES)}", mode)
        if query is None or (isinstance(query, str) and not query.strip()):
            return [], ""
        query = checks.text("query", query, QUERY_MAX)
        found = self._s.search.search(query, k, mode=mode)
        return [(self.item_label(h.id), h.id) for h in found.hits], found.note

    def item_info(self, item_id: str) -> "ItemInfo":
        """The item as the generators see it."""
        from generation.prompts import ItemInfo

        row = self.item(item_id)
        image = row.get("image")
        return ItemInfo(item_id=str(row["item_id"]), title=str(row["title"]), year=year_of(row),
                        genres=list(row.get("genres") or []), text=str(row.get("text") or ""),
                        image=str(image) if isinstance(image, str) and image else None)

    def item_image(self, item_id: str) -> str | None:
        """The item's own picture (a path inside the dataset folder), or None."""
        return self.item_info(item_id).image

    # -- users ------------------------------------------------------------------------------------------------
    @property
    def user_ids(self) -> list[str]:
        """Every dataset user id, shortest first (a list of all users: for tests and benches, never for a page)."""
        return sorted(self._s.users, key=lambda u: (len(u), u))

    @property
    def n_users(self) -> int:
        return len(self._s.users)

    def random_user(self, rng: Any) -> str:
        """A dataset user drawn with `rng` (a `random.Random`), without listing them all."""
        return str(self._s.users[rng.randrange(len(self._s.users))])

    def is_dataset_user(self, user_id: str) -> bool:
        return user_id in self._s.users

    def n_ratings(self, user_id: str) -> int:
        return len(self._s.history(user_id)[0])

    def suggest_users(self, prefix: object, k: int = SEARCH_HITS) -> list[tuple[str, str]]:
        """(label, user_id) of up to k dataset users whose id starts with `prefix` (the exact id first, then the most
        active): the id first in the label, so what a person typed is what they see."""
        prefix = "" if prefix is None or (isinstance(prefix, str) and not prefix.strip()) else \
            checks.text("user id", prefix, checks.ID_MAX)
        return [(self.user_label(u), u) for u in self._s.user_index.suggest(prefix, k)]

    def user_label(self, user_id: str) -> str:
        """"196 · 49 M writer · 39 ratings": the id, the user's facts, how many ratings."""
        facts = " ".join(str(v) for v in self.profile_facts(user_id).values())
        n = self.n_ratings(user_id)
        return f"{user_id} · {facts} · {n} ratings" if facts else f"{user_id} · {n} ratings"

    def profile_facts(self, user_id: str) -> dict[str, Any]:
        """Demographics of a dataset user, for the profile summary."""
        k = self._s.users.get_indexer([user_id])[0]
        if k < 0:
            return {}
        rec = self.dataset.users.iloc[k].to_dict()
        return {k: rec[k] for k in ("age", "gender", "occupation") if k in rec and not pd.isna(rec[k])}

    def history_rows(self, user_id: str, extra_liked: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The user's history in `generation.profile.build_profile`'s row format (dataset ratings + app likes)."""
        s = self._s
        items, ratings, stamps = s.history(user_id)
        rows = [self._history_row(s.row(s.at(i)), float(r), int(t)) for i, r, t in zip(items, ratings, stamps)]
        # app likes carry no timestamp: their list order is used
        rows += [self._history_row(self.item(i), None, None) for i in extra_liked]
        return rows

    @staticmethod
    def _history_row(row: dict[str, Any], rating: float | None, ts: int | None) -> dict[str, Any]:
        return {"item_id": row["item_id"], "title": row["title"], "text": row.get("text") or "",
                "genres": list(row.get("genres") or []), "year": year_of(row), "rating": rating, "timestamp": ts}

    def liked_ids(self, user_id: str, extra_liked: Sequence[str] = (), disliked: Sequence[str] = ()) -> list[str]:
        """Items the user likes now: app likes first (newest first), then dataset ratings >= LIKE_RATING, newest
        first, less what they disliked in the app since (app feedback is newer than any rating)."""
        items, ratings, _ = self._s.history(user_id)
        out = dict.fromkeys([*reversed(list(extra_liked)), *items[ratings >= LIKE_RATING].tolist()])
        gone = set(disliked)
        return [str(i) for i in out if str(i) not in gone]

    def profile(self, user_id: str, extra_liked: Sequence[str] = (),
                preferred_prompts: Sequence[str] = ()) -> "UserProfile":
        """`generation.profile.UserProfile` from the dataset history plus the app likes and the prompts of the
        covers the user picked on the Create tab (LRU-cached until the catalog grows: the app likes and prompts
        are part of the key). Treat it as read-only."""
        from generation.profile import build_profile

        key = (user_id, tuple(extra_liked), tuple(preferred_prompts))
        with self._lock:
            cached = self._profiles.get(key)
            if cached is not None:
                self._profiles.move_to_end(key)
                return cached
            version = self.version
        llm, liked = None, []
        if self._llm_keywords is not None:
            liked = [self.item_info(i) for i in self.liked_ids(user_id, extra_liked)[:20]]
            llm = self._llm_keywords(liked) if liked else None
        profile = build_profile(user_id, self.history_rows(user_id, extra_liked),
                                preferred_prompts=list(preferred_prompts), domain=self.domain,
                                corpus=self._s.keyphrases, llm_keywords=llm or ())
        with self._lock:
            if version != self.version:  # the catalog grew meanwhile: don't cache a profile of the old one
                return profile
            if self._llm_keywords is not None and llm is None and liked:
                return profile  # the LLM's keywords are still being named (or unusable): ask again next time
            self._profiles[key] = profile
            while len(self._profiles) > PROFILE_CACHE:
                self._profiles.popitem(last=False)
        return profile

    def why(self, item_id: str, liked: Sequence[str], top_genres: Sequence[str]) -> str:
        """The content 'why' of a recommendation: the liked item closest in text space, and shared top genres."""
        row = self.item(item_id)
        parts: list[str] = []
        s = self._s
        if s.text is not None and liked:
            found = s.pos.get_indexer([i for i in liked[:200] if i != item_id])
            liked_pos = found[found >= 0]
            if len(liked_pos):
                sims = s.text[liked_pos] @ s.text[s.at(item_id)]  # (n_liked,)
                best = int(np.argmax(sims))
                if sims[best] > 0.2:
                    parts.append(f"close to {s.items['title'].iat[int(liked_pos[best])]}, which you liked")
        shared = [g for g in row.get("genres") or [] if g in set(top_genres)]
        if shared:
            parts.append("you like " + " & ".join(shared[:2]))
        return "; ".join(parts) if parts else "popular with people like you"
