"""The caption LLM on ONNX Runtime GenAI: an int8 copy built once from a transformers folder, then sampled.

    lm_dir = build_onnx(folder, root, key)   # root/<folder>-<key>-onnx-int8-og<version>/ (model.onnx, genai_config.json)
    lm = OrtLM(lm_dir, num_threads=1)
    replies, tokens = lm.sample(prompt_ids, n=6, seed=0, temperature=0.7, top_p=0.9, max_new_tokens=40,
                                regex=r" [a-z]+( [a-z]+){2,20}[.]", accept=lambda text: ...)

Why: on this project's CPU boxes transformers spends most of a caption in Python around a 135M-parameter model
(8 new tokens/s, a 190-token prompt read in 1.8 s, at a load of 14 on 2 cores); the same model as an ONNX
graph with int8 weights (MatMulNBits) makes 47 tokens/s and reads the prompt in 0.6 s (BENCHMARKS.md). int8,
not int4: the copy's greedy replies stay close to the float32 model's, int4 ones part from them within a few
tokens. The copy is made by the package's own builder (`onnxruntime_genai.models.builder`, in a child process:
~2 GB peak that the app never holds) from the float32 folder, into a temporary folder renamed into place, so two
processes building at once never leave a half-written copy. Its folder name holds the source folder's name, the
caller's key (the model's fingerprint) and the builder's version: new weights or a new builder make a new copy.

Sampling reads the prompt once and draws the candidates one after another from that state (`rewind_to`), so a
second candidate costs only its own tokens; it stops at the first candidate `accept` takes. `regex` constrains
what the model may write (GenAI's guidance: llguidance, in the PyPI wheel); the candidates are seeded
(`random_seed`), so the same prompt and seed give the same replies.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from generation.errors import invalid
from generation.gguf import building

log = logging.getLogger(__name__)

__all__ = ["ORT_PRECISION", "onnx_available", "onnx_version", "onnx_path", "build_onnx", "OrtLM"]

ORT_PRECISION = "int8"  # int4 is 1.7x faster to decode here but parts from the float32 model's replies early
BUILD_TIMEOUT_S = 1800  # ~40 s on a loaded 2-core box (8.8 CPU-s); a hung build must not hold the caller forever


def onnx_available() -> bool:
    """Whether onnxruntime-genai (and so its builder and runtime) is importable here."""
    try:
        return importlib.util.find_spec("onnxruntime_genai") is not None
    except (ImportError, ValueError):
        return False


def onnx_version() -> str:
    """The installed onnxruntime-genai version ('' when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onnxruntime-genai")
    except PackageNotFoundError:
        return ""


def onnx_path(source: Path, root: Path, key: str, precision: str = ORT_PRECISION) -> Path:
    """Where the ONNX copy of the transformers folder `source` (fingerprint `key`) lives under `root` (it may
    not exist yet)."""
    return Path(root) / f"{Path(source).name}-{key}-onnx-{precision}-og{onnx_version() or 'none'}"


def build_onnx(source: Path | str, root: Path | str, key: str, precision: str = ORT_PRECISION,
               timeout_s: float = BUILD_TIMEOUT_S) -> Path:
    """The ONNX Runtime GenAI copy (`precision` weights, CPU) of the transformers folder `source` whose
    fingerprint is `key`, under `root`; built only when it is not there yet. Raises RuntimeError (with the
    builder's last lines) when it fails."""
    source = Path(source)
    if not isinstance(key, str) or not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", key):
        raise invalid("key", "1-64 letters, digits, '-' or '_' (the model's fingerprint)", key)
    if not (source / "config.json").is_file():
        raise invalid("source", "a transformers model folder (with config.json)", str(source))
    if precision not in ("int4", "int8", "fp32"):
        raise invalid("precision", "'int4', 'int8' or 'fp32'", precision)
    if not onnx_available():
        raise RuntimeError("onnxruntime-genai is not installed (requirements.txt pins it)")
    target = onnx_path(source, Path(root), key, precision)
    if (target / "genai_config.json").is_file():
        return target
    log.info("building the ONNX Runtime %s copy of %s in %s (once per model and builder version)", precision,
             source, target)
    with building(target, "genai_config.json") as out, tempfile.TemporaryDirectory() as cache:
        cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(source), "-o", str(out),
               "-p", precision, "-e", "cpu", "-c", cache]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"the ONNX build of {source} took over {timeout_s:.0f} s") from exc
        if done.returncode != 0 or not (out / "genai_config.json").is_file():
            tail = " | ".join((done.stderr or done.stdout or "").strip().splitlines()[-3:])[-600:]
            raise RuntimeError(f"the ONNX build of {source} failed (exit {done.returncode}): {tail}")
        (out / "SOURCE").write_text(f"built from {source} by onnxruntime-genai {onnx_version()} ({precision}, cpu)\n")
    return target


class OrtLM:
    """A causal LM copy loaded in ONNX Runtime GenAI, sampled from token ids (the caller's tokenizer and chat
    template make them). One generation at a time (a lock): the session is shared."""

    def __init__(self, path: Path | str, num_threads: int | None = None) -> None:
        import onnxruntime_genai as og

        self.path = Path(path)
        config = og.Config(str(self.path))
        if num_threads is not None:
            options = {"intra_op_num_threads": int(num_threads), "inter_op_num_threads": 1}
            config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
        self._og = og
        self._model = og.Model(config)
        self._lock = threading.Lock()

    def sample(self, prompt_ids: Sequence[int], n: int, seed: int, *, greedy: bool = False,
               temperature: float = 0.7, top_p: float = 0.9, max_new_tokens: int = 40, regex: str | None = None,
               decode: Callable[[list[int]], str] | None = None, accept: Callable[[str], bool] | None = None,
               between: Callable[[], None] | None = None) -> tuple[list[list[int]], int]:
        """Up to `n` continuations (token ids) of `prompt_ids`, drawn one after another from one reading of the
        prompt; with `accept` (and `decode`, ids -> text), it stops after the first whose text `accept` takes.
        `between()`, when given, runs after every decoding step, with the model free for another caller's
        generation: the caller's chance to give way to other work (a caller that waited there holding the lock
        would hold up the very request it waits for).
        Returns (the continuations, the tokens generated in all)."""
        og = self._og
        if not prompt_ids:
            raise invalid("prompt_ids", "a non-empty sequence of token ids", prompt_ids)
        n = 1 if greedy else n
        with self._lock:
            params = og.GeneratorParams(self._model)
            search = {"max_length": len(prompt_ids) + int(max_new_tokens), "do_sample": not greedy}
            if not greedy:
                search.update(temperature=float(temperature), top_p=float(top_p), top_k=0,
                              random_seed=int(seed) % (2**31))
            params.set_search_options(**search)
            if regex:
                params.set_guidance("regex", regex)
            generator = og.Generator(self._model, params)
            generator.append_tokens(list(prompt_ids))
            out: list[list[int]] = []
            total = 0
            for k in range(n):
                if k:
                    generator.rewind_to(len(prompt_ids))
                while not generator.is_done():
                    generator.generate_next_token()
                    if between is not None:  # without the model's lock: whoever `between` waits for may use it
                        self._lock.release()
                        try:
                            between()
                        finally:
                            self._lock.acquire()
                ids = [int(t) for t in generator.get_sequence(0)[len(prompt_ids):]]
                total += len(ids)
                out.append(ids)
                if accept is not None and decode is not None and accept(decode(ids)):
                    break
        return out, total
