"""Team-draft interleaving (Radlinski, Kurup and Joachims, CIKM 2008).

Two rankers are compared online by showing ONE slate built from both: the two "teams" take turns, a coin
flip deciding who picks first in each round, and each adds its highest-ranked item not already on the slate.
Every position remembers which ranker contributed it (the store's impression `contributors`), so a click on
that position is credited to that ranker; the ranker with more credited clicks wins the impression.

Everything here is pure and seeded: the same rankings, k and seed always give the same slate.

    >>> slate = team_draft(["a", "b", "c"], ["b", "d", "e"], k=4, names=("ease", "pop"), seed=0)
    >>> slate.item_ids, slate.contributors          # doctest: +SKIP
    (['a', 'b', 'c', 'd'], ['ease', 'pop', 'ease', 'pop'])
    >>> slate.winner(clicked=["d"])                 # doctest: +SKIP
    'pop'
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["InterleavedSlate", "team_draft", "TIE"]

TIE = "tie"  # `InterleavedSlate.winner` when both rankers earned the same credit (also: no clicks)


@dataclass(frozen=True)
class InterleavedSlate:
    """One interleaved slate: `item_ids[i]` was contributed by ranker `contributors[i]`."""

    item_ids: list[str]
    contributors: list[str]
    names: tuple[str, str]  # the two rankers, in the order they were given
    seed: int | None  # the seed that drew the coin flips (None when an external Random was passed)

    def __post_init__(self) -> None:
        if len(self.item_ids) != len(self.contributors):
            raise ValueError(
                f"item_ids and contributors must have the same length, got {len(self.item_ids)} "
                f"and {len(self.contributors)}"
            )

    def __len__(self) -> int:
        return len(self.item_ids)

    def contributor_of(self, item_id: str) -> str:
        """The ranker that put `item_id` on the slate; `KeyError` naming the item when it is not there."""
        for item, who in zip(self.item_ids, self.contributors):
            if item == item_id:
                return who
        raise KeyError(f"item_id {item_id!r} is not on this interleaved slate (items: {self.item_ids})")

    def credit(self, clicked: Iterable[str]) -> dict[str, int]:
        """Clicks credited per ranker: each distinct clicked item counts once, for the ranker that contributed it.

        Items that are not on the slate raise `KeyError` (a click on something never shown is a bug upstream).
        """
        counts = {self.names[0]: 0, self.names[1]: 0}
        for item_id in dict.fromkeys(clicked):  # ordered and de-duplicated
            counts[self.contributor_of(item_id)] += 1
        return counts

    def winner(self, clicked: Iterable[str]) -> str:
        """The ranker with more credited clicks, or `TIE`."""
        counts = self.credit(clicked)
        a, b = self.names
        if counts[a] == counts[b]:
            return TIE
        return a if counts[a] > counts[b] else b


def _check_ranking(name: str, ranking: Sequence[str]) -> list[str]:
    if isinstance(ranking, str):
        raise TypeError(f"{name} must be a sequence of item ids, got a single string {ranking!r}")
    items = [str(item) for item in ranking]
    seen: set[str] = set()
    duplicates = sorted({item for item in items if item in seen or seen.add(item)})
    if duplicates:
        raise ValueError(f"{name} must not repeat item ids, got duplicates {duplicates[:5]}")
    return items


def team_draft(
    ranking_a: Sequence[str],
    ranking_b: Sequence[str],
    k: int,
    *,
    names: tuple[str, str] = ("A", "B"),
    seed: int | None = 0,
    rng: random.Random | None = None,
) -> InterleavedSlate:
    """Interleave two rankings into a slate of at most `k` items by team draft.

    Each round, the team with fewer picks goes first (a seeded coin flip breaks ties) and adds its
    highest-ranked item not yet on the slate. When one ranking runs out, the other keeps picking, so the
    slate is `min(k, |A ∪ B|)` long.

    Args:
        ranking_a, ranking_b: item ids, best first, without repeats.
        k: the slate length wanted, >= 1.
        names: how the two rankers are called in `contributors` (distinct, non-empty).
        seed: seeds the coin flips (ignored when `rng` is given).
        rng: a `random.Random` to draw the coin flips from, e.g. one per simulated session.
    """
    a_items = _check_ranking("ranking_a", ranking_a)
    b_items = _check_ranking("ranking_b", ranking_b)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if len(names) != 2 or not all(isinstance(n, str) and n for n in names) or names[0] == names[1]:
        raise ValueError(f"names must be two distinct non-empty strings, got {names!r}")
    if rng is None:
        rng = random.Random(seed)
        used_seed = seed
    else:
        used_seed = None

    name_a, name_b = names
    slate: list[str] = []
    contributors: list[str] = []
    on_slate: set[str] = set()
    picks = {name_a: 0, name_b: 0}
    cursor = {name_a: 0, name_b: 0}
    ranking = {name_a: a_items, name_b: b_items}

    def next_item(team: str) -> str | None:
        items, i = ranking[team], cursor[team]
        while i < len(items) and items[i] in on_slate:
            i += 1
        cursor[team] = i
        return items[i] if i < len(items) else None

    while len(slate) < k:
        if picks[name_a] < picks[name_b]:
            order = (name_a, name_b)
        elif picks[name_b] < picks[name_a]:
            order = (name_b, name_a)
        else:
            order = (name_a, name_b) if rng.random() < 0.5 else (name_b, name_a)
        for team in order:  # the chosen team picks; if it has run out, the other one does
            item = next_item(team)
            if item is not None:
                slate.append(item)
                contributors.append(team)
                on_slate.add(item)
                picks[team] += 1
                break
        else:
            break  # both rankings exhausted
    return InterleavedSlate(item_ids=slate, contributors=contributors, names=(name_a, name_b), seed=used_seed)
