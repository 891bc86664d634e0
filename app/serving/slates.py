"""The one slate flow: rank for a visitor, record the impression, attach the covers and captions that exist and
queue the rest. The Discover tab's handlers and the /recommend endpoint both call `Slates.page` and only adapt
its `Page` to their output, so they show the same items in the same order for the same visitor, model and page.

A visitor's likes are folded into their ranking and their dislikes are never shown (see `app.serving.ranking`). A page
is answered without waiting for a model: covers and captions made earlier come at once, the missing ones are
made by the background worker (`Assets.for_slate` queues them) and picked up with `Assets.made`. Every method that
answers a visitor runs as an interactive request, so background generation gives way to it. The visitor comes
from `EventLog.visitor` (`Visit`: checked, read and stored once per page).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app import checks
from app.serving.assets import Asset, Assets
from app.serving.worker import gated
from app.serving.catalog import Catalog
from app.serving.events import EventLog, Feedback, Visit
from app.serving.ranking import ModelChoice, Ranking, SlateRow

__all__ = ["Slates", "Page", "WAIT_MAX_S"]

WAIT_MAX_S = 300.0  # the longest /recommend?wait=true waits for the background worker; what is not made by then
# comes back pending


@dataclass
class Page:
    """A recorded slate: its rows, the impression that feedback refers to, and the assets known so far."""

    choice: ModelChoice
    rows: list[SlateRow]
    impression_id: int | None  # None: nothing left to recommend (no impression recorded)
    seed: int
    covers: dict[str, Asset] = field(default_factory=dict)  # item_id -> recorded cover
    captions: dict[str, Asset] = field(default_factory=dict)  # item_id -> recorded caption
    pending: list[str] = field(default_factory=list)  # items whose cover or caption is still being made
    templates: dict[str, str] = field(default_factory=dict)  # item_id -> template caption shown until it is made
    profile: Any = None  # the visitor's profile the page was ranked and captioned for

    @property
    def item_ids(self) -> list[str]:
        return [r.item_id for r in self.rows]


class Slates:
    def __init__(self, catalog: Catalog, ranking: Ranking, events: EventLog, assets: Assets) -> None:
        self.catalog = catalog
        self.ranking = ranking
        self.events = events
        self.assets = assets

    def page(self, visit: Visit, choice: ModelChoice, k: int, *, seed: int, exclude: Sequence[str] = (),
             tab: str = "discover", context: dict[str, Any] | None = None, wait: bool = False) -> Page:
        """Rank, record the impression and attach the assets. `exclude`: items already shown in this session
        (paging; those the visitor passed over count on this page: `Ranking.slate`). `wait=True` waits (at most WAIT_MAX_S) for the background worker to make the missing assets
        before answering (slow with real models); the generation itself stays in the worker. Items without a
        caption yet get their template caption in `Page.templates` (shown, labelled, until the real one lands)."""
        page = self._record_page(visit, choice, k, seed=seed, exclude=exclude, tab=tab, context=context)
        if page.rows:  # outside the interactive gate, so that a waiting page does not hold back the worker
            page.covers, page.captions, page.pending, page.templates = self.assets.for_slate(
                visit.user_id, page.item_ids, page.profile, wait=WAIT_MAX_S if wait else 0.0)
        return page

    @gated
    def prefetch(self, visit: Visit, page: Page, k: int, *, exclude: Sequence[str] = ()) -> None:
        """Queue the missing assets of the items the page after `page` would show ("More": the next `k` items,
        seed + 1; ranked, not recorded) behind every screen's own (the worker's prefetch lane), so that they are
        ready when the visitor pages on."""
        if not page.rows:
            return
        rows = self.ranking.slate(visit.user_id, page.choice, k, profile=page.profile, liked=visit.liked,
                                  disliked=visit.disliked, exclude=[*exclude, *page.item_ids], opened=visit.opened,
                                  seed=(page.seed + 1) % (checks.SEED_MAX + 1))
        if rows:
            _, _, missing = self.assets.made(visit.user_id, [r.item_id for r in rows])
            self.assets.worker.generate_later(visit.user_id, missing, page.profile, prefetch=True)

    @gated
    def _record_page(self, visit: Visit, choice: ModelChoice, k: int, *, seed: int, exclude: Sequence[str],
                     tab: str, context: dict[str, Any] | None):
        """Rank and record the impression (an interactive request): the page, without its assets yet."""
        learner = self.assets.learner
        profile = self.catalog.profile(visit.user_id, visit.liked, preferred_prompts=(
            learner.preferred_prompts(visit.user_id) if learner is not None else ()))
        rows = self.ranking.slate(visit.user_id, choice, k, profile=profile, liked=visit.liked,
                                  disliked=visit.disliked, exclude=exclude, opened=visit.opened, seed=seed)
        if not rows:
            return Page(choice=choice, rows=[], impression_id=None, seed=seed, profile=profile)
        impression_id = self.events.record_impression(visit.user_id, rows, choice,
                                                      context={"tab": tab, "seed": seed, **(context or {})})
        return Page(choice=choice, rows=rows, impression_id=impression_id, seed=seed, profile=profile)

    def queued(self, user_id: str, item_ids: Sequence[str]) -> list[str]:
        """The items the background worker still has queued for this visitor."""
        return self.assets.worker.pending(user_id, item_ids)

    @gated
    def feedback(self, user_id: str, item_id: str, kind: str, impression_id: int | None, *,
                 event_id: str | None = None) -> Feedback:
        """Log a like / dislike / click / skip / undo ("open" is a click) tied to the impression that showed the item;
        the same signal repeated on the same slate is stored once (`EventLog.record_feedback`). A new like or
        dislike is weak evidence for the prompt-policy arm of the cover shown on the card."""
        stored = self.events.record_feedback(user_id, item_id, kind, impression_id, event_id=event_id)
        if kind in ("like", "dislike") and not stored.repeated and self.assets.learner is not None:
            cover = self.assets.known(user_id, [item_id]).get((item_id, "cover"))
            if cover is not None:
                self.assets.learner.learn_from_like(user_id, cover.get("params"), liked=kind == "like")
        return stored
