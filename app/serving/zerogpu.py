"""ZeroGPU support: `gpu(...)` is `spaces.GPU` on Hugging Face Spaces and a no-op everywhere else.

On a ZeroGPU Space a GPU is attached only while a function decorated with `spaces.GPU` runs; the
`spaces` package is present there (and only there). Generation entry points are wrapped with `gpu`, so
the same code runs locally on CPU/CUDA and on Spaces.

ZeroGPU's rules, and how the app keeps them:
- `spaces` must be imported before anything initialises CUDA: `python app/__main__.py` (and `python -m app`)
  call `import_spaces()` first thing, before torch, diffusers or transformers are imported;
- models are loaded once at start and placed on "cuda" there (device "auto" sees the CUDA that `spaces`
  emulates outside GPU functions); ZeroGPU moves them onto the real GPU while a `spaces.GPU` function runs;
- every function that runs a model on the GPU is wrapped with `gpu(...)` (cover and caption generation).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["gpu", "spaces_available", "import_spaces"]


def spaces_available() -> bool:
    """True when the `spaces` package (ZeroGPU) can be imported."""
    return importlib.util.find_spec("spaces") is not None


def import_spaces() -> bool:
    """Import `spaces` (ZeroGPU) now when it is installed; returns whether it was. Raises RuntimeError when
    CUDA was initialised already: ZeroGPU could then no longer manage the GPU."""
    if not spaces_available():
        return False
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError("CUDA was initialised before `spaces` was imported: ZeroGPU needs `spaces` first "
                           "(import app.serving.zerogpu and call import_spaces() before any model code)")
    import spaces  # noqa: F401 - the import itself sets ZeroGPU up

    return True


def gpu(fn: F | None = None, *, duration: int = 60) -> Any:
    """Decorate `fn` with `spaces.GPU(duration=...)` when `spaces` is installed, else return it unchanged.

    Usable bare (`@gpu`) or with arguments (`@gpu(duration=120)`).
    """
    if duration <= 0:
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")

    def wrap(f: F) -> F:
        if not spaces_available():
            return f
        import spaces  # only on Spaces

        return spaces.GPU(duration=duration)(f)

    return wrap(fn) if fn is not None else wrap
