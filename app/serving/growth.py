"""A catalog that grows while the app runs.

    python -m recommenders add-items NEW --dataset FOLDER      # from a shell: the running app picks it up
    svc.growth.add_items(NEW)                                   # the same from the admin action
    svc.growth.refresh()                                        # the upkeep thread, on every replica

A bring-your-own catalog's items table is watched (its size and modification time, read on the upkeep thread
every VITRINE_MODEL_POLL_S). When it has grown, every replica:
1. reloads the dataset and encodes the new rows only (`recommenders.catalog.grow_features`; the feature cache
   is keyed by content, so a second replica on the same data dir reads what the first wrote);
2. extends the content models it serves (`ease-text`, `text`, `vbpr`: `recommenders.catalog.extend_model`), so
   they rank the new items at once (cold start); ID models keep serving the items they know and pick the new
   ones up at the next retrain (which reads the grown catalog);
3. syncs the new items into the store, so feedback on them is accepted;
4. swaps the catalog snapshot and the extended models in; the item pickers of a page refresh at its next load.

A table that changed other than by appending items (rows rewritten or removed) is not served live: that is
logged, and the next start serves it. The built-in ml-100k is not watched (it cannot grow).
"""

from __future__ import annotations

import copy
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.errors import AppInputError

if TYPE_CHECKING:  # pragma: no cover - types only
    from app.serving.catalog import Catalog
    from app.serving.events import EventLog
    from app.serving.ranking import Ranking
    from app.settings import Settings
    from recommenders.data import Dataset
    from recommenders.models.base import Recommender

log = logging.getLogger("vitrine")

__all__ = ["Growth"]


def _signature(path: Path | None) -> tuple[int, int] | None:
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return None if st is None else (st.st_size, st.st_mtime_ns)


class Growth:
    """Follows the catalog's items table and serves a grown catalog live; see the module docstring."""

    def __init__(self, settings: "Settings", catalog: "Catalog", ranking: "Ranking", events: "EventLog",
                 features: dict[str, np.ndarray]) -> None:
        self.settings, self.catalog, self.ranking, self.events = settings, catalog, ranking, events
        self.features = features  # the app's feature dict: updated in place, so retraining sees the new rows
        self._lock = threading.Lock()
        self.last: dict[str, Any] | None = None  # what the last growth did (Status)
        self._seen = _signature(self._items_table())

    @property
    def folder(self) -> Path | None:
        """The bring-your-own folder the catalog was read from (None for ml-100k, and for an MMRec folder: its
        items come with precomputed feature rows, so it grows by writing a new folder, not by appending items)."""
        dataset = self.catalog.dataset
        if not dataset.folder or dataset.feature_files:
            return None
        return Path(dataset.folder)

    def _items_table(self) -> Path | None:
        from recommenders.data import _find_table

        if self.folder is None:
            return None
        try:
            return _find_table(self.folder, "items", required=True)
        except Exception:  # noqa: BLE001 - a folder mid-rewrite: look again next round
            return None

    # -- the admin action -----------------------------------------------------------------------------------
    def add_items(self, new_folder: object) -> dict[str, Any]:
        """Append the items of `new_folder` (items.csv|parquet, optional images/) on the server to the catalog and
        serve them at once; returns what `refresh` did. Bad input -> AppInputError naming the problem, with
        the catalog unchanged (`append_items` validates before it writes)."""
        from recommenders.catalog import append_items
        from recommenders.errors import RecommendersError

        if self.folder is None:
            raise AppInputError(f"dataset: the {self.catalog.name} catalog cannot grow here (the built-in one, or an "
                                "MMRec folder with precomputed features); serve a bring-your-own folder "
                                "(VITRINE_DATASET) to add items")
        if not isinstance(new_folder, str) or not new_folder.strip():
            raise AppInputError("folder: expected the server path of a folder with items.csv|parquet")
        with self._lock:
            try:
                grown = append_items(self.folder, Path(new_folder.strip()).expanduser())
            except RecommendersError as exc:
                raise AppInputError(f"add items: {exc}") from exc
            return self._refresh_locked(grown) or {"added": []}

    # -- the upkeep task ------------------------------------------------------------------------------------
    def refresh(self) -> dict[str, Any] | None:
        """Serve the catalog's items table when it changed since the last look; returns what was done or None."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self, after: "Dataset | None" = None) -> dict[str, Any] | None:
        """Serve the items table if it changed since the last look (`after`: the grown dataset, already read)."""
        from annotation import store
        from recommenders.catalog import grow_features
        from recommenders.data import load_dataset

        table = self._items_table()
        signature = _signature(table)
        if table is None or (signature == self._seen and after is None):
            return None
        self._seen = signature
        before = self.catalog.dataset
        after = after if after is not None else load_dataset(self.folder, self.settings.data_dir)
        n = len(before.items)
        if after.item_ids[:n] != before.item_ids:
            log.warning("catalog: %s changed other than by appending items; the next start serves it", table)
            return None
        new_ids = after.item_ids[n:]
        if not new_ids:
            return None
        st = self.settings
        grown = grow_features(before, self.features, after, st.data_dir / "features", text_model=st.text_model,
                              image_model=st.image_model if after.has_images else None,
                              allow_network=st.allow_network)
        features = {k: v for k, v in grown.arrays.items() if k in self.features}
        models = {name: self.fit(self.ranking.model(name), features, after.item_ids)
                  for name in self.ranking.model_names}
        with self.events.Session() as s, s.begin():
            store.sync_items(s, after.items)
        self.features.update(features)
        self.catalog.replace(after, features.get("text"))
        ranked_now = []
        for name, model in models.items():
            if model is not None:
                self.ranking.swap(name, model)
                ranked_now.append(name)
        self.last = {"added": new_ids, "items": len(after.item_ids), "ranked_now": ranked_now,
                     "at_next_retrain": [m for m in self.ranking.model_names if m not in ranked_now]}
        log.info("catalog: %d new items served (%s); content models ranking them now: %s", len(new_ids),
                 ", ".join(new_ids[:5]) + (" ..." if len(new_ids) > 5 else ""), ", ".join(ranked_now) or "none")
        return self.last

    def fit(self, model: "Recommender", features: dict[str, np.ndarray] | None = None,
            item_ids: list[str] | None = None) -> "Recommender | None":
        """`model` extended to the catalog's items when it is a content model that lacks some of them (a model
        trained or promoted before the catalog grew); None when it needs no change or cannot rank new items
        (an ID model: the next retrain)."""
        from recommenders.catalog import CONTENT_MODELS, extend_model
        from recommenders.errors import RecommendersError

        item_ids = item_ids if item_ids is not None else self.catalog.item_ids
        features = features if features is not None else self.features
        known = list(model.item_ids)
        if model.name not in CONTENT_MODELS or len(known) >= len(item_ids) or item_ids[:len(known)] != known:
            return None
        try:  # on a copy: requests keep ranking with the served model until the swap
            return extend_model(copy.deepcopy(model), item_ids, features)
        except RecommendersError as exc:
            log.warning("catalog: %s cannot rank the new items now (%s); it will at the next retrain", model.name, exc)
            return None
