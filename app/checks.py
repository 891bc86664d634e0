"""The app's input checks, ids and seeds: one definition each, used by the UI handlers, the API and the flows.

Each check returns the clean value or raises `AppInputError` (via `app.errors.bad`) naming the argument, what
was expected and what was received. Text is refused when it holds NUL bytes or lone surrogates (`"\\ud800"`):
those cannot be encoded, stored or compared, and would otherwise surface later as a generic error.
"""

from __future__ import annotations

import uuid

import numpy as np

from app.errors import bad

__all__ = ["TEXT_MAX", "ID_MAX", "EVENT_ID_MAX", "K_MAX", "N_VARIANTS_MAX", "SEED_MAX", "text", "integer",
           "flag", "encodable", "new_event_id", "new_seed"]

TEXT_MAX = 200  # the longest free text (user ids, annotator names, model names) accepted from a client
ID_MAX = 64  # the store's limit on user and item ids
EVENT_ID_MAX = 36  # a UUID's text form
K_MAX = 50  # the most items one slate may ask for
N_VARIANTS_MAX = 8  # the most cover variants one Create request may ask for
SEED_MAX = 2**31 - 1


def encodable(value: str) -> bool:
    """True when `value` is valid UTF-8 text: no lone surrogates, no NUL."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text(name: str, value: object, max_len: int = TEXT_MAX) -> str:
    """A non-empty string of at most `max_len` characters, stripped."""
    problem = None
    if not isinstance(value, str):
        problem = ("a string", value)
    elif not encodable(value):
        problem = ("text without NUL bytes or lone surrogates", value.encode("utf-8", "backslashreplace"))
    elif not value.strip():
        problem = ("a non-empty string", value.strip())
    elif len(value.strip()) > max_len:
        problem = (f"at most {max_len} characters", f"{len(value.strip())} characters")
    if problem is not None:
        raise bad(name, *problem)
    return value.strip()


def integer(name: str, value: object, low: int, high: int) -> int:
    """An integer in [low, high]; a float with an integral value (JSON clients send 3.0) is accepted."""
    if isinstance(value, bool):
        raise bad(name, f"an integer between {low} and {high}", value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        raise bad(name, f"an integer between {low} and {high}", value)
    return int(value)


def flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise bad(name, "true or false", value)
    return value


def new_event_id() -> str:
    """A client-generated event UUID: the store makes a retried write with the same id a no-op."""
    return str(uuid.uuid4())


def new_seed() -> int:
    """A fresh seed for one visitor's coin flips (recorded with what it drew, so the draw can be replayed)."""
    return uuid.uuid4().int % (SEED_MAX + 1)
