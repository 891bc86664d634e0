"""Input guards shared by the store's write functions: each returns the clean value or raises
`InvalidInputError` naming the argument, what was expected and what was received."""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import uuid
from collections.abc import Mapping
from typing import Any

from annotation.errors import InvalidInputError

JSON_MAX_CHARS = 16_384  # params / context / config blobs; a bigger blob is a bug upstream


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def event_id(value: Any, name: str = "event_id") -> str:
    """A client-generated UUID (uuid.UUID or its text form) -> canonical lower-case text."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise InvalidInputError(f"{name} must be a UUID (uuid.UUID or its 36-character text), got {_show(value)}")


def text(value: Any, name: str, max_len: int, *, optional: bool = False, allow_empty: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        kind = "a string or None" if optional else "a string"
        raise InvalidInputError(f"{name} must be {kind}, got {type(value).__name__} {_show(value)}")
    if not allow_empty and not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise InvalidInputError(f"{name} must be at most {max_len} characters, got {len(value)}")
    if "\x00" in value:
        raise InvalidInputError(f"{name} must not contain NUL characters, got {_show(value)}")
    return value


def integer(value: Any, name: str, low: int, high: int, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "an integer or None" if optional else "an integer"
        raise InvalidInputError(f"{name} must be {kind}, got {type(value).__name__} {_show(value)}")
    value = int(value)
    if not low <= value <= high:
        raise InvalidInputError(f"{name} must be between {low} and {high}, got {value}")
    return value


def number(value: Any, name: str, low: float, high: float, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "a number or None" if optional else "a number"
        raise InvalidInputError(f"{name} must be {kind}, got {type(value).__name__} {_show(value)}")
    value = float(value)
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidInputError(f"{name} must be a finite number between {low:g} and {high:g}, got {value!r}")
    return value


def boolean(value: Any, name: str) -> bool:
    # numpy.bool_ is not a bool subclass; accept it by its type name rather than importing numpy.
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise InvalidInputError(f"{name} must be True or False, got {type(value).__name__} {_show(value)}")


def choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInputError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {_show(value)}")
    return value


def json_object(value: Any, name: str, *, optional: bool = False) -> dict[str, Any] | None:
    """A JSON-serialisable dict with string keys and finite numbers, under JSON_MAX_CHARS once encoded."""
    if value is None and optional:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{name} must be a dict, got {type(value).__name__} {_show(value)}")
    value = dict(value)
    bad_keys = [k for k in value if not isinstance(k, str)]
    if bad_keys:
        raise InvalidInputError(f"{name} keys must be strings, got {_show(bad_keys)}")
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be JSON-serialisable with finite numbers, got {_show(value)}: {exc}") from None
    if len(encoded) > JSON_MAX_CHARS:
        raise InvalidInputError(f"{name} must encode to at most {JSON_MAX_CHARS} characters of JSON, got {len(encoded)}")
    return json.loads(encoded)  # plain types only (tuples -> lists, numpy scalars were rejected above)


def timestamp(value: Any, name: str = "at") -> dt.datetime | None:
    """None (the store uses now), or a datetime: aware ones are converted to naive UTC, naive ones are UTC."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise InvalidInputError(f"{name} must be a datetime or None, got {type(value).__name__} {_show(value)}")
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value
