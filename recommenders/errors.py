"""Exceptions of the recommenders package.

Every message names the argument (or file/row/column), what was expected and what was received.
"""

from __future__ import annotations


class RecommendersError(Exception):
    """Base class of every error raised on purpose by `recommenders`."""


class DatasetError(RecommendersError, ValueError):
    """A dataset cannot be found or is malformed; nothing is half-loaded."""


class UnknownUserError(RecommendersError, LookupError):
    """A user id the model was not fitted on."""


class ColdVisitorError(RecommendersError, ValueError):
    """A visitor the model was not fitted on, with no liked item to fold in: nothing to rank from."""


class UnknownItemError(RecommendersError, LookupError):
    """An item id outside the model's catalogue."""


class UnknownModelError(RecommendersError, ValueError):
    """A model name outside MODEL_NAMES."""


class ModelFitError(RecommendersError, ValueError):
    """A model cannot be fitted on the data it was given (wrong shape, missing features, empty data)."""


class NotFittedError(RecommendersError, ValueError):
    """A model was asked to score before `fit` (or `load`)."""


class ModelTooLargeError(ModelFitError):
    """A model would need more memory than this machine can give for this catalogue; refused before it
    allocates anything big. The message names the need, what the machine has, and what to use instead."""
