"""ZeroGPU support: `gpu(...)` is `spaces.GPU` on Hugging Face Spaces and a no-op everywhere else.

On a ZeroGPU Space a GPU is attached only while a function decorated with `spaces.GPU` runs; the
`spaces` package is present there (and only there). Generation entry points are wrapped with `gpu`, so
the same code runs locally on CPU/CUDA and on Spaces.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["gpu", "spaces_available"]


def spaces_available() -> bool:
    """True when the `spaces` package (ZeroGPU) can be imported."""
    return importlib.util.find_spec("spaces") is not None


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
