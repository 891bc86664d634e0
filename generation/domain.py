"""The words a catalogue's domain puts into prompts, captions, templates, labeling guidelines and the UI.

A dataset declares its domain as plain data (`recommenders.data.Dataset.domain`, read from `dataset.yaml` or
a `domain` column): `{"domain": "book", "noun": "novel", "style_hints": {"Fantasy": ["magical glow"]}}`.
`Domain.from_spec` turns it into this value; nothing else in the package assumes films.

    domain = Domain.from_spec({"domain": "book"})
    domain.subject("Dune", 1965)      # 'cover art for the book "Dune" (1965)'
    domain.system_prompt()            # "... telling a reader why a book suits them. ..."
    FILM.subject("Toy Story", 1995)   # 'poster art for the film "Toy Story" (1995)'  (MovieLens, as before)

Style hints (a genre's visual style words) are data too: the film domain carries the table the project
has always used for MovieLens genres; another domain has none unless its dataset declares some. Preference
keywords themselves come from the user's liked items (`generation.profile`), not from such a table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from generation.errors import invalid

DOMAINS = ("film", "book", "product", "music", "article", "generic")

# The film domain's style hints: what a poster for a fan of a MovieLens genre tends to look like.
# Keys are normalised genre names (lowercase, letters and digits only), see `genre_key`.
FILM_STYLE_HINTS: dict[str, tuple[str, ...]] = {
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


def genre_key(genre: str) -> str:
    """'Sci-Fi' -> 'scifi', "Children's" -> 'childrens': the key into a domain's style hints."""
    key = re.sub(r"[^a-z0-9]", "", genre.lower())
    return _GENRE_ALIASES.get(key, key)


def with_article(word: str) -> str:
    """'a book', 'an article'."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


@dataclass(frozen=True)
class Domain:
    """What one item is called, and how prompts, captions and the UI speak about it."""

    name: str  # one of DOMAINS
    noun: str  # "film", "book", "product", "song", "article", "item"
    plural: str
    subject_template: str  # the cover prompt's subject: {noun}, {title}, {year} (" (1995)" or "")
    quality: tuple[str, ...]  # the phrases every cover prompt ends with (no signal about a user's taste)
    audience: str  # who a caption speaks to: "viewer", "reader", "shopper", "listener"
    worth: str  # "worth watching", "worth reading", ...
    genre_phrase: str  # a template caption's kind of item: {a_noun}, {noun}, {genres}
    cover_noun: str = "cover"  # what the UI calls the generated picture
    style_hints: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # genre_key -> style words
    stopwords: frozenset[str] = frozenset()  # the domain's own words: never a preference keyword

    @classmethod
    def from_spec(cls, spec: Mapping | str | None) -> "Domain":
        """The domain a dataset declares: {"domain": name, optional "noun", "plural", "style_hints"} or a name;
        None is the generic domain."""
        if spec is None:
            return GENERIC
        if isinstance(spec, str):
            spec = {"domain": spec}
        if not isinstance(spec, Mapping):
            raise invalid("spec", "a mapping with a 'domain' key, a domain name or None", spec)
        name = spec.get("domain", "generic")
        if name not in PRESETS:
            raise invalid("spec['domain']", f"one of {list(DOMAINS)}", name)
        domain = PRESETS[name]
        changes: dict = {}
        noun = spec.get("noun")
        if noun is not None:
            if not isinstance(noun, str) or not re.fullmatch(r"[A-Za-z][A-Za-z' -]{0,30}", noun.strip()):
                raise invalid("spec['noun']", "a short word", noun)
            changes["noun"] = noun.strip().lower()
            changes["plural"] = changes["noun"] + "s"
            changes["stopwords"] = domain.stopwords | {changes["noun"], changes["plural"]}
        plural = spec.get("plural")
        if plural is not None:
            if not isinstance(plural, str) or not plural.strip():
                raise invalid("spec['plural']", "a short word", plural)
            changes["plural"] = plural.strip().lower()
            changes["stopwords"] = changes.get("stopwords", domain.stopwords) | {changes["plural"]}
        hints = spec.get("style_hints")
        if hints is not None:
            if not isinstance(hints, Mapping):
                raise invalid("spec['style_hints']", "a mapping genre -> list of style words", hints)
            merged = dict(domain.style_hints)
            for genre, words in hints.items():
                words = [words] if isinstance(words, str) else words
                if not all(isinstance(w, str) and w.strip() for w in words):
                    raise invalid(f"spec['style_hints'][{genre!r}]", "a list of words", words)
                merged[genre_key(str(genre))] = tuple(w.strip() for w in words)
            changes["style_hints"] = merged
        return replace(domain, **changes) if changes else domain

    # -- prompts ---------------------------------------------------------------------------------------
    def subject(self, title: str, year: int | None = None) -> str:
        """The cover prompt's subject, naming the item: 'poster art for the film "Toy Story" (1995)'."""
        title = title.replace('"', "'").strip()
        return self.subject_template.format(noun=self.noun, title=title,
                                            year=f" ({year})" if year is not None else "")

    def styles(self, genre: str) -> tuple[str, ...]:
        """The style words the domain declares for `genre` (() when it declares none)."""
        return tuple(self.style_hints.get(genre_key(genre), ()))

    # -- captions --------------------------------------------------------------------------------------
    def system_prompt(self) -> str:
        """The caption LLM's system prompt."""
        return (
            f"You write one or two short sentences telling {with_article(self.audience)} why "
            f"{with_article(self.noun)} suits them. Speak to the {self.audience} as 'you'. Use only the facts "
            "given. Plain text only: no lists, no markdown, no emoji."
        )

    def keyword_system_prompt(self) -> str:
        """The system prompt of the LLM that names a user's preferences as keywords (PMG's first step)."""
        return (
            f"You name what {with_article(self.audience)} likes in {self.plural} as short keywords for an "
            "illustrator: visual style, mood and themes. Answer with keywords separated by commas, nothing else."
        )

    def kind_of(self, genres: str) -> str:
        """A template caption's description of the item: 'a film of comedy and drama'."""
        return self.genre_phrase.format(a_noun=with_article(self.noun), noun=self.noun, genres=genres)

    # -- the UI ----------------------------------------------------------------------------------------
    def ui_words(self) -> dict[str, str]:
        """Words the UI uses: item, items, Item, Items, cover, audience."""
        return {"item": self.noun, "items": self.plural, "Item": self.noun.capitalize(),
                "Items": self.plural.capitalize(), "cover": self.cover_noun, "audience": self.audience}


