"""A blob store: immutable files by key, at a local directory or any fsspec URL, read through a local cache.

    blobs = BlobStore("/srv/vitrine/blobs")                                  # a local directory (the default)
    blobs = BlobStore("s3://bucket/vitrine", cache_dir=data_dir / "blob-cache")   # or hf://datasets/ORG/NAME/...
    blobs.put("covers/ab/ab12...ef.jpg", data)        # written once: a key names one content forever
    blobs.local_path("covers/ab/ab12...ef.jpg")       # a local file, fetched into the cache on a miss

Keys are relative POSIX paths of lower-case letters, digits and `._-` (no `..`, no leading `/`): the caller
derives them from a content hash, so a key never names two contents and every replica may cache any blob
forever. Writes are atomic: a local file is written under a temporary name and renamed; a remote blob is
uploaded as one object. Cache fills are atomic too, so concurrent readers never see half a file.

Bounding the space (`copies`, `evict`): the caller lists this machine's copies under a prefix with their sizes and
ages and evicts the ones it chooses. Evicting from a local store deletes the blob; from a remote store it deletes
only this machine's cached copy (the remote object stays, and is fetched again on the next read).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from generation.errors import invalid

__all__ = ["BlobStore", "BlobCopy", "check_key"]

_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")


def check_key(key: object) -> str:
    """`key` if it is a valid blob key (see the module docstring), else InvalidInputError naming it."""
    if not isinstance(key, str) or len(key) > 512 or not _KEY.match(key) or ".." in key.split("/"):
        raise invalid("key", "a relative blob key like 'covers/ab/ab12...ef.jpg'", key)
    return key


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class BlobCopy:
    """A blob's copy on this machine: its key, size in bytes and modification time (seconds since the epoch)."""

    key: str
    size: int
    mtime: float


class BlobStore:
    """Blobs by key at `url` (a directory path, `file://...`, or an fsspec URL such as `s3://`, `hf://`, `memory://`).

    cache_dir: where remote blobs are cached on this machine (required for a remote URL; a local store is read
    in place when it is None).
    """

    def __init__(self, url: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> None:
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        if not isinstance(url, (str, os.PathLike)) or not str(url).strip():
            raise invalid("url", "a directory path or an fsspec URL", url)
        self.url = str(url)
        try:
            self.fs, root = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:
            raise invalid("url", f"a URL fsspec can open ({exc})", url) from exc
        self.root = root.rstrip("/") or "/"
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if cache_dir is None and not self.is_local:
            raise invalid("cache_dir", f"a local directory to cache the blobs of the remote store {self.url!r}", None)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path(self.root)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r}, cache_dir={str(self.cache_dir)!r})"

    def _remote(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _cached(self, key: str) -> Path:
        return self.cache_dir / key

    def exists(self, key: str) -> bool:
        """True when the blob is in the store (or already in this machine's cache)."""
        key = check_key(key)
        return self._cached(key).is_file() or self.fs.exists(self._remote(key))

    def held(self, key: str) -> bool:
        """Whether the store still holds the blob, read without fetching anything: a local store's file is there;
        a remote store keeps every object (only this machine's cached copy is ever evicted, and a read fetches it
        again)."""
        key = check_key(key)
        return not self.is_local or self._cached(key).is_file()

    def put(self, key: str, data: bytes, replace: bool = False) -> str:
        """Store `data` under `key`; returns the key. A key already there is left as it is (keys name contents)
        unless `replace` (to repair an unreadable entry). The bytes also land in the local cache, so this
        replica serves them without a fetch."""
        key = check_key(key)
        if not isinstance(data, (bytes, bytearray)):
            raise invalid("data", "bytes", type(data).__name__)
        data = bytes(data)
        remote = self._remote(key)
        if self.is_local:
            if replace or not Path(remote).is_file():
                _atomic_write(Path(remote), data)
        elif replace or not self.fs.exists(remote):
            self.fs.pipe_file(remote, data)  # one object: whole or not at all
        cached = self._cached(key)
        if cached != Path(remote) and (replace or not cached.is_file()):
            _atomic_write(cached, data)
        return key

    def local_path(self, key: str) -> Path | None:
        """A local file holding the blob, fetched into the cache on a miss; None when the store lacks it."""
        key = check_key(key)
        cached = self._cached(key)
        if cached.is_file():
            return cached
        try:
            data = self.fs.cat_file(self._remote(key))
        except FileNotFoundError:
            return None
        _atomic_write(cached, data)
        return cached

    def get(self, key: str) -> bytes | None:
        """The blob's bytes (through the cache), or None when the store lacks it."""
        path = self.local_path(key)
        return None if path is None else path.read_bytes()

    def copies(self, prefix: str) -> Iterator[BlobCopy]:
        """This machine's copies of the blobs under `prefix` (a key prefix such as "covers"): the blobs themselves
        for a local store, the cached ones for a remote store. Temporary files of unfinished writes are skipped."""
        top = self.cache_dir / check_key(prefix)
        if not top.is_dir():
            return
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:  # removed while we walked
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        key = Path(entry.path).relative_to(self.cache_dir).as_posix()
                        yield BlobCopy(key, int(st.st_size), float(st.st_mtime))
                except FileNotFoundError:
                    continue

    def evict(self, key: str) -> int:
        """Free this machine's copy of `key`; returns the bytes freed (0 when there was none). A local store's
        blob is deleted (it is gone for every reader); a remote store keeps the object and loses only the cached
        copy. Keys name contents, so a blob written again later is the same blob."""
        key = check_key(key)
        cached = self._cached(key)
        try:
            size = cached.stat().st_size
            cached.unlink()
        except FileNotFoundError:
            return 0
        return int(size)
