"""What the simulations share: seeded ids and the simulated annotators."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any, Sequence


def seeded_uuid(rng: random.Random) -> str:
    """A UUID4 drawn from `rng` (event, impression and label ids): the same seed writes the same database."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True)
class AnnotatorSpec:
    name: str
    accuracy: float  # probability of choosing the truly better side when not biased
    bias: float = 0.0  # probability of answering "A" whatever is shown

    @classmethod
    def parse(cls, text: str) -> "AnnotatorSpec":
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0]:
            raise ValueError(f"--annotators entries must be name:accuracy[:bias], got {text!r}")
        try:
            accuracy = float(parts[1])
            bias = float(parts[2]) if len(parts) == 3 else 0.0
        except ValueError:
            raise ValueError(f"--annotators entries must be name:accuracy[:bias] with numbers, got {text!r}") from None
        if not 0.0 <= accuracy <= 1.0 or not 0.0 <= bias <= 1.0:
            raise ValueError(f"accuracy and bias must be in [0, 1], got {text!r}")
        return cls(parts[0], accuracy, bias)


def check_ranges(config: Any, integers: Sequence[tuple[str, int, int]] = (), probabilities: Sequence[str] = ()) -> None:
    """A ValueError naming the first of `config`'s fields that is not an integer in its [low, high] or not a
    probability in [0, 1] (what each simulation's config checks first)."""
    for name, low, high in integers:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer between {low} and {high}, got {value!r}")
    for name in probabilities:
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def parse_annotators(text: str) -> tuple[AnnotatorSpec, ...]:
    """`--annotators`: comma-separated name:accuracy[:bias] entries (ValueError naming the bad one)."""
    return tuple(AnnotatorSpec.parse(t.strip()) for t in text.split(",") if t.strip())
