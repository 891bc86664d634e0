"""Generated assets and their content-addressed store.

Every cover and caption is filed under a key that hashes everything that determines it: the kind, the
generator (model id and a fingerprint of its files, or "fallback" and the renderer's version), the prompt,
the negative prompt, the seed and the parameters (steps, size, guidance, ...). A repeat request finds the
file and costs no model call. Layout under the store's root (the app passes `<data dir>/assets`):

    covers/ab/ab12...ef.jpg     the composed cover (or .png, see IMAGE_FORMATS)
    covers/ab/ab12...ef.json    its provenance (the Asset fields, minus the per-request ones)
    captions/cd/cd34...01.json  a caption's text and provenance

Files are written to a temporary name and renamed, the JSON last, so a crash never leaves an entry that
looks complete; an unreadable entry counts as a miss and is rewritten.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

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


def _atomic_write(path: Path, data: bytes) -> None:
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class AssetStore:
    """Files keyed by `asset_key`, under `root`. Safe for concurrent writers (atomic renames)."""

    def __init__(self, root: Path | str) -> None:
        if not isinstance(root, (str, os.PathLike)) or str(root) == "":
            raise invalid("asset_dir", "a directory path", root)
        self.root = Path(root)

    def _base(self, kind: str, key: str) -> Path:
        if kind not in KINDS:
            raise invalid("kind", f"one of {KINDS}", kind)
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise invalid("key", "a sha256 hex digest", key)
        return self.root / _DIRS[kind] / key[:2] / key

    def image_path(self, key: str, image_format: str = "jpeg") -> Path:
        if image_format not in IMAGE_FORMATS:
            raise invalid("image_format", f"one of {tuple(IMAGE_FORMATS)}", image_format)
        return self._base("cover", key).with_suffix(IMAGE_FORMATS[image_format][0])

    def meta_path(self, kind: str, key: str) -> Path:
        return self._base(kind, key).with_suffix(".json")

    def get(self, kind: str, key: str, user_id: str | None) -> Asset | None:
        """The stored asset for `key` (with `cache_hit=True`), or None when missing or unreadable."""
        meta_path = self.meta_path(kind, key)
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
            fields = {k: v for k, v in meta.items() if k not in _PER_REQUEST}
            asset = Asset(**fields, user_id=user_id, cache_hit=True)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("asset %s is unreadable (%s); it will be regenerated", meta_path, exc)
            return None
        if kind == "cover":
            image = self.image_path(key, asset.params.get("image_format", "jpeg"))
            if not image.is_file():
                return None
            asset.path = str(image)
        return asset

    def put(self, asset: Asset, image: Any = None) -> Asset:
        """File `asset` (and, for a cover, its PIL `image`) under `asset.content_hash`; returns it with `path` set."""
        if asset.kind == "cover":
            if image is None:
                raise invalid("image", "a PIL image for a cover", image)
            import io

            buf = io.BytesIO()
            image_format = asset.params.get("image_format", "jpeg")
            path = self.image_path(asset.content_hash, image_format)  # checks the format
            _, pil_format, options = IMAGE_FORMATS[image_format]
            image.convert("RGB").save(buf, format=pil_format, **options)
            _atomic_write(path, buf.getvalue())
            asset.path = str(path)
        meta = {f.name: getattr(asset, f.name) for f in fields(asset) if f.name not in _PER_REQUEST}
        blob = json.dumps(meta, sort_keys=True, indent=1, ensure_ascii=False).encode("utf-8")
        _atomic_write(self.meta_path(asset.kind, asset.content_hash), blob)
        return asset
