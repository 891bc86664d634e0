"""The one exception the app's flows raise for bad input; handlers turn it into `gr.Error`.

Library errors (`recommenders.errors`, `annotation.errors`, `generation.errors`) are converted into it at the
boundary of the flows (`app.serving.events`, `app.serving.labeling`, ...), so a handler catches one type and shows one clear message.
"""

from __future__ import annotations

__all__ = ["AppInputError", "bad"]


class AppInputError(ValueError):
    """Input a visitor or an API client can fix: an unknown id, a value out of range, an empty text."""


def bad(name: str, expected: str, received: object) -> AppInputError:
    """`AppInputError` naming the argument, what was expected and what was received."""
    shown = repr(received)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return AppInputError(f"{name}: expected {expected}, got {shown}")
