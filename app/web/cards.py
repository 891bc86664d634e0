"""HTML for the app: recommendation cards, profile summaries, label pairs, the status page.

Everything a user, a dataset or a model can put into a string (titles, captions, genres, user ids, model
names, URLs) goes through `html.escape` here, and nowhere else builds HTML from data. Pictures come as URLs
relative to the app's root (`app.web.routes`: covers by blob key, an item's own picture by item id), so they work
behind a Spaces proxy and no page shows a path on the server.

A card can show two pictures: the generated cover and the item's own image (a bring-your-own catalogue's
`image` column). `lead` ("generated" or "item") says which one fills the card; the other is a small inset. Each
picture's alt text says what it is (a generated cover, or the item's own picture) and of which title.

A card in a slate carries its own action buttons (Like / Dislike / Open, and Undo once it is liked or disliked)
inside its box, each named with the card's title for a screen reader; `render_slate` lays the cards out in a
responsive grid. The caption and the "why" are shown in full: they are what the app made for this visitor.
Words that name the items (the labeling guidelines) come from the catalogue's domain (`ui_words`, plain
strings from `generation.domain.Domain.ui_words()`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
import re
from html import escape

__all__ = [
    "CSS",
    "CardView",
    "CARD_ACTIONS",
    "render_card",
    "render_slate",
    "render_empty_slot",
    "render_profile",
    "render_pair_side",
    "render_status",
    "render_detail",
    "labeling_guidelines",
    "LEADS",
    "markdown_escape",
]

LEADS = ("generated", "item")  # which picture fills a card: the generated cover or the item's own image
# what a card's buttons send, with their label and keyboard key (the key works while focus is on the card)
CARD_ACTIONS = {"like": ("Like", "l"), "dislike": ("Dislike", "d"), "open": ("Open", "o"), "undo": ("Undo", "u")}
FILM_WORDS = {"item": "film", "items": "films", "Item": "Film", "Items": "Films", "cover": "cover",
              "audience": "viewer"}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


@dataclass(frozen=True)
class CardView:
    """What one card shows; plain data so that rendering is a pure function."""

    item_id: str
    title: str
    year: int | None = None
    genres: Sequence[str] = ()
    score: float | None = None
    why: str = ""
    model: str = ""  # the model (or interleaving team) that contributed the item
    cover_src: str | None = None  # the cover's URL (`app.web.routes.cover_url`); None: still being generated
    cover_fallback: bool = False
    caption: str | None = None
    caption_fallback: bool = False
    feedback: str | None = None  # "like" / "dislike": the visitor's current like state of the item
    badges: Sequence[str] = field(default_factory=tuple)
    item_image_src: str | None = None  # the URL of the item's own picture, when the catalogue has one


def markdown_escape(text: object) -> str:
    """Text shown through Markdown (a `gr.Markdown` message, a Streamlit reading) as-is: every Markdown, HTML and
    LaTeX-trigger character is backslash-escaped, so a title like `![x](http://host/p.png)` stays text and never
    makes the browser fetch anything."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _chips(genres: Sequence[str], limit: int = 4) -> str:
    return "".join(f'<span class="vt-chip">{_e(g)}</span>' for g in list(genres)[:limit])


def _check_lead(lead: str) -> None:
    if lead not in LEADS:
        raise ValueError(f"lead: expected one of {list(LEADS)}, got {lead!r}")


def cover_alt(title: str, fallback: bool = False) -> str:
    """Alt text of a generated cover: what it is and of which title."""
    return f"Generated cover for {title}" + (" (typographic fallback: no image model loaded)" if fallback else "")


def picture_alt(title: str) -> str:
    """Alt text of an item's own picture (from the catalogue)."""
    return f"The catalogue's own picture of {title}"


def _generated(card: CardView) -> str:
    if not card.cover_src:
        return (f'<div class="vt-cover-pending" role="img" aria-label="{_e("Cover for " + card.title)} being '
                f'generated"><span>{_e(card.title)}</span></div>')
    html = (f'<img class="vt-cover-img" src="{_e(card.cover_src)}" alt="{_e(cover_alt(card.title, card.cover_fallback))}"'
            ' loading="lazy">')
    if card.cover_fallback:
        html += ('<span class="vt-flag" aria-hidden="true" title="No diffusion model loaded: typographic fallback '
                 'cover">fallback</span>')
    return html


