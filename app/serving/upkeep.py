"""Periodic upkeep of a running app, on one daemon thread: serve newly promoted model versions (so every replica
follows a promotion made anywhere) and run the optional retrain schedule. Each task's failure is logged and the
next round tries again; nothing here ever blocks a request."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

log = logging.getLogger("vitrine")

__all__ = ["Upkeep"]


class Upkeep:
    def __init__(self, tasks: Sequence[tuple[str, Callable[[], object]]], every_s: float) -> None:
        if not every_s > 0:
            raise ValueError(f"every_s: expected a positive number of seconds, got {every_s!r}")
        self.tasks = list(tasks)
        self.every_s = float(every_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> None:
        for name, task in self.tasks:
            try:
                task()
            except Exception:  # noqa: BLE001 - a periodic task has nobody to raise to: log it, retry next round
                log.exception("upkeep: %s failed", name)

    def start(self) -> "Upkeep":
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="vitrine-upkeep", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.run_once()

    def stop(self) -> None:
        self._stop.set()
