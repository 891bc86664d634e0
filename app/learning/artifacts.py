"""Model artifacts in the blob store: what a model-registry row's `artifact` names, shared by every replica.

    artifacts = ModelArtifacts(BlobStore(settings.blob_location, cache_dir=...), settings.model_cache_dir)
    key = artifacts.save_dir("recommender", "ease", 3, model.save)       # registry/recommender/ease/v3-<sha>.tar
    model = load_model(artifacts.directory(key))                          # fetched and unpacked once per machine
    key = artifacts.save_file("preference", "reward", 2, ".npz", reward.save)
    reward = RewardModel.load(artifacts.file(key), encoder=...)

A recommender saves a directory of files (`model.save(dir)`); it is packed into one tar blob, so a version is
uploaded whole or not at all (one object) and a reader needs no listing. A preference model is one `.npz` file,
stored as it is. Keys end with the first 16 hex digits of the blob's SHA-256: a key names one content forever
(the blob store's rule), so two databases that number versions alike never overwrite each other's artifacts
in a shared store. A replica fetches the blob into the blob store's local cache and unpacks a directory
under `unpack_dir` (atomically: a half-unpacked directory is never read).

Artifacts registered before the blob store held them are relative paths such as `ease/v3` under `legacy_dir`
(the former `Settings.registry_dir`); they are still read from there.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from generation.blobs import BlobStore, check_key

__all__ = ["ModelArtifacts", "PREFIX"]

PREFIX = "registry"  # every model artifact's key starts with it


def _pack(directory: Path) -> bytes:
    """A tar of the files under `directory` (sorted, no owners, mtime 0: the same files give the same bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(path.relative_to(directory).as_posix())
            info.size = path.stat().st_size
            info.mode = 0o644
            with path.open("rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


class ModelArtifacts:
    """Saved model versions at blob keys `registry/<kind>/<name>/v<version>-<sha>.<tar|npz|...>`.

    blobs: the blob store (a directory or an fsspec URL every replica shares); unpack_dir: where this machine
    unpacks directory artifacts; legacy_dir: where pre-blob-store artifacts (relative paths) were saved.
    """

    def __init__(self, blobs: BlobStore, unpack_dir: str | os.PathLike, legacy_dir: str | os.PathLike | None = None
                 ) -> None:
        if not isinstance(blobs, BlobStore):
            raise ValueError(f"blobs: expected a generation.blobs.BlobStore, got {type(blobs).__name__}")
        self.blobs = blobs
        self.unpack_dir = Path(unpack_dir)
        self.legacy_dir = Path(legacy_dir) if legacy_dir is not None else None

    @classmethod
    def at(cls, where: "ModelArtifacts | BlobStore | str | os.PathLike") -> "ModelArtifacts":
        """`where` itself, or artifacts in the blob store at `where` (a directory: unpacked under its
        `.unpacked/`, and its relative legacy paths still read from it)."""
        if isinstance(where, ModelArtifacts):
            return where
        if isinstance(where, BlobStore):
            return cls(where, where.cache_dir / ".unpacked")
        if isinstance(where, (str, os.PathLike)) and "://" not in str(where):
            return cls(BlobStore(where), Path(where) / ".unpacked", legacy_dir=where)
        raise ValueError(f"artifacts: expected ModelArtifacts, a BlobStore or a directory, got {where!r}")

    def __repr__(self) -> str:
        return f"ModelArtifacts({self.blobs!r}, unpack_dir={str(self.unpack_dir)!r})"

    @staticmethod
    def _key(kind: str, name: str, version: int, data: bytes, suffix: str) -> str:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"version: expected a positive int, got {version!r}")
        digest = hashlib.sha256(data).hexdigest()[:16]
        return check_key(f"{PREFIX}/{kind}/{name}/v{version}-{digest}{suffix}")

    # -- saving --------------------------------------------------------------------------------------------------
    def save_dir(self, kind: str, name: str, version: int, write: Callable[[Path], Any]) -> str:
        """`write(directory)` into a temporary directory, packed into one blob; returns its key."""
        with tempfile.TemporaryDirectory(prefix="vitrine-artifact-") as tmp:
            folder = Path(tmp) / "model"
            write(folder)
            if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
                raise ValueError(f"write: expected it to save files into the directory it is given ({name} v{version})")
            data = _pack(folder)
        return self.blobs.put(self._key(kind, name, version, data, ".tar"), data)

    def save_file(self, kind: str, name: str, version: int, suffix: str, write: Callable[[Path], Any]) -> str:
        """`write(path)` of a file named `*<suffix>` in a temporary directory, stored as one blob; its key."""
        if not isinstance(suffix, str) or not suffix.startswith(".") or not check_key(f"x{suffix}"):
            raise ValueError(f"suffix: expected a file suffix such as '.npz', got {suffix!r}")
        with tempfile.TemporaryDirectory(prefix="vitrine-artifact-") as tmp:
            path = Path(tmp) / f"model{suffix}"
            written = write(path)
            path = Path(written) if isinstance(written, (str, os.PathLike)) else path
            if not path.is_file():
                raise ValueError(f"write: expected it to save a file at the path it is given ({name} v{version})")
            data = path.read_bytes()
        return self.blobs.put(self._key(kind, name, version, data, suffix), data)

    # -- loading -------------------------------------------------------------------------------------------------
    def _legacy(self, artifact: str) -> Path | None:
        if artifact.startswith(f"{PREFIX}/"):
            return None
        if self.legacy_dir is None:
            raise LookupError(f"artifact: {artifact!r} is a pre-blob-store path and no legacy directory is set")
        return self.legacy_dir / artifact

    def file(self, artifact: str) -> Path:
        """A local file holding a file artifact (fetched into the cache on a miss); LookupError when missing."""
        legacy = self._legacy(artifact)
        path = legacy if legacy is not None else self.blobs.local_path(artifact)
        if path is None or not path.is_file():
            raise LookupError(f"artifact: {artifact!r} is not in the blob store {self.blobs.url!r}")
        return path

    def directory(self, artifact: str) -> Path:
        """A local directory holding a directory artifact (fetched and unpacked once); LookupError when missing."""
        legacy = self._legacy(artifact)
        if legacy is not None:
            if not legacy.is_dir():
                raise LookupError(f"artifact: {artifact!r} is not a directory under {self.legacy_dir}")
            return legacy
        if not artifact.endswith(".tar"):
            raise ValueError(f"artifact: expected the key of a directory artifact (*.tar), got {artifact!r}")
        target = self.unpack_dir / artifact.removesuffix(".tar")
        if target.is_dir():
            return target
        tar_path = self.file(artifact)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
        try:
            with tarfile.open(tar_path, mode="r:") as tar:
                for member in tar.getmembers():
                    if not member.isfile():
                        raise ValueError(f"artifact: {artifact!r} holds {member.name!r}, which is not a plain file")
                tar.extractall(tmp, filter="data")  # refuses absolute paths and `..`
            try:
                os.replace(tmp, target)
            except OSError:  # another thread or process unpacked it first: theirs is the same content
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target
