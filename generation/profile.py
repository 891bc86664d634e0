"""A user's taste, distilled from their history, in the spirit of PMG (Shen et al., WWW 2024).

PMG turns a user's history into preference keywords and conditions a diffusion model on them. Here the
keywords come from what the user liked (rated at or above `like_threshold`, or liked without a rating):

- named by the caption LLM when one is loaded (PMG's way: `CaptionGenerator.preference_keywords`, passed in
  as `llm_keywords`), topped up by
- TF-IDF keyphrases (words and two-word phrases) of the liked items' text, weighted by how much and how
  recently each item was liked, with inverse document frequencies over the catalogue (`KeyphraseIndex`);
- the style words the dataset's domain declares for the user's favourite genres (data, e.g. the film
  domain's poster styles; a domain without hints uses the genre names themselves);
- the phrases of cover prompts they preferred in A/B comparisons.

Recent items count more (a half-life in items, not seconds, so the scale of timestamps does not matter).

    index = KeyphraseIndex(dataset.items["text"])                      # once, at start
    profile = build_profile("196", history_rows, corpus=index, domain=FILM)
    profile.keywords   # ['warm sunny colors', 'playful mood', 'cosmic vistas', ...]
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real

from generation.domain import FILM, FILM_STYLE_HINTS, Domain, genre_key
from generation.errors import invalid
from generation.titles import natural_title

# The film domain's style hints, kept under their old name (MovieLens genres -> poster styles); other domains
# carry their own (or none) in `generation.domain.Domain.style_hints`.
GENRE_STYLES = FILM_STYLE_HINTS

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


_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")


def _is_content(word: str, exclude: frozenset[str] | set[str], domain: Domain) -> bool:
    return not (len(word) < 4 or word in STOPWORDS or word in domain.stopwords or word in exclude
                or genre_key(word) in domain.style_hints)


def content_words(text: str, exclude: set[str] | frozenset[str] = frozenset(), limit: int | None = None,
                  domain: Domain = FILM) -> list[str]:
    """Distinct lowercase content words of `text` in order of appearance (no stopwords, digits, the domain's
    own words, genres it has style hints for, or `exclude`)."""
    words: list[str] = []
    for word in _WORD.findall(text.lower()):
        if not _is_content(word, exclude, domain):
            continue
        if word not in words:
            words.append(word)
            if limit is not None and len(words) >= limit:
                break
    return words


def keyphrases(text: str, exclude: set[str] | frozenset[str] = frozenset(), domain: Domain = FILM) -> list[str]:
    """Distinct candidate keyphrases of `text`: its content words and each pair of adjacent content words
    (a two-word phrase, e.g. "galactic empire"), in order of appearance."""
    out: list[str] = []
    previous: str | None = None
    for token in re.findall(r"[^\W\d_]+(?:['-][^\W\d_]+)*|[^\w\s]", text.lower()):
        if not _WORD.fullmatch(token) or not _is_content(token, exclude, domain):
            previous = None  # punctuation or a stopword breaks a phrase
            continue
        for phrase in ((f"{previous} {token}",) if previous else ()) + (token,):
            if phrase not in out:
                out.append(phrase)
        previous = token
    return out


class KeyphraseIndex:
    """Document frequencies of keyphrases over a catalogue's item texts: the IDF of TF-IDF.

    `weight(phrase)` is idf(phrase) / the largest idf, in (0, 1]: a phrase that appears in few items counts
    fully, one that appears in every item barely. Built once per catalogue (milliseconds for thousands of items).
    """

    def __init__(self, texts, domain: Domain = FILM) -> None:
        self.domain = domain
        self.n_docs = 0
        self.df: dict[str, int] = {}
        for text in texts:
            self.n_docs += 1
            for phrase in keyphrases(str(text or ""), domain=domain):
                self.df[phrase] = self.df.get(phrase, 0) + 1
        self._max_idf = self.idf("\x00")  # an unseen phrase has the largest idf

    def idf(self, phrase: str) -> float:
        """Smoothed inverse document frequency: ln((1 + N) / (1 + df)) + 1."""
        return math.log((1 + self.n_docs) / (1 + self.df.get(phrase, 0))) + 1.0

    def weight(self, phrase: str) -> float:
        return self.idf(phrase) / self._max_idf


@dataclass
class UserProfile:
    """What the generators know about a user: plain data, built by `build_profile` (or by hand in tests)."""

    user_id: str
    liked_titles: list[str] = field(default_factory=list)  # newest first
    top_genres: list[str] = field(default_factory=list)  # most liked first, as spelled in the data
    keywords: list[str] = field(default_factory=list)  # preference keywords, strongest first
    preferred_prompts: list[str] = field(default_factory=list)  # prompts of covers the user preferred
    keyword_source: str = "tfidf"  # "llm" when the caption LLM named the leading keywords, else "tfidf"

    def __post_init__(self) -> None:
        if not isinstance(self.user_id, str) or not self.user_id:
            raise invalid("UserProfile.user_id", "a non-empty string", self.user_id)
        if self.keyword_source not in ("llm", "tfidf"):
            raise invalid("UserProfile.keyword_source", "'llm' or 'tfidf'", self.keyword_source)
        for name in ("liked_titles", "top_genres", "keywords", "preferred_prompts"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise invalid(f"UserProfile.{name}", "a list of strings", value)

    @property
    def is_empty(self) -> bool:
        """True when there is nothing to personalize with (a cold-start user)."""
        return not (self.keywords or self.top_genres)

    @functools.cached_property
    def liked_names(self) -> list[str]:
        """`liked_titles` as a person writes them (`natural_title`: "Lion King, The" -> "The Lion King"), made
        once per profile: what captions and prompts say."""
        return [natural_title(t) for t in self.liked_titles]


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


def _without_overlap(ranked: list[str], limit: int) -> list[str]:
    """The first `limit` distinct keywords of `ranked`, skipping a word that a kept two-word phrase already
    says and a two-word phrase whose both words are already kept."""
    kept: list[str] = []
    words: set[str] = set()
    pairs: set[str] = set()
    for phrase in ranked:
        if len(kept) >= limit:
            break
        parts = phrase.split()
        if phrase in kept or (len(parts) == 1 and phrase in pairs) or (len(parts) == 2 and set(parts) <= words):
            continue
        kept.append(phrase)
        if len(parts) == 1:
            words.add(phrase)
        elif len(parts) == 2:
            pairs.update(parts)
    return kept


def build_profile(
    user_id: str,
    history: Sequence[Mapping],
    preferred_prompts: Sequence[str] = (),
    like_threshold: float = LIKE_THRESHOLD,
    max_keywords: int = MAX_KEYWORDS,
    domain: Domain = FILM,
    corpus: KeyphraseIndex | None = None,
    llm_keywords: Sequence[str] = (),
) -> UserProfile:
    """Distil a user's history into a `UserProfile`.

    history rows: {"item_id", "title", "text", "genres": list[str], "year", "rating": float|None,
    "timestamp": int|None}. A row counts as liked when its rating is at least `like_threshold` or it has no
    rating (an implicit like, e.g. a click on "like"). Weight of a liked row: (rating - threshold + 1) or 1,
    times 0.5 ** (recency rank / RECENCY_HALF_LIFE); rows without a timestamp count as older than any with one,
    and among themselves later rows are newer.

    Keywords, strongest first: `llm_keywords` (named by the caption LLM, when given), then by score: a
    keyphrase of the liked items' text scores 0.5 x the sum of its items' weights x its IDF weight over
    `corpus` (1 without a corpus) and counts once it recurs (in two liked items, or one when only one was
    liked); a favourite genre's style words (from `domain`, or the genre's own name when the domain declares
    none) score the genre's weight; a phrase of a preferred cover prompt scores PREFERRED_PROMPT_WEIGHT.
    """
    if not isinstance(user_id, str) or not user_id:
        raise invalid("user_id", "a non-empty string", user_id)
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise invalid("history", "a list of dict rows", history)
    if isinstance(preferred_prompts, str) or not all(isinstance(p, str) for p in preferred_prompts):
        raise invalid("preferred_prompts", "a sequence of strings", preferred_prompts)
    if not isinstance(max_keywords, int) or max_keywords < 0:
        raise invalid("max_keywords", "an int >= 0", max_keywords)
    if not isinstance(domain, Domain):
        raise invalid("domain", "a generation.domain.Domain", domain)
    if corpus is not None and not isinstance(corpus, KeyphraseIndex):
        raise invalid("corpus", "a generation.profile.KeyphraseIndex or None", corpus)
    if isinstance(llm_keywords, str) or not all(isinstance(k, str) and k.strip() for k in llm_keywords):
        raise invalid("llm_keywords", "a sequence of non-empty strings", llm_keywords)

    rows = [_check_row(i, row) for i, row in enumerate(history)]
    # newest first: by timestamp (missing = oldest), then by position in the list (later = newer)
    order = sorted(
        range(len(rows)),
        key=lambda i: (rows[i][5] if rows[i][5] is not None else -math.inf, i),
        reverse=True,
    )
    genre_score: dict[str, float] = {}
    genre_name: dict[str, str] = {}
    phrase_score: dict[str, float] = {}
    phrase_items: dict[str, int] = {}
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
        title_words = set(content_words(title, domain=domain))
        genre_words = {g.lower() for g in genres}
        for phrase in keyphrases(text, exclude=title_words | genre_words, domain=domain)[:12]:
            idf = corpus.weight(phrase) if corpus is not None else 1.0
            phrase_score[phrase] = phrase_score.get(phrase, 0.0) + 0.5 * weight * idf
            phrase_items[phrase] = phrase_items.get(phrase, 0) + 1

    ranked_genres = sorted(genre_score, key=lambda k: (-genre_score[k], k))
    top_genres = [genre_name[k] for k in ranked_genres[:3]]

    scores: dict[str, float] = {}
    for key in ranked_genres[:3]:
        styles = domain.style_hints.get(key, ()) or (genre_name[key].lower(),)
        for style in styles:
            scores[style] = scores.get(style, 0.0) + genre_score[key]
    recur = 2 if rank >= 2 else 1
    for phrase, score in phrase_score.items():
        if phrase_items[phrase] >= recur:  # a keyphrase counts once it recurs
            scores[phrase] = scores.get(phrase, 0.0) + score
    for prompt in preferred_prompts:
        for phrase in prompt_phrases(prompt):
            if phrase in QUALITY_PHRASES or phrase in domain.quality:
                continue
            scores[phrase] = scores.get(phrase, 0.0) + PREFERRED_PROMPT_WEIGHT
    ranked = sorted(scores, key=lambda k: (-scores[k], k))
    named = list(dict.fromkeys(k.strip().lower() for k in llm_keywords))
    keywords = _without_overlap([*named, *ranked], max_keywords)
    return UserProfile(
        user_id=user_id,
        liked_titles=liked_titles,
        top_genres=top_genres,
        keywords=keywords,
        preferred_prompts=list(preferred_prompts),
        keyword_source="llm" if named else "tfidf",
    )