def _label(card: CardView) -> str:
    return f"{card.title} ({card.year})" if card.year else card.title


def _actions(card: CardView, slot: int) -> str:
    """The card's buttons: Like / Dislike / Open, or Undo (and Open) once it is liked, or Undo once disliked."""
    if card.feedback == "like":
        kinds = ("undo", "open")
    elif card.feedback == "dislike":
        kinds = ("undo",)
    else:
        kinds = ("like", "dislike", "open")
    out = []
    for kind in kinds:
        text, key = CARD_ACTIONS[kind]
        what = {"undo": f"Undo your {card.feedback} of"}.get(kind, text)
        out.append(f'<button type="button" class="vt-act vt-act-{kind}" data-action="{kind}" data-slot="{slot}" '
                   f'aria-label="{_e(what + " " + _label(card))}" title="{_e(text)} (key {key})" '
                   f'aria-keyshortcuts="{key}">{_e(text)}</button>')
    return f'<div class="vt-actions">{"".join(out)}</div>'


def render_card(card: CardView, position: int | None = None, lead: str = "generated", slot: int | None = None) -> str:
    """One recommendation card. The cover area shows a shimmer until `cover_src` is set; with an
    `item_image_src`, `lead` chooses which picture fills the card and the other is shown as a small inset.
    With `slot` (its place on the page), the card carries its action buttons; a disliked card shows only its
    title, that it was removed, and Undo."""
    _check_lead(lead)
    if slot is not None and card.feedback == "dislike":
        return (f'<article class="vt-card vt-removed" data-item-id="{_e(card.item_id)}" data-slot="{slot}" tabindex="0" '
                f'aria-label="{_e(_label(card))} (removed)"><div class="vt-body"><div class="vt-title">'
                f'{_e(_label(card))}</div><p class="vt-muted">Removed: it will not be recommended to you again.</p>'
                f'</div>{_actions(card, slot)}</article>')
    year = f' <span class="vt-year">({_e(card.year)})</span>' if card.year else ""
    own = (f'<img class="vt-cover-img vt-item-img" src="{_e(card.item_image_src)}" '
           f'alt="{_e(picture_alt(card.title))}" loading="lazy">' if card.item_image_src else "")
    if own and lead == "item":
        inset = (f'<img class="vt-inset" src="{_e(card.cover_src)}" alt="{_e(cover_alt(card.title, card.cover_fallback))}"'
                 ' loading="lazy">' if card.cover_src else "")
        cover = own + inset
    else:
        cover = _generated(card)
        if own:
            cover += (f'<img class="vt-inset vt-item-img" src="{_e(card.item_image_src)}" '
                      f'alt="{_e(picture_alt(card.title))}" loading="lazy">')
    if card.caption is None:
        caption = '<p class="vt-caption vt-pending">writing a caption for you…</p>'
    else:
        flag = ' <span class="vt-flag-inline">template</span>' if card.caption_fallback else ""
        caption = f'<p class="vt-caption">{_e(card.caption)}{flag}</p>'
    why = f'<p class="vt-why"><b>Why:</b> {_e(card.why)}</p>' if card.why else ""
    meta = []
    if position is not None:
        meta.append(f"#{position + 1}")
    if card.model:
        meta.append(_e(card.model))
    if card.score is not None:
        meta.append(f"score {card.score:.3f}")
    meta.extend(_e(b) for b in card.badges)
    liked = (' <span class="vt-liked" role="img" aria-label="you liked this" title="you liked this">♥</span>'
             if card.feedback == "like" else "")
    actions = _actions(card, slot) if slot is not None else ""
    where = f' data-slot="{slot}" tabindex="0" aria-label="{_e(_label(card))}"' if slot is not None else ""
    return (
        f'<article class="vt-card" data-item-id="{_e(card.item_id)}"{where}>'
        f'<div class="vt-cover">{cover}</div>'
        f'<div class="vt-body"><div class="vt-title">{_e(card.title)}{year}{liked}</div>'
        f'<div class="vt-genres">{_chips(card.genres)}</div>{caption}{why}'
        f'<div class="vt-meta">{" · ".join(meta)}</div></div>{actions}</article>'
    )


