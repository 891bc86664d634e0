"""Exceptions of the generation package.

Each message names the argument (or the model), what was expected and what was received, and, for a
missing model, where it was looked for and how to provide it.
"""

from __future__ import annotations


class GenerationError(ValueError):
    """Base class: bad input to a generation function."""


class InvalidInputError(GenerationError):
    """An argument has the wrong type or value; the message names it, the expectation and the value."""


class ModelUnavailableError(LookupError):
    """A configured model cannot be had: not a local directory, not in the HF cache, and no network.

    Attributes: `model` (as configured), `looked` (list of "where: outcome" lines), `hint` (how to provide it).
    """

    def __init__(self, model: str, looked: list[str], hint: str, purpose: str = "model") -> None:
        self.model = model
        self.looked = list(looked)
        self.hint = hint
        self.purpose = purpose
        where = "; ".join(self.looked)
        super().__init__(f"{purpose} {model!r} is not available. Looked in: {where}. To provide it: {hint}")


def invalid(name: str, expected: str, received: object) -> InvalidInputError:
    """The one way this package builds an input error: `<name> must be <expected>, got <received>`."""
    shown = repr(received)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return InvalidInputError(f"{name} must be {expected}, got {shown}")
