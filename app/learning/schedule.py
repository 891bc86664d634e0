"""When to retrain: after every N new feedback events or T minutes (`RetrainSchedule`; both off by default)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable

from app.learning.retrain import RetrainBudgetError

__all__ = ["RetrainSchedule"]


@dataclass
class RetrainSchedule:
    """Run a retrain after every `every_events` new feedback events or `every_minutes` minutes (None = off).

    Both off by default. `tick(latest_event_id, now)` is cheap; it calls `run()` when due and remembers the
    watermark and time of the last run. The app calls it from its background worker.
    """

    run: Callable[[], Any]
    every_events: int | None = None
    every_minutes: float | None = None
    last_event_id: int = 0
    last_run: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.every_events is not None and (isinstance(self.every_events, bool) or self.every_events < 1):
            raise ValueError(f"every_events: expected a positive integer or None, got {self.every_events!r}")
        if self.every_minutes is not None and not self.every_minutes > 0:
            raise ValueError(f"every_minutes: expected a positive number or None, got {self.every_minutes!r}")

    @property
    def enabled(self) -> bool:
        return self.every_events is not None or self.every_minutes is not None

    def due(self, latest_event_id: int | None, now: dt.datetime) -> bool:
        latest = latest_event_id or 0
        if latest <= self.last_event_id:
            return False  # nothing new to learn from
        if self.every_events is not None and latest - self.last_event_id >= self.every_events:
            return True
        if self.every_minutes is not None:
            if self.last_run is None:
                return True
            return (now - self.last_run).total_seconds() >= 60 * self.every_minutes
        return False

    def tick(self, latest_event_id: int | None, now: dt.datetime | None = None) -> Any:
        """Run when due; returns run()'s result, or None when not due. A run refused for its time budget counts as a
        run (it is raised, to be logged once): it is not tried again before the next N events or T minutes."""
        now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        if not self.due(latest_event_id, now):
            return None
        try:
            result = self.run()
        except RetrainBudgetError:
            self.last_event_id, self.last_run = int(latest_event_id or 0), now
            raise
        self.last_event_id, self.last_run = int(latest_event_id or 0), now
        return result