def render_empty_slot() -> str:
    return ""


def render_slate(cards: Sequence[str]) -> str:
    """The page's cards (HTML strings; '' for an empty slot) in one responsive grid: four across on a desktop, one
    on a phone. Slot i is `#vt-card-i`."""
    slots = "".join(f'<div class="vt-slot" id="vt-card-{i}">{card}</div>' for i, card in enumerate(cards) if card)
    return f'<div class="vt-grid">{slots}</div>' if slots else ""


def render_detail(
    title: str,
    year: int | None,
    genres: Sequence[str],
    text: str,
    cover_src: str | None,
    item_image_src: str | None = None,
    lead: str = "generated",
) -> str:
    """The panel shown when a card is opened: the generated cover and the item's own image side by side
    (the one `lead` names first)."""
    _check_lead(lead)
    pictures = []
    if cover_src:
        pictures.append(f'<img class="vt-detail-img" src="{_e(cover_src)}" alt="{_e(cover_alt(title))}">')
    if item_image_src:
        own = f'<img class="vt-detail-img vt-item-img" src="{_e(item_image_src)}" alt="{_e(picture_alt(title))}">'
        pictures.insert(0 if lead == "item" else len(pictures), own)
    img = "".join(pictures)
    year_html = f" ({_e(year)})" if year else ""
    return (
        f'<div class="vt-detail">{img}<div><h3>{_e(title)}{year_html}</h3>'
        f'<div class="vt-genres">{_chips(genres, limit=8)}</div><p>{_e(text)}</p></div></div>'
    )


def render_profile(
    user_id: str,
    top_genres: Sequence[str],
    liked_titles: Sequence[str],
    n_ratings: int,
    kind: str = "dataset",
    extra: Mapping[str, object] | None = None,
) -> str:
    """A short profile: who, how many ratings, top genres, a few liked items."""
    label = "new user" if kind == "new" else "user"
    noun = "like" if kind == "new" else "rating"
    facts = [f"{n_ratings} {noun}{'s' if n_ratings != 1 else ''}"]
    initials = user_id.removeprefix("new-")[:2].upper()
    facts.extend(f"{_e(k)}: {_e(v)}" for k, v in (extra or {}).items() if v not in (None, ""))
    liked = "".join(f"<li>{_e(t)}</li>" for t in list(liked_titles)[:5]) or "<li><i>no likes yet</i></li>"
    genres = _chips(top_genres, limit=5) or '<span class="vt-muted">no genres yet</span>'
    return (
        f'<div class="vt-profile"><div class="vt-profile-head"><span class="vt-avatar">{_e(initials)}</span>'
        f'<div><b>{_e(label)} {_e(user_id)}</b><div class="vt-muted">{" · ".join(facts)}</div></div></div>'
        f'<div class="vt-profile-sec">Top genres</div><div class="vt-genres">{genres}</div>'
        f'<div class="vt-profile-sec">Liked</div><ul class="vt-liked-list">{liked}</ul></div>'
    )


def render_pair_side(label: str, kind: str, src: str | None, text: str | None) -> str:
    """One side of a labeling pair: a cover image (its URL) or a caption, under a big key label ("1" / "2")."""
    if kind == "cover" and src:
        body = f'<img class="vt-pair-img" src="{_e(src)}" alt="{_e("option " + label)}">'
    else:
        body = f'<blockquote class="vt-pair-text">{_e(text or "")}</blockquote>'
    return f'<div class="vt-pair"><div class="vt-key">{_e(label)}</div>{body}</div>'


def labeling_guidelines(ui_words: Mapping[str, str] | None = None) -> str:
    """The Label tab's guidelines (markdown) in the catalogue's words (`Domain.ui_words()`; films by default)."""
    w = {**FILM_WORDS, **(ui_words or {})}
    return f"""
**How to label.** Each pair shows two {w['cover']}s (or two captions) of the same {w['item']}, made for the user
whose profile is on the left. Pick the one **this user** would more likely click, judging by their genres and
liked {w['items']}, not by your own taste.

- **1** - the left one is better for this user · **2** - the right one is better
- **0** - a tie: equally good (or equally bad) · **s** - skip: you cannot judge (broken image, unknown {w['item']})
- **u** - undo your last label (the pair comes back)

Artefacts (garbled text, distorted faces) count against a {w['cover']}. A caption must be about the {w['item']} and
fluent; a caption that invents details is worse than a plain one. Keyboard shortcuts work whenever the
Label tab is open and the cursor is not in a text box.
"""


