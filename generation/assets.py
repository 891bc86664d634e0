"""Generated assets and their content-addressed store.

Every cover and caption is filed under a key that hashes everything that determines it: the kind, the
generator (model id and a fingerprint of its files, or "fallback" and the renderer's version), the prompt,
the negative prompt, the seed and the parameters (steps, size, guidance, ...). A repeat request finds the
file and costs no model call. Blob keys (relative paths, the same in every store and every replica):

    covers/ab/ab12...ef.jpg                  the composed cover (or .png, see IMAGE_FORMATS): public
    provenance/covers/ab/ab12...ef.json      its provenance (the Asset fields, minus the per-request ones)
    provenance/captions/cd/cd34...01.json    a caption's text and provenance

Two ways to hold them:
- `AssetStore(directory)`: the files live in that directory; `Asset.path` is the cover's local file.
- `AssetStore(BlobStore(url, cache_dir))` (generation.blobs): the files live in a shared blob store (a
  directory or an fsspec URL) and are read through a local cache; `Asset.path` is the cover's blob KEY, which
  is what the database records, so any replica serves any asset (`local_path(key)` fetches it on a miss).

Only images are under `public_dir` (`<local root>/covers`): serve that folder, never the root, so the
provenance files (prompts made from a user's history) are not public.

Bounding the space: `stored()` lists the assets this machine holds (size and age per content key) and `evict(key)`
frees one (see `BlobStore.evict`: gone from a local store, dropped from the cache of a remote one); which ones to
evict is the caller's choice (the app keeps every asset a label refers to). `StagedAssetStore` makes assets on
trial: new files go to a small local folder of their own, bounded by count, and reach the store only when
`promote`d (the app's Create variants, kept only once picked or labelled). Files are written whole (temporary
name, then rename; one object on a remote store), the provenance last, so a crash never leaves an entry that
looks complete; an unreadable entry counts as a miss and is rewritten.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from generation.blobs import BlobStore, check_key
from generation.errors import invalid

log = logging.getLogger(__name__)

KINDS = ("cover", "caption")
# Cover file formats: JPEG (quality 95, no chroma subsampling: crisp title text) encodes a 512x768 poster
# in ~7 ms on one CPU core; PNG (lossless, zlib level 1) takes 45-75 ms, more than an sd-turbo step on a GPU.
IMAGE_FORMATS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "jpeg": (".jpg", "JPEG", {"quality": 95, "subsampling": 0}),
    "png": (".png", "PNG", {"compress_level": 1}),
}
_DIRS = {"cover": "covers", "caption": "captions"}
# Fields that describe the request rather than the asset: not stored, filled in per request.
_PER_REQUEST = ("user_id", "cache_hit", "path")


@dataclass
class Asset:
    """A generated cover or caption and its provenance (what the annotation store records)."""

    kind: str  # "cover" | "caption"
    item_id: str
    user_id: str | None  # who it was made for; None for a generic request
    generator: str  # the model as configured (hub id or local dir), or "fallback"
    fallback: bool  # True for the typographic cover / template caption, never a model output
    prompt: str  # the diffusion prompt, or the LLM's user message
    negative_prompt: str  # "" when the generator does not use one (e.g. guidance off)
    seed: int
    params: dict[str, Any] = field(default_factory=dict)  # steps, size, guidance, alpha, device, reasons...
    path: str | None = None  # the image file of a cover (JPEG by default)
    text: str | None = None  # the text of a caption
    content_hash: str = ""  # the asset's key in the store (sha256 of generator, prompt, seed and params)
    latency_ms: float = 0.0  # how long generating it took (the original generation, also on a cache hit)
    personalized: bool = False  # made from a user's preferences (False: the generic A/B arm)
    cache_hit: bool = False  # served from the store without a model call

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-able) for `annotation.store.record_asset` (the caller adds `event_id`)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["params"] = copy.deepcopy(self.params)
        return out


def asset_key(kind: str, payload: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of {kind, **payload}; payload must be JSON-serialisable."""
    if kind not in KINDS:
        raise invalid("kind", f"one of {KINDS}", kind)
    try:
        blob = json.dumps({"kind": kind, **payload}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except TypeError as exc:
        raise invalid("payload", "JSON-serialisable values", payload) from exc
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AssetStore:
    """Assets keyed by `asset_key`, in a local directory or a `BlobStore`. Safe for concurrent writers."""

    def __init__(self, root: Path | str | BlobStore) -> None:
        if isinstance(root, BlobStore):
            self.blobs, self.by_key = root, True
        elif isinstance(root, (str, os.PathLike)) and str(root) != "":
            self.blobs, self.by_key = BlobStore(Path(root)), False
        else:
            raise invalid("asset_dir", "a directory path or a generation.blobs.BlobStore", root)
        self.root = self.blobs.cache_dir  # where this machine's copies are

    @property
    def public_dir(self) -> Path:
        """The local folder of cover images, the only one to serve (provenance files are elsewhere)."""
        return self.root / _DIRS["cover"]

    @staticmethod
    def _check(kind: str, key: str) -> None:
        if kind not in KINDS:
            raise invalid("kind", f"one of {KINDS}", kind)
        if not isinstance(key, str) or len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise invalid("key", "a sha256 hex digest", key)

    @staticmethod
    def image_key(key: str, image_format: str = "jpeg") -> str:
        """The blob key of a cover's image."""
        AssetStore._check("cover", key)
        if image_format not in IMAGE_FORMATS:
            raise invalid("image_format", f"one of {tuple(IMAGE_FORMATS)}", image_format)
        return f"{_DIRS['cover']}/{key[:2]}/{key}{IMAGE_FORMATS[image_format][0]}"

    @staticmethod
    def meta_key(kind: str, key: str) -> str:
        """The blob key of an asset's provenance."""
        AssetStore._check(kind, key)
        return f"provenance/{_DIRS[kind]}/{key[:2]}/{key}.json"

    def image_path(self, key: str, image_format: str = "jpeg") -> Path:
        """Where this machine keeps the cover's image (it may not be there yet: see `local_path`)."""
        return self.root / self.image_key(key, image_format)

    def meta_path(self, kind: str, key: str) -> Path:
        return self.root / self.meta_key(kind, key)

    def local_path(self, path_or_key: str | None) -> Path | None:
        """The local file of a cover as the database records it: a blob key (fetched into the local cache on a
        miss) or, for rows written before assets were stored by key, an absolute path. None when missing."""
        if path_or_key is None:
            return None
        if os.path.isabs(path_or_key):
            path = Path(path_or_key)
            return path if path.is_file() else None
        return self.blobs.local_path(path_or_key)

    def held(self, path_or_key: str | None) -> bool:
        """Whether a recorded cover's file is still there (`BlobStore.held`: nothing is fetched), so that a slate
        can show it; False for None and for an evicted or missing file."""
        if path_or_key is None:
            return False
        if os.path.isabs(path_or_key):
            return Path(path_or_key).is_file()
        return self.blobs.held(path_or_key)

    def stored(self) -> dict[str, "StoredAsset"]:
        """The assets this machine holds, by content key: the blob store's own files for a local store, the cached
        copies for a remote one. Files that are not assets' (unfinished writes, foreign names) are left out."""
        out: dict[str, StoredAsset] = {}
        for prefix in (_DIRS["cover"], "provenance"):
            for blob in self.blobs.copies(prefix):
                key = blob.key.rsplit("/", 1)[-1].split(".", 1)[0]
                if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
                    continue
                found = out.get(key)
                if found is None:
                    out[key] = StoredAsset(key, blob.size, blob.mtime, (blob.key,))
                else:
                    out[key] = StoredAsset(key, found.size + blob.size, max(found.mtime, blob.mtime),
                                           found.blob_keys + (blob.key,))
        return out

    def evict(self, stored: "StoredAsset") -> int:
        """Free an asset's files on this machine (its image first, so a reader never finds an entry whose
        provenance is there and image gone half-way); returns the bytes freed. `get` then misses it, so the next
        request for it generates it again (the same key: the same file)."""
        images = [k for k in stored.blob_keys if not k.startswith("provenance/")]
        return sum(self.blobs.evict(k) for k in images + [k for k in stored.blob_keys if k not in images])

    def get(self, kind: str, key: str, user_id: str | None) -> Asset | None:
        """The stored asset for `key` (with `cache_hit=True`), or None when missing or unreadable."""
        meta_key = self.meta_key(kind, key)
        try:
            data = self.blobs.get(meta_key)
            if data is None:
                return None
            meta = json.loads(data.decode("utf-8"))
            fields = {k: v for k, v in meta.items() if k not in _PER_REQUEST}
            asset = Asset(**fields, user_id=user_id, cache_hit=True)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("asset %s is unreadable (%s); it will be regenerated", meta_key, exc)
            return None
        if kind == "cover":
            image_key = self.image_key(key, asset.params.get("image_format", "jpeg"))
            image = self.blobs.local_path(image_key)
            if image is None:
                return None
            asset.path = image_key if self.by_key else str(image)
        return asset

    def put(self, asset: Asset, image: Any = None) -> Asset:
        """File `asset` (and, for a cover, its PIL `image`) under `asset.content_hash`; returns it with `path` set
        (the blob key, or the local file for a directory store)."""
        if asset.kind == "cover":
            if image is None:
                raise invalid("image", "a PIL image for a cover", image)
            import io

            buf = io.BytesIO()
            image_format = asset.params.get("image_format", "jpeg")
            image_key = self.image_key(asset.content_hash, image_format)  # checks the format
            _, pil_format, options = IMAGE_FORMATS[image_format]
            image.convert("RGB").save(buf, format=pil_format, **options)
            self.blobs.put(image_key, buf.getvalue(), replace=True)
            asset.path = image_key if self.by_key else str(self.image_path(asset.content_hash, image_format))
        meta = {f.name: getattr(asset, f.name) for f in fields(asset) if f.name not in _PER_REQUEST}
        blob = json.dumps(meta, sort_keys=True, indent=1, ensure_ascii=False).encode("utf-8")
        self.blobs.put(self.meta_key(asset.kind, asset.content_hash), blob, replace=True)
        return asset


@dataclass(frozen=True)
class StoredAsset:
    """An asset's files on this machine (`AssetStore.stored`)."""

    key: str  # the content key (sha256 hex)
    size: int  # bytes of its files (image and provenance)
    mtime: float  # when the newest of them was written (seconds since the epoch)
    blob_keys: tuple[str, ...]  # the blob keys of its files


class StagedAssetStore:
    """Covers made on trial. `get` reads `main` first (an asset already stored costs nothing and is returned as
    `main` records it); `put` writes a new asset to `directory` (a local folder, never shared) instead of `main`,
    keeping at most `max_assets` there (the oldest go first); `promote` files a staged asset in `main`.

    A staged cover's `path` is its local file under `directory`; after `promote` it is what `main` records (the
    blob key, or the local file for a directory store).
    """

    def __init__(self, main: AssetStore, directory: Path | str, max_assets: int = 256) -> None:
        if not isinstance(main, AssetStore):
            raise invalid("main", "a generation.assets.AssetStore", main)
        if isinstance(max_assets, bool) or not isinstance(max_assets, int) or max_assets < 1:
            raise invalid("max_assets", "an int >= 1", max_assets)
        self.main = main
        self.staging = AssetStore(Path(directory))
        self.max_assets = max_assets

    @property
    def public_dir(self) -> Path:
        """The folder of staged cover images (serve it like `AssetStore.public_dir`; provenance stays private)."""
        return self.staging.public_dir

    def get(self, kind: str, key: str, user_id: str | None) -> Asset | None:
        return self.main.get(kind, key, user_id) or self.staging.get(kind, key, user_id)

    def put(self, asset: Asset, image: Any = None) -> Asset:
        if asset.kind != "cover":
            raise invalid("asset.kind", "'cover' (only covers are made on trial)", asset.kind)
        out = self.staging.put(asset, image)
        self._prune()
        return out

    def _prune(self) -> None:
        staged = sorted(self.staging.stored().values(), key=lambda a: a.mtime)
        for old in staged[: max(0, len(staged) - self.max_assets)]:
            self.staging.evict(old)

    def holds(self, path: str | None) -> bool:
        """True when `path` (an asset's `path`) is a file in the staging folder, i.e. the asset is on trial."""
        return bool(path) and os.path.isabs(path) and Path(path).is_relative_to(self.staging.root)

    def image_file(self, image_key: str) -> Path | None:
        """The local file of a cover image by its blob key: the stored one, else the staged one; None if neither."""
        key = check_key(image_key)
        return self.main.blobs.local_path(key) or self.staging.blobs.local_path(key)

    def promote(self, key: str, image_format: str = "jpeg") -> str | None:
        """File the cover `key` in `main` (a no-op when it is there already); returns its path as `main` records it,
        or None when neither `main` nor the staging folder holds it (evicted: make it again)."""
        image_key, meta_key = AssetStore.image_key(key, image_format), AssetStore.meta_key("cover", key)
        if not (self.main.blobs.exists(image_key) and self.main.blobs.exists(meta_key)):
            image, meta = self.staging.blobs.get(image_key), self.staging.blobs.get(meta_key)
            if image is None or meta is None:
                return None
            self.main.blobs.put(image_key, image)
            self.main.blobs.put(meta_key, meta)
        return image_key if self.main.by_key else str(self.main.image_path(key, image_format))
