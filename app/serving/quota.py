"""The byte quota on generated files (VITRINE_ASSET_QUOTA_MB): what this machine's blob store may hold.

`enforce` evicts the assets no pair refers to (a pair is what every label and pick refers to: training data is
never evicted), the least recently recorded first. Asset rows stay (they are the provenance the dashboard reads,
and the event sink shipped them already); a slate skips a cover whose file is gone, so it is queued and made again
(same key, same file). The background worker calls `tick` after each batch it records and the upkeep thread on
its schedule; a check scans the store, so it runs at most every `every_s`. With a remote blob store only this
machine's cache is bounded (see `BlobStore.evict`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker

log = logging.getLogger("vitrine")

__all__ = ["AssetQuota", "QUOTA_EVERY_S", "UNRECORDED_GRACE_S"]

QUOTA_EVERY_S = 30.0  # the quota is checked at most this often (a check scans the store: ~70 ms per 2,000 assets)
UNRECORDED_GRACE_S = 120.0  # a stored file without an asset row is left alone this long: its row may be on its way


class AssetQuota:
    """At most `quota_bytes` (None: no quota) of generated files in `stores` (asset stores, each counted once)."""

    def __init__(self, stores: Sequence[Any], ReadSession: sessionmaker, quota_bytes: int | None) -> None:
        if quota_bytes is not None and (isinstance(quota_bytes, bool) or not isinstance(quota_bytes, int)
                                        or quota_bytes < 0):
            raise ValueError(f"quota_bytes must be None or an int >= 0, got {quota_bytes!r}")
        unique: dict[Path, Any] = {}
        for store in stores:
            unique.setdefault(Path(store.root).resolve(), store)
        self.stores = list(unique.values())
        self.ReadSession = ReadSession
        self.quota_bytes = quota_bytes
        self.every_s = QUOTA_EVERY_S
        self.stored_bytes: int | None = None  # bytes held at the last check (the Status tab shows it)
        self.evicted = 0  # assets evicted since start
        self._lock = threading.Lock()  # one eviction at a time
        self._written = True  # something was recorded since the last check
        self._checked_at = float("-inf")  # time.monotonic() of the last check

    def written(self) -> None:
        """Assets were recorded: the next `tick` may check."""
        self._written = True

    def tick(self) -> int:
        """`enforce` when assets were recorded since the last check and `every_s` passed since it; the bytes freed."""
        if self.quota_bytes is None or not self._written:
            return 0
        if time.monotonic() - self._checked_at < self.every_s:
            return 0
        return self.enforce()

    def enforce(self) -> int:
        """Evict generated files until this machine holds at most `quota_bytes` of them; returns the bytes freed.

        Never evicted: an asset a pair refers to, and a file with no asset row yet written in the last
        UNRECORDED_GRACE_S (its row may be on its way). The others go least recently recorded first (a file with no
        row at all: by its age)."""
        from annotation import reads

        if self.quota_bytes is None:
            return 0
        with self._lock:
            self._written, self._checked_at = False, time.monotonic()
            held = {key: (store, found) for store in self.stores for key, found in store.stored().items()}
            total = sum(found.size for _, found in held.values())
            self.stored_bytes = total
            if total <= self.quota_bytes:
                return 0
            with self.ReadSession() as s:
                uses = reads.asset_uses(s, list(held))
            victims = self._victims(held, uses, total - self.quota_bytes)
            with self.ReadSession() as s:  # a pick made since the first look keeps its files
                paired = {k for k, (is_paired, _) in reads.asset_uses(s, victims).items() if is_paired}
            freed = 0
            for key in victims:
                if key not in paired:
                    store, found = held[key]
                    freed += store.evict(found)
                    self.evicted += 1
            self.stored_bytes = total - freed
            if freed:
                log.info("asset quota: evicted %d bytes (%d assets); %d bytes held, quota %d", freed,
                         len(victims) - len(paired), self.stored_bytes, self.quota_bytes)
            if self.stored_bytes > self.quota_bytes:
                log.warning("asset quota: %d bytes held after eviction, over the quota of %d (the rest is labelled "
                            "or being recorded)", self.stored_bytes, self.quota_bytes)
            return freed

    @staticmethod
    def _victims(held: dict[str, tuple[Any, Any]], uses: dict[str, tuple[bool, Any]], excess: int) -> list[str]:
        """The keys to evict for `excess` bytes: unpaired ones, least recently recorded first."""
        now = time.time()
        candidates = []
        for key, (_, found) in held.items():
            use = uses.get(key)
            if use is None:
                if now - found.mtime >= UNRECORDED_GRACE_S:
                    candidates.append((found.mtime, key))
            elif not use[0]:
                when = use[1]
                if when is not None and when.tzinfo is None:
                    when = when.replace(tzinfo=dt.timezone.utc)  # the store keeps naive UTC times
                candidates.append((when.timestamp() if when is not None else found.mtime, key))
        candidates.sort()
        victims = []
        for _, key in candidates:
            if excess <= 0:
                break
            victims.append(key)
            excess -= held[key][1].size
        return victims