def render_status(sections: Sequence[tuple[str, Sequence[tuple[str, str, str]]]], read_at: str | None = None) -> str:
    """The status page: sections of (name, value, note) rows; `note` may tell how to enable something. `read_at`:
    when the figures were read (shown first, so nobody takes old counts for current ones)."""
    out = ['<div class="vt-status">']
    if read_at:
        out.append(f'<p class="vt-read-at" id="vt-status-read-at">Read at {_e(read_at)}: this tab reads the counts '
                   "again each time it opens, and at Refresh.</p>")
    for title, rows in sections:
        out.append(f"<h3>{_e(title)}</h3><table>")
        for name, value, note in rows:
            out.append(
                f"<tr><th>{_e(name)}</th><td>{_e(value)}</td><td class='vt-muted'>{_e(note)}</td></tr>"
            )
        out.append("</table>")
    out.append("</div>")
    return "".join(out)


CSS = """
.vt-header {display:flex; align-items:baseline; gap:.8rem; flex-wrap:wrap}
.vt-header h1 {margin:0; font-size:1.7rem; letter-spacing:-.02em}
.vt-header .vt-tag {color:var(--body-text-color-subdued)}
.vt-banner {padding:.5rem .8rem; border-radius:8px; background:#fff7e6; color:#7a4b00; border:1px solid #ffd591;
  font-size:.9rem}
.dark .vt-banner {background:#2b2111; color:#ffd591; border-color:#594214}
.vt-grid {display:grid; grid-template-columns:repeat(auto-fill, minmax(190px, 1fr)); gap:12px; align-items:stretch}
.vt-slot {display:flex; min-width:0}
.vt-card {border:1px solid var(--border-color-primary); border-radius:12px; overflow:hidden; width:100%;
  background:var(--background-fill-primary); display:flex; flex-direction:column}
.vt-card:focus-visible, .vt-act:focus-visible {outline:3px solid var(--color-accent); outline-offset:2px}
.vt-cover {position:relative; aspect-ratio:2/3; background:var(--background-fill-secondary)}
.vt-cover-img {width:100%; height:100%; object-fit:cover; display:block}
.vt-inset {position:absolute; left:8px; bottom:8px; width:28%; aspect-ratio:2/3; object-fit:cover;
  border-radius:6px; border:2px solid var(--background-fill-primary); box-shadow:0 1px 4px rgba(0,0,0,.4)}
.vt-cover-pending {width:100%; height:100%; display:flex; align-items:center; justify-content:center;
  text-align:center; padding:1rem; box-sizing:border-box; font-weight:600; color:var(--body-text-color-subdued);
  background:linear-gradient(100deg, var(--background-fill-secondary) 30%, var(--border-color-primary) 50%,
  var(--background-fill-secondary) 70%); background-size:300% 100%; animation:vt-shimmer 1.4s infinite linear}
@keyframes vt-shimmer {from {background-position:100% 0} to {background-position:0 0}}
.vt-flag {position:absolute; top:8px; right:8px; font-size:.7rem; padding:2px 6px; border-radius:6px;
  background:rgba(0,0,0,.6); color:#fff; text-transform:uppercase; letter-spacing:.05em}
.vt-flag-inline {font-size:.7rem; padding:0 4px; border-radius:4px; background:var(--background-fill-secondary);
  color:var(--body-text-color-subdued)}
.vt-body {padding:.6rem .75rem .4rem; flex:1 1 auto}
.vt-title {font-weight:650; font-size:1rem; line-height:1.25; overflow-wrap:anywhere}
.vt-year {font-weight:400; color:var(--body-text-color-subdued)}
.vt-liked {color:#e0245e}
.vt-genres {display:flex; flex-wrap:wrap; gap:4px; margin:.35rem 0}
.vt-chip {font-size:.72rem; padding:1px 8px; border-radius:999px; background:var(--color-accent-soft);
  color:var(--body-text-color)}
.vt-caption {font-style:italic; margin:.3rem 0; font-size:.88rem; line-height:1.35; overflow-wrap:anywhere}
.vt-pending {color:var(--body-text-color-subdued)}
.vt-why {margin:.3rem 0; font-size:.8rem; line-height:1.3; color:var(--body-text-color-subdued); overflow-wrap:anywhere}
.vt-meta {font-size:.72rem; color:var(--body-text-color-subdued)}
.vt-muted {color:var(--body-text-color-subdued); font-size:.85rem}
.vt-actions {display:flex; gap:6px; padding:0 .75rem .7rem; flex-wrap:wrap}
.vt-act {flex:1 1 0; min-width:0; height:2.1rem; margin:0; padding:0 .2rem; border-radius:8px; font-size:.85rem;
  line-height:1; white-space:nowrap; cursor:pointer; border:1px solid var(--border-color-primary);
  background:var(--background-fill-secondary); color:var(--body-text-color)}
.vt-act:hover {background:var(--color-accent-soft)}
.vt-act-undo {border-color:var(--color-accent)}
.vt-removed {opacity:.85; border-style:dashed}
.vt-keys {font-size:.8rem; color:var(--body-text-color-subdued); margin:.2rem 0 .4rem}
.vt-keys kbd {font-family:var(--font-mono); font-size:.75rem; padding:0 5px; border-radius:4px;
  border:1px solid var(--border-color-primary); background:var(--background-fill-secondary)}
@media (max-width: 560px) {  /* a phone: one card per row, the cover beside the text */
  .vt-grid {grid-template-columns:1fr}
  .vt-card {display:grid; grid-template-columns:38% 1fr; grid-template-rows:auto auto}
  .vt-card .vt-cover {grid-column:1; grid-row:1}
  .vt-card .vt-body {grid-column:2; grid-row:1; padding:.5rem .6rem .3rem}
  .vt-card .vt-actions {grid-column:1 / -1; grid-row:2; padding:.5rem .6rem .6rem}
  .vt-removed {display:flex}
}
.vt-read-at {font-size:.8rem; color:var(--body-text-color-subdued)}
.vt-profile {border:1px solid var(--border-color-primary); border-radius:12px; padding:.7rem .8rem}
.vt-profile-head {display:flex; gap:.6rem; align-items:center}
.vt-avatar {width:36px; height:36px; border-radius:50%; display:flex; align-items:center; justify-content:center;
  background:var(--color-accent); color:#fff; font-weight:700}
.vt-profile-sec {margin-top:.5rem; font-size:.75rem; text-transform:uppercase; letter-spacing:.06em;
  color:var(--body-text-color-subdued)}
.vt-liked-list {margin:.2rem 0 0 1.1rem; padding:0; font-size:.88rem}
.vt-detail {display:flex; gap:1rem; align-items:flex-start; border:1px solid var(--border-color-primary);
  border-radius:12px; padding:.8rem}
.vt-detail-img {width:160px; border-radius:8px}
.vt-detail h3 {margin:0 0 .3rem}
.vt-pair {border:1px solid var(--border-color-primary); border-radius:12px; padding:.6rem; text-align:center}
.vt-pair-img {max-width:100%; max-height:420px; border-radius:8px}
.vt-pair-text {font-size:1.05rem; font-style:italic; margin:.5rem; text-align:left}
.vt-key {font-size:1.6rem; font-weight:800; color:var(--color-accent)}
.vt-status table {border-collapse:collapse; width:100%; margin-bottom:1rem; table-layout:fixed; border:none !important}
.vt-status th, .vt-status td {padding:5px 10px !important; border:none !important;
  border-bottom:1px solid var(--border-color-primary) !important; vertical-align:top; background:transparent !important}
.vt-status th {text-align:left; width:20%; font-weight:600}
.vt-status td:nth-child(2) {width:25%}
.vt-status h3 {margin:1rem 0 .3rem}
.vt-progress {font-size:.95rem}
"""
