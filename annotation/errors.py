"""Exceptions raised by the annotation store.

Every message names the argument, what was expected and what was received. Nothing is written when one
of these is raised: the store validates a whole call (or a whole batch) before its first INSERT.
"""

from __future__ import annotations

__all__ = [
    "AnnotationError",
    "InvalidInputError",
    "UnknownUserError",
    "UnknownItemError",
    "UnknownAssetError",
    "UnknownAnnotatorError",
    "UnknownPairError",
    "UnknownImpressionError",
    "UnknownStudyError",
    "EventConflictError",
]


class AnnotationError(Exception):
    """Base class of every exception the store raises on purpose."""


class InvalidInputError(AnnotationError, ValueError):
    """A value has the wrong type, is out of range, or is over a length limit."""


class EventConflictError(InvalidInputError):
    """An event UUID that is already stored was sent again with a different payload."""


class UnknownUserError(AnnotationError, LookupError):
    """A user id that is not in the `users` table (create it first with `store.ensure_user`)."""


class UnknownItemError(AnnotationError, LookupError):
    """An item id that is not in the catalog (fill it with `store.sync_items`)."""


class UnknownAssetError(AnnotationError, LookupError):
    """A generated-asset id that does not exist."""


class UnknownAnnotatorError(AnnotationError, LookupError):
    """An annotator id that does not exist (create it with `store.get_or_create_annotator`)."""


class UnknownPairError(AnnotationError, LookupError):
    """A pair-task id that does not exist."""


class UnknownImpressionError(AnnotationError, LookupError):
    """An impression id (or event UUID) that does not exist."""


class UnknownStudyError(AnnotationError, LookupError):
    """A study key or id that does not exist (create it with `studies.create_study`)."""