_COMMON_STOP = frozenset({"item", "items"})
FILM = Domain(
    name="film", noun="film", plural="films",
    subject_template='poster art for the {noun} "{title}"{year}',
    quality=("cinematic composition", "highly detailed"),
    audience="viewer", worth="worth watching", genre_phrase="{a_noun} of {genres}",
    style_hints=FILM_STYLE_HINTS,
    stopwords=_COMMON_STOP | {"film", "films", "movie", "movies", "cinema"},
)
BOOK = Domain(
    name="book", noun="book", plural="books",
    subject_template='cover art for the {noun} "{title}"{year}',
    quality=("book cover illustration", "highly detailed"),
    audience="reader", worth="worth reading", genre_phrase="{a_noun} of {genres}",
    stopwords=_COMMON_STOP | {"book", "books", "novel", "novels", "author", "read", "reading"},
)
PRODUCT = Domain(
    name="product", noun="product", plural="products",
    subject_template='studio photograph of the {noun} "{title}"{year}',
    quality=("studio lighting", "highly detailed"),
    audience="shopper", worth="worth a look", genre_phrase="{a_noun} in the {genres} range",
    cover_noun="picture",
    stopwords=_COMMON_STOP | {"product", "products", "buy", "price"},
)
MUSIC = Domain(
    name="music", noun="song", plural="songs",
    subject_template='album cover art for the {noun} "{title}"{year}',
    quality=("album artwork", "highly detailed"),
    audience="listener", worth="worth a listen", genre_phrase="{a_noun} in the {genres} vein",
    stopwords=_COMMON_STOP | {"song", "songs", "track", "tracks", "album", "albums", "music"},
)
ARTICLE = Domain(
    name="article", noun="article", plural="articles",
    subject_template='editorial illustration for the {noun} "{title}"{year}',
    quality=("editorial illustration", "highly detailed"),
    audience="reader", worth="worth reading", genre_phrase="{a_noun} on {genres}",
    cover_noun="illustration",
    stopwords=_COMMON_STOP | {"article", "articles", "read", "reading"},
)
GENERIC = Domain(
    name="generic", noun="item", plural="items",
    subject_template='cover art for "{title}"{year}',
    quality=("clean composition", "highly detailed"),
    audience="visitor", worth="worth a look", genre_phrase="{a_noun} of {genres}",
    stopwords=_COMMON_STOP,
)
PRESETS: dict[str, Domain] = {d.name: d for d in (FILM, BOOK, PRODUCT, MUSIC, ARTICLE, GENERIC)}
