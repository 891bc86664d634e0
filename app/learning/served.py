"""What a replica serves: the promoted version of a model, loaded from the shared blob store, and kept current.

    version, model = load_promoted(Session, "ease", artifacts)
    watcher = ServedModelWatcher(Session, "ease", artifacts); watcher.refresh()  # True when a new version loaded
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from app.learning.artifacts import ModelArtifacts

__all__ = ["ServedModelWatcher", "load_promoted", "load_version_model"]

log = logging.getLogger("vitrine")


def load_version_model(artifacts: ModelArtifacts | Path | str, artifact: str):
    """The recommender saved as `artifact` (a blob key, or a pre-blob-store path), fetched on a miss."""
    from recommenders.models import load_model

    return load_model(ModelArtifacts.at(artifacts).directory(artifact))


def load_promoted(Session, name: str, artifacts: ModelArtifacts | Path | str) -> tuple[Any, Any]:
    """(version row, loaded recommender) of the served version of `name`; (None, None) when none is promoted."""
    from annotation import registry

    with Session() as s:
        row = registry.promoted_version(s, name)
        if row is None:
            return None, None
        s.expunge(row)
    return row, load_version_model(artifacts, row.artifact)


class ServedModelWatcher:
    """Keeps the promoted version of one model loaded; `refresh()` swaps in a newly promoted one (no restart).

    A replica calls `refresh()` every few seconds (or after a retrain); it reads one row and loads the
    artifact (from the shared blob store, through this machine's cache) only when the promoted version changed.
    kind: "recommender" (loaded with `load_version_model`) or "preference" (give `load`: (artifacts, key) ->
    model, e.g. `app.learning.reward.load_reward_artifact`).
    """

    def __init__(self, Session, name: str, artifacts: ModelArtifacts | Path | str, kind: str = "recommender",
                 load: Callable[[ModelArtifacts, str], Any] | None = None) -> None:
        self.Session, self.name, self.kind = Session, name, kind
        self.artifacts = ModelArtifacts.at(artifacts)
        self.load = load or load_version_model
        self.version_id: int | None = None
        self.version: int | None = None  # the served version's number
        self.model = None
        self.error: str | None = None  # why the promoted version is not loaded (None: it is, or none is promoted)
        self._failed: int | None = None  # the version id that failed to load (logged once)

    def refresh(self) -> bool:
        """True when a different version was loaded. A promoted version whose artifact cannot be loaded (e.g. a
        blob store that lost it) leaves the model served now in place: `error` says why, logged once per version,
        and the next refresh tries again."""
        from annotation import registry

        with self.Session() as s:
            row = registry.promoted_version(s, self.name, self.kind)
            if row is None or row.id == self.version_id:
                return False
            version_id, version, artifact = row.id, row.version, row.artifact
        try:
            model = self.load(self.artifacts, artifact)
        except Exception as exc:  # noqa: BLE001 - logged and shown (`error`); the served model keeps serving
            self.error = f"{self.name} version {version} ({artifact}) not loaded: {type(exc).__name__}: {exc}"
            if self._failed != version_id:
                log.warning("%s; serving what was served before", self.error)
                self._failed = version_id
            return False
        self.model, self.error, self._failed = model, None, None
        self.version_id, self.version = version_id, version
        return True
