"""A user's taste, distilled from their history, in the spirit of PMG (Shen et al., WWW 2024).

PMG turns a user's history into preference keywords and conditions a diffusion model on them. Here the
keywords come from what the user liked (rated at or above `like_threshold`, or liked without a rating):
the visual style words of their favourite genres, the content words of the items they liked, and the
phrases of cover prompts they preferred in A/B comparisons. Recent items count more (a half-life in
items, not seconds, so the scale of timestamps does not matter).

    profile = build_profile("196", history_rows, preferred_prompts=["... warm sunny colors ..."])
    profile.keywords   # ['warm sunny colors', 'playful mood', 'cosmic vistas', ...]
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real

from generation.errors import invalid

# Visual style words per genre: what a poster for a fan of that genre tends to look like.
# Keys are normalised genre names (lowercase, letters and digits only), see `genre_key`.
GENRE_STYLES: dict[str, tuple[str, ...]] = {
    "action": ("dynamic motion", "explosive energy"),
    "adventure": ("sweeping landscapes", "epic scale"),
    "animation": ("vibrant cel-shaded colors", "playful shapes"),
    "childrens": ("bright cheerful palette", "storybook whimsy"),
    "comedy": ("warm sunny colors", "playful mood"),
    "crime": ("gritty city at night", "hard shadows"),
    "documentary": ("naturalistic photography", "candid framing"),
    "drama": ("soft dramatic lighting", "intimate mood"),
    "fantasy": ("magical glow", "mythic atmosphere"),
    "filmnoir": ("high-contrast black and white", "venetian blind shadows"),
    "horror": ("eerie darkness", "unsettling fog"),
    "musical": ("stage spotlights", "rhythmic color"),
    "mystery": ("moody shadows", "hidden clues"),
    "romance": ("soft golden light", "tender pastel tones"),
    "scifi": ("futuristic neon", "cosmic vistas"),
    "thriller": ("tense cold tones", "stark contrast"),
    "war": ("smoky battlefield haze", "desaturated tones"),
    "western": ("dusty desert sunset", "wide frontier horizon"),
}
_GENRE_ALIASES = {"sciencefiction": "scifi", "children": "childrens", "family": "childrens", "noir": "filmnoir"}

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he
    her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor
    not now of off on once only or other our ours ourselves out over own same she should so some such than that
    the their theirs them themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself yourselves film films
    movie movies story genre genres year years new one two three man woman life world come comes goes gets
    make makes take takes find finds must every never where""".split()
)

LIKE_THRESHOLD = 4.0  # ratings at or above count as liked (MovieLens: 1-5 stars)
RECENCY_HALF_LIFE = 10.0  # an item ten positions older than the newest weighs half as much
PREFERRED_PROMPT_WEIGHT = 1.5  # a phrase of a preferred cover prompt weighs this much per prompt
MAX_KEYWORDS = 8  # enough to steer a prompt, few enough to fit CLIP's 77 tokens with the item's content
MAX_LIKED_TITLES = 10
# Phrases every cover prompt ends with (generation.prompts): they carry no signal about a user's taste.
QUALITY_PHRASES = ("cinematic composition", "highly detailed")


def genre_key(genre: str) -> str:
    """'Sci-Fi' -> 'scifi', "Children's" -> 'childrens': the key into GENRE_STYLES."""
    key = re.sub(r"[^a-z0-9]", "", genre.lower())
    return _GENRE_ALIASES.get(key, key)


def genre_styles(genre: str) -> tuple[str, ...]:
    """The style words of a genre; () for a genre without any (e.g. ml-100k's 'unknown')."""
    return GENRE_STYLES.get(genre_key(genre), ())


def content_words(text: str, exclude: set[str] | frozenset[str] = frozenset(), limit: int | None = None) -> list[str]:
    """Distinct lowercase content words of `text` in order of appearance (no stopwords, digits or `exclude`)."""
    words: list[str] = []
    for word in re.findall(r"[^\W\d_]+(?:['-][^\W\d_]+)*", text.lower()):
        if len(word) < 4 or word in STOPWORDS or word in exclude or genre_key(word) in GENRE_STYLES:
            continue
        if word not in words:
            words.append(word)
            if limit is not None and len(words) >= limit:
                break
    return words


