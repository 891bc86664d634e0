"""Cover prompts that mix an item's own content with a user's preferences (PMG's alpha).

    item = ItemInfo("1", "Toy Story", 1995, ["Animation", "Children's", "Comedy"], "toys come alive")
    build_prompt(item, None).text
    # 'poster art for the film "Toy Story" (1995), vibrant cel-shaded colors, bright cheerful palette,
    #  warm sunny colors, toys, alive, cinematic composition, highly detailed'
    build_prompt(item, profile, alpha=0.5)   # half the item's phrases, half the user's keywords

The words come from the catalogue's domain (`generation.domain.Domain`: the subject 'poster art for the
film ...' for MovieLens, 'cover art for the book ...' for a book catalogue, the closing quality phrases, the
style hints of genres); `domain` defaults to the film domain, the one MovieLens declares.

alpha = 0 gives the generic prompt (the same text for every user), alpha = 1 keeps only the subject (title,
year) and the strongest item phrase from the item and fills the rest with the user's keywords. In between,
the share of each side follows alpha, and the side with the larger weight comes first (CLIP attends more
to early tokens). Prompts stay short enough for CLIP's 77 tokens and readable, because they are stored
with every asset and shown to annotators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral, Real

from generation.domain import FILM, Domain
from generation.errors import invalid
from generation.profile import QUALITY_PHRASES, UserProfile, content_words
from generation.titles import INVERTED_ARTICLES, natural_title  # noqa: F401 - re-exported

NEGATIVE_PROMPT = "text, letters, watermark, signature, logo, blurry, low quality, deformed"
QUALITY = QUALITY_PHRASES
MAX_ITEM_PHRASES = 5  # style words of up to three genres plus a few content words
MAX_PREF_PHRASES = 6  # the user's strongest keywords


@dataclass
class ItemInfo:
    """The item a cover or caption is made for; the app builds it from a recommenders Dataset row."""

    item_id: str
    title: str
    year: int | None = None
    genres: list[str] = field(default_factory=list)
    text: str = ""
    image: str | None = None  # the item's own picture (a file path), when the catalogue has one

    def __post_init__(self) -> None:
        if not isinstance(self.item_id, str) or not self.item_id:
            raise invalid("ItemInfo.item_id", "a non-empty string", self.item_id)
        if not isinstance(self.title, str) or not self.title.strip():
            raise invalid("ItemInfo.title", "a non-empty string", self.title)
        if self.year is not None:
            if isinstance(self.year, bool) or not isinstance(self.year, Integral):
                raise invalid("ItemInfo.year", "an int or None", self.year)
            self.year = int(self.year)  # numpy / pandas integers become plain ints
        if isinstance(self.genres, str) or not all(isinstance(g, str) for g in self.genres):
            raise invalid("ItemInfo.genres", "a list of strings", self.genres)
        self.genres = list(self.genres)
        if not isinstance(self.text, str):
            raise invalid("ItemInfo.text", "a string", self.text)
        if self.image is not None and (not isinstance(self.image, str) or not self.image):
            raise invalid("ItemInfo.image", "a file path (str) or None", self.image)

    @property
    def label(self) -> str:
        """'Toy Story (1995)' or just the title when the year is unknown."""
        return f"{self.title} ({self.year})" if self.year is not None else self.title

    @property
    def name(self) -> str:
        """The title as a person writes it (`natural_title`): what captions call the item."""
        return natural_title(self.title)


@dataclass(frozen=True)
class Prompt:
    """A diffusion prompt and where it came from."""

    text: str
    negative: str
    keywords: list[str]  # the user's keywords that made it into `text` ([] when generic)
    personalized: bool  # True when at least one user keyword is in `text`
    alpha: float = 0.0  # the weight of the user's preferences that produced it
    item_phrases: list[str] = field(default_factory=list)  # the item's own phrases in `text`


def item_phrases(item: ItemInfo, domain: Domain = FILM) -> list[str]:
    """The item's own content as prompt phrases: its genres' first style words (those `domain` declares), then
    content words of its text."""
    phrases: list[str] = []
    for genre in item.genres[:3]:
        for style in domain.styles(genre)[:1]:
            if style not in phrases:
                phrases.append(style)
    title_words = set(content_words(item.title, domain=domain)) | {g.lower() for g in item.genres}
    for word in content_words(item.text, exclude=title_words, limit=MAX_ITEM_PHRASES, domain=domain):
        if len(phrases) >= MAX_ITEM_PHRASES:
            break
        phrases.append(word)
    return phrases


def subject(item: ItemInfo, domain: Domain = FILM) -> str:
    """The prompt's subject, naming the item the way its domain does."""
    return domain.subject(item.title, item.year)


def build_prompt(item: ItemInfo, profile: UserProfile | None, alpha: float = 0.5, domain: Domain = FILM) -> Prompt:
    """The cover prompt for `item`, personalized for `profile` with weight `alpha` in [0, 1].

    `profile=None`, an empty profile or `alpha=0` give the generic prompt. The number of the item's own
    phrases kept is round((1 - alpha) * n_item) (at least one), the number of user keywords added is
    round(alpha * n_pref) (at least one when alpha > 0); keywords the item already has are not repeated.
    """
    if not isinstance(item, ItemInfo):
        raise invalid("item", "a generation.prompts.ItemInfo", item)
    if profile is not None and not isinstance(profile, UserProfile):
        raise invalid("profile", "a generation.profile.UserProfile or None", profile)
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0.0 <= float(alpha) <= 1.0:
        raise invalid("alpha", "a number between 0 and 1", alpha)
    alpha = float(alpha)
    if not isinstance(domain, Domain):
        raise invalid("domain", "a generation.domain.Domain", domain)

    own = item_phrases(item, domain)
    prefs: list[str] = []
    if profile is not None and alpha > 0:
        prefs = [k for k in profile.keywords if k not in own][:MAX_PREF_PHRASES]
    n_pref = max(1, round(alpha * len(prefs))) if prefs else 0  # alpha > 0 keeps at least one: round(0.5) is 0
    n_own = max(1, round((1.0 - alpha) * len(own))) if own else 0
    if n_pref == 0:
        n_own = len(own)  # nothing of the user's: the full generic prompt
    kept_own, kept_prefs = own[:n_own], prefs[:n_pref]
    body = kept_prefs + kept_own if alpha > 0.5 else kept_own + kept_prefs
    text = ", ".join([subject(item, domain), *body, *domain.quality])
    return Prompt(
        text=text,
        negative=NEGATIVE_PROMPT,
        keywords=kept_prefs,
        personalized=bool(kept_prefs),
        alpha=alpha if kept_prefs else 0.0,
        item_phrases=kept_own,
    )


def prompt_pair(
    item: ItemInfo, profile: UserProfile | None, alpha: float = 0.5, domain: Domain = FILM
) -> tuple[Prompt, Prompt]:
    """(personalized, generic) prompts for the same item: the two arms of an A/B comparison."""
    return build_prompt(item, profile, alpha, domain), build_prompt(item, None, 0.0, domain)
