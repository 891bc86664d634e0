"""Ranking: the served recommenders, the model choice a visitor makes, and the ranked rows of a slate.

A visitor's feedback counts at once: the items they liked in the app are folded into their history at ranking
time (every model has a fold-in path, `recommend_with_feedback`), a model that can use negatives (EASE) moves
away from what they disliked, and disliked items are never ranked. For a dataset user the fold-in history is
their training history plus the app likes; a brand-new user has only the likes (their onboarding picks).
Within a visit, what its earlier pages showed and the visitor passed over (shown, neither liked, disliked nor
opened) counts too: the next page moves away from it (`recommenders.visit`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app import checks
from app.serving.catalog import Catalog, year_of
from app.errors import AppInputError, bad
from app.serving.interleaving import team_draft

if TYPE_CHECKING:  # pragma: no cover - types only
    from generation.profile import UserProfile
    from recommenders.models.base import Recommender

__all__ = ["COMPARE_PREFIX", "ModelChoice", "SlateRow", "Ranking"]

COMPARE_PREFIX = "compare:"  # the text form of an interleaved choice: "compare:ease|pop"


@dataclass(frozen=True)
class ModelChoice:
    """One model (`b` is None) or a team-draft interleaving of two. Its string form exists only at the edges
    (the API's `model` argument, the dropdowns, the impression's record): `parse` and `str`."""

    a: str
    b: str | None = None

    @property
    def interleaved(self) -> bool:
        return self.b is not None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.a,) if self.b is None else (self.a, self.b)

    def __str__(self) -> str:
        return self.a if self.b is None else f"{COMPARE_PREFIX}{self.a}|{self.b}"

    @classmethod
    def parse(cls, text: object, known: Sequence[str]) -> "ModelChoice":
        """'ease' -> ModelChoice('ease'); 'compare:ease|pop' -> ModelChoice('ease', 'pop'). `AppInputError` for
        a malformed choice or a model not in `known`."""
        text = checks.text("model", text)
        if text.startswith(COMPARE_PREFIX):
            parts = text[len(COMPARE_PREFIX):].split("|")
            if len(parts) != 2 or parts[0] == parts[1]:
                raise bad("model", "'compare:<model_a>|<model_b>' with two different models", text)
            choice = cls(parts[0], parts[1])
        else:
            choice = cls(text)
        for name in choice.names:
            if name not in known:
                raise bad("model", f"one of {list(known)} (or 'compare:a|b' of two of them)", name)
        return choice


@dataclass
class SlateRow:
    """One recommended item, as the Discover tab and /recommend see it."""

    item_id: str
    title: str
    year: int | None
    genres: list[str]
    score: float
    contributor: str  # the model that put it there (interleaving: the team)
    why: str
    position: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Ranking:
    """The served models (name -> fitted recommender) and the ranked rows they produce for a visitor."""

    def __init__(self, catalog: Catalog, models: dict[str, "Recommender"], default_model: str) -> None:
        if default_model not in models:
            raise ValueError(f"default_model: expected one of {list(models)}, got {default_model!r}")
        self.catalog = catalog
        self._models = dict(models)
        self.default_model = default_model
        self._lock = threading.Lock()

    @property
    def model_names(self) -> list[str]:
        return list(self._models)

    def model(self, name: str) -> "Recommender":
        if name not in self._models:
            raise bad("model", f"one of {self.model_names}", name)
        return self._models[name]

    def swap(self, name: str, model: "Recommender") -> None:
        """Serve `model` as `name` from the next request on (a retrained or promoted version)."""
        with self._lock:
            self._models = {**self._models, name: model}

    def parse(self, choice: object) -> ModelChoice:
        """The visitor's choice; '' or None means the default model."""
        if choice in ("", None):
            return ModelChoice(self.default_model)
        return ModelChoice.parse(choice, self.model_names)

    def rank(self, model: str, user_id: str, n: int, liked: Sequence[str] = (), disliked: Sequence[str] = (),
             exclude: Iterable[str] = (), skipped: Iterable[str] = ()) -> list[tuple[str, float]]:
        """Top-`n` (item_id, score) of `model` for the user, never an item of `exclude`, `liked`, `disliked` or the
        training history.

        The visitor's app feedback counts at once (`recommend_with_feedback`): their history plus `liked` is
        folded in, and a model that can use negatives (EASE) also moves away from what is near `disliked`;
        `skipped` (passed over on this visit's pages) moves the ranking away from what is like them. A user the
        model was not fitted on is a new visitor: it needs likes to be ranked at all.
        """
        from recommenders.errors import ColdVisitorError

        try:
            ids, scores = self.model(model).recommend_with_feedback(
                user_id, liked=list(liked), disliked=list(disliked), k=n, exclude=sorted(set(exclude)),
                skipped=sorted(set(skipped)))
        except ColdVisitorError as exc:
            raise AppInputError(f"user_id: expected a user the model {model!r} knows, or a new user with liked "
                                f"items ({exc})") from exc
        return [(str(i), float(s)) for i, s in zip(ids, scores)]

    def slate(self, user_id: str, choice: ModelChoice, k: int, *, profile: "UserProfile",
              liked: Sequence[str] = (), disliked: Sequence[str] = (), exclude: Iterable[str] = (),
              opened: Iterable[str] = (), seed: int = 0) -> list[SlateRow]:
        """The slate's rows: one model's top-k, or a team-draft interleaving of two models (seeded coin flips,
        each model ranking 2k so that the draft can fill k). `k` as checked by the caller (1..K_MAX).
        `exclude`: what this visit's pages showed; those the visitor did not like, dislike or open (`opened`)
        were passed over and count as skipped (`rank`)."""
        exclude = set(exclude)
        skipped = exclude - set(liked) - set(disliked) - set(opened)
        by_model = {name: self.rank(name, user_id, k if choice.b is None else 2 * k, liked=liked,
                                    disliked=disliked, exclude=exclude, skipped=skipped) for name in choice.names}
        if choice.b is None:
            ranked, contributors = by_model[choice.a], [choice.a] * len(by_model[choice.a])
        else:
            drafted = team_draft([i for i, _ in by_model[choice.a]], [i for i, _ in by_model[choice.b]], k,
                                 names=(choice.a, choice.b), seed=seed)
            score = {name: dict(r) for name, r in by_model.items()}
            ranked = [(i, score[c][i]) for i, c in zip(drafted.item_ids, drafted.contributors)]
            contributors = drafted.contributors
        liked_all = self.catalog.liked_ids(user_id, liked, disliked)
        rows = []
        for pos, ((item_id, score), who) in enumerate(zip(ranked, contributors)):
            row = self.catalog.item(item_id)
            rows.append(SlateRow(item_id=item_id, title=row["title"], year=year_of(row),
                                 genres=list(row.get("genres") or []), score=score, contributor=who,
                                 why=self.catalog.why(item_id, liked_all, profile.top_genres), position=pos))
        return rows