@dataclass
class UserProfile:
    """What the generators know about a user: plain data, built by `build_profile` (or by hand in tests)."""

    user_id: str
    liked_titles: list[str] = field(default_factory=list)  # newest first
    top_genres: list[str] = field(default_factory=list)  # most liked first, as spelled in the data
    keywords: list[str] = field(default_factory=list)  # preference keywords, strongest first
    preferred_prompts: list[str] = field(default_factory=list)  # prompts of covers the user preferred

    def __post_init__(self) -> None:
        if not isinstance(self.user_id, str) or not self.user_id:
            raise invalid("UserProfile.user_id", "a non-empty string", self.user_id)
        for name in ("liked_titles", "top_genres", "keywords", "preferred_prompts"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise invalid(f"UserProfile.{name}", "a list of strings", value)

    @property
    def is_empty(self) -> bool:
        """True when there is nothing to personalize with (a cold-start user)."""
        return not (self.keywords or self.top_genres)


def _check_row(i: int, row: object) -> tuple[str, str, str, list[str], float | None, int | None]:
    if not isinstance(row, Mapping):
        raise invalid(f"history[{i}]", "a mapping with item_id, title, text, genres, rating, timestamp", row)
    item_id = row.get("item_id")
    if not isinstance(item_id, str) or not item_id:
        raise invalid(f"history[{i}]['item_id']", "a non-empty string", item_id)
    title = row.get("title") or ""
    text = row.get("text") or ""
    if not isinstance(title, str):
        raise invalid(f"history[{i}]['title']", "a string", title)
    if not isinstance(text, str):
        raise invalid(f"history[{i}]['text']", "a string", text)
    genres = row.get("genres") or []
    if isinstance(genres, str) or not all(isinstance(g, str) for g in genres):
        raise invalid(f"history[{i}]['genres']", "a list of strings", genres)
    rating = row.get("rating")
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, Real) or math.isnan(float(rating)):
            raise invalid(f"history[{i}]['rating']", "a number or None", rating)
        rating = float(rating)
    timestamp = row.get("timestamp")
    if timestamp is not None:
        if isinstance(timestamp, bool) or not isinstance(timestamp, Real) or math.isnan(float(timestamp)):
            raise invalid(f"history[{i}]['timestamp']", "a unix time in seconds (int) or None", timestamp)
        timestamp = int(timestamp)
    return item_id, title, text, list(genres), rating, timestamp


def prompt_phrases(prompt: str) -> list[str]:
    """The comma-separated phrases of a cover prompt, minus its subject (the part naming the film)."""
    phrases = [p.strip().lower() for p in prompt.split(",")]
    return [p for p in phrases if p and '"' not in p and len(p.split()) <= 5]


def build_profile(
    user_id: str,
    history: Sequence[Mapping],
    preferred_prompts: Sequence[str] = (),
    like_threshold: float = LIKE_THRESHOLD,
    max_keywords: int = MAX_KEYWORDS,
) -> UserProfile:
    """Distil a user's history into a `UserProfile`.

    history rows: {"item_id", "title", "text", "genres": list[str], "year", "rating": float|None,
    "timestamp": int|None}. A row counts as liked when its rating is at least `like_threshold` or it has no
    rating (an implicit like, e.g. a click on "like"). Weight of a liked row: (rating - threshold + 1) or 1,
    times 0.5 ** (recency rank / RECENCY_HALF_LIFE); rows without a timestamp count as older than any with one,
    and among themselves later rows are newer.
    """
    if not isinstance(user_id, str) or not user_id:
        raise invalid("user_id", "a non-empty string", user_id)
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise invalid("history", "a list of dict rows", history)
    if isinstance(preferred_prompts, str) or not all(isinstance(p, str) for p in preferred_prompts):
        raise invalid("preferred_prompts", "a sequence of strings", preferred_prompts)
    if not isinstance(max_keywords, int) or max_keywords < 0:
        raise invalid("max_keywords", "an int >= 0", max_keywords)

    rows = [_check_row(i, row) for i, row in enumerate(history)]
    # newest first: by timestamp (missing = oldest), then by position in the list (later = newer)
    order = sorted(
        range(len(rows)),
        key=lambda i: (rows[i][5] if rows[i][5] is not None else -math.inf, i),
        reverse=True,
    )
    genre_score: dict[str, float] = {}
    genre_name: dict[str, str] = {}
    word_score: dict[str, float] = {}
    liked_titles: list[str] = []
    rank = 0
    for i in order:
        _, title, text, genres, rating, _ = rows[i]
        if rating is not None and rating < like_threshold:
            continue
        weight = (rating - like_threshold + 1.0 if rating is not None else 1.0) * 0.5 ** (rank / RECENCY_HALF_LIFE)
        rank += 1
        if title and title not in liked_titles and len(liked_titles) < MAX_LIKED_TITLES:
            liked_titles.append(title)
        for genre in dict.fromkeys(genres):
            key = genre_key(genre)
            if key in ("", "unknown"):
                continue
            genre_score[key] = genre_score.get(key, 0.0) + weight
            genre_name.setdefault(key, genre)
        title_words = set(content_words(title))
        for word in content_words(text, exclude=title_words, limit=6):
            word_score[word] = word_score.get(word, 0.0) + 0.5 * weight

    ranked_genres = sorted(genre_score, key=lambda k: (-genre_score[k], k))
    top_genres = [genre_name[k] for k in ranked_genres[:3]]

    scores: dict[str, float] = {}
    for key in ranked_genres[:3]:
        for style in GENRE_STYLES.get(key, ()):
            scores[style] = scores.get(style, 0.0) + genre_score[key]
    for word, score in word_score.items():
        if score >= 1.0:  # a content word counts once it recurs (or comes from a loved, recent item)
            scores[word] = scores.get(word, 0.0) + score
    for prompt in preferred_prompts:
        for phrase in prompt_phrases(prompt):
            if phrase in QUALITY_PHRASES:
                continue
            scores[phrase] = scores.get(phrase, 0.0) + PREFERRED_PROMPT_WEIGHT
    keywords = sorted(scores, key=lambda k: (-scores[k], k))[:max_keywords]
    return UserProfile(
        user_id=user_id,
        liked_titles=liked_titles,
        top_genres=top_genres,
        keywords=keywords,
        preferred_prompts=list(preferred_prompts),
    )
