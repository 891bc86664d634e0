"""Per-visitor state, kept in a `gr.State` (one copy per browser session, never shared).

A plain dataclass: Gradio deep-copies the initial value for each new session, handlers take it in and
hand it back. Nothing here is loaded data; the loaded world lives in `app.serving.services.Services`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.serving.ranking import ModelChoice

__all__ = ["Visitor", "PAGE_SIZE"]

PAGE_SIZE = 8  # cards per page on Discover (two rows of four)


@dataclass
class Visitor:
    # Discover: who is being recommended for, with which model, what is on screen
    user_id: str | None = None
    user_kind: str = "dataset"  # "dataset" | "new"
    liked: list[str] = field(default_factory=list)  # liked in this session (a new user's picks too), oldest first
    disliked: list[str] = field(default_factory=list)
    model_choice: ModelChoice | None = None  # one model, or two interleaved
    impression_id: int | None = None
    slate: list[dict[str, Any]] = field(default_factory=list)  # SlateRow dicts still on screen
    shown: list[str] = field(default_factory=list)  # every item shown for this user (so "more" pages on)
    page: int = 0
    seed: int = 0  # interleaving coin flips of this visitor's slates
    card_lead: str = "generated"  # which picture fills a card whose item has its own: "generated" | "item"
    pending: list[str] = field(default_factory=list)  # items on the slate whose cover or caption is being made
    covers: dict[str, dict[str, Any]] = field(default_factory=dict)  # item_id -> {"key", "src", "fallback", "asset_id"}
    captions: dict[str, dict[str, Any]] = field(default_factory=dict)  # item_id -> {"text", "fallback", "asset_id"}
    opened: str | None = None  # the item whose detail panel is open
    # Create: the last batch of variants
    variants: list[dict[str, Any]] = field(default_factory=list)  # {"asset_id", "path", "personalized", "seed", ...}
    picked: int | None = None
    # Label: the annotator and the pair on screen
    annotator_id: int | None = None
    annotator_name: str | None = None
    pair: dict[str, Any] | None = None  # {"pair_id", "kind", "a": {...}, "b": {...}, "target_user_id", "shown_at"}
    label_ids: list[int] = field(default_factory=list)  # labels given in this session, for undo (newest last)

    def reset_user(self, user_id: str, kind: str, liked: list[str] | None = None,
                   disliked: list[str] | None = None) -> None:
        """Switch Discover to another user: the slate, paging and caches start over."""
        self.user_id = user_id
        self.user_kind = kind
        self.liked = list(liked or [])
        self.disliked = list(disliked or [])
        self.impression_id = None
        self.model_choice = None
        self.pending = []
        self.slate = []
        self.shown = []
        self.page = 0
        self.covers = {}
        self.captions = {}
        self.opened = None
