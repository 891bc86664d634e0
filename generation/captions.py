"""Personalized captions: a small instruct LLM says, in one or two sentences, why an item fits a user.

    captions = CaptionGenerator("HuggingFaceTB/SmolLM2-360M-Instruct", asset_dir=data_dir / "assets")
    captions.load()                                   # once, at start; offline-first, never hangs
    asset = captions.generate(item, profile, seed=0)  # asset.text: plain text, <= max_chars

The request is grounded in the item's metadata (title, year, genres, description) and the profile (liked
titles, favourite genres, taste keywords). The model's reply is sanitised (markup, links and control
characters stripped, cut at a sentence boundary within `max_chars`) and checked (enough words, prose
rather than noise, mentions the item or the user's tastes). An unusable reply, or no model at all, gives
the template caption, grounded in the same data and marked `generator="fallback"`, `fallback=True`, with
the reason (and the rejected reply) in `params`. Greedy decoding by default: the same input gives the same
caption; with `sample=True` the seed decides (torch's global RNG is forked, not touched).

The words follow the catalogue's domain (`domain=`, a `generation.domain.Domain`; the film domain by
default): the system prompt tells a viewer why a film suits them, a reader why a book does, and so on.

`preference_keywords` is PMG's first step: the loaded LLM names a user's preferences as keywords from the
items they liked; its reply is checked like a caption, and None (use the TF-IDF keyphrases) when unusable.
"""

from __future__ import annotations

import logging
import random
import re
import time
import unicodedata
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from generation.assets import Asset, asset_key
from generation.domain import FILM, Domain, with_article
from generation.errors import ModelUnavailableError, invalid
from generation.loading import LoadsOnce, ResolvedModel, configure_cpu_threads
from generation.profile import UserProfile, content_words
from generation.prompts import ItemInfo

log = logging.getLogger(__name__)

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-360M-Instruct"
DEFAULT_MAX_CHARS = 220  # two short sentences: fits under a cover card
DEFAULT_MAX_NEW_TOKENS = 80  # ~60 words, more than two short sentences need
TEMPLATE_VERSION = "template-v2"  # v2: the liked item named is chosen per item
SYSTEM_PROMPT = FILM.system_prompt()  # the film domain's; every domain has its own (Domain.system_prompt)
MAX_LLM_KEYWORDS = 8
KEYWORD_CACHE = 1024  # users whose LLM keywords are remembered (the same liked items: the same keywords)


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def caption_request(item: ItemInfo, profile: UserProfile | None, max_chars: int, domain: Domain = FILM) -> str:
    """The user message sent to the LLM: the facts it may use and the length limit."""
    lines = [f"{domain.noun.capitalize()}: {item.label}."]
    if item.genres:
        lines.append(f"Genres: {', '.join(item.genres)}.")
    about = " ".join(item.text.split())
    if about and about.lower() != item.label.lower():
        lines.append(f"About: {about[:300]}")
    if profile is not None and not profile.is_empty:
        if profile.liked_titles:
            lines.append(f"The {domain.audience} liked: {'; '.join(profile.liked_titles[:5])}.")
        if profile.top_genres:
            lines.append(f"Their favourite genres: {', '.join(profile.top_genres)}.")
        if profile.keywords:
            lines.append(f"Their taste: {', '.join(profile.keywords[:6])}.")
        lines.append(f"In at most two sentences (under {max_chars} characters), tell the {domain.audience} why "
                     f"{item.title} fits them.")
    else:
        lines.append(f"In at most two sentences (under {max_chars} characters), tell {with_article(domain.audience)} "
                     f"why {item.title} is {domain.worth}.")
    return "\n".join(lines)


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
    from generation.profile import STOPWORDS

    text = "".join("\n" if ch == "\n" else " " if unicodedata.category(ch).startswith("C") else ch for ch in raw)
    for pattern, repl in _MARKUP:
        text = pattern.sub(repl, text)
    parts = [" ".join(p.split()).strip(" .\"'").lower() for p in re.split(r"[,;\n]", text)]
    parts = [p for p in parts if p]
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


def caption_problem(text: str, item: ItemInfo, profile: UserProfile | None) -> str | None:
    """Why a sanitised caption is unusable, or None when it is fine to show."""
    if len(text) < 20:
        return f"no complete sentence of at least 20 characters (got {len(text)})"
    prose = sum(ch.isalpha() or ch.isdigit() or ch in _PROSE_CHARS for ch in text) / len(text)
    if "\ufffd" in text or prose < 0.9:
        return f"not prose ({prose:.0%} letters, digits, spaces and punctuation)"
    words = re.findall(r"[^\W\d_]+", text)
    if len(words) < 5:
        return f"too few words ({len(words)})"
    wordlike = sum(1 for w in words if len(w) <= 20 and re.search(r"[aeiouyAEIOUYà-ÿ]", w)) / len(words)
    if wordlike < 0.85:
        return f"not words ({wordlike:.0%} look like words)"
    lower = text.lower()
    anchors = {item.title.lower(), *content_words(item.title)} | {g.lower() for g in item.genres}
    if profile is not None:
        anchors |= {t.lower() for t in profile.liked_titles} | {g.lower() for g in profile.top_genres}
    anchors.discard("")
    if not any(a in lower for a in anchors):
        return "not grounded: mentions neither the item, its genres, nor the user's liked titles or genres"
    return None


def template_caption(
    item: ItemInfo, profile: UserProfile | None, seed: int, max_chars: int, domain: Domain = FILM
) -> str:
    """A caption from the item's metadata and the profile, in the words of `domain`; the longest template
    variant that fits. Deterministic in (seed, item): a slate's captions vary from card to card rather than
    naming one liked item."""
    rng = random.Random(f"{seed}:{item.item_id}")
    genres = [g.lower() for g in item.genres if g.lower() != "unknown"]
    genre_text = _join(genres[:3]) if genres else "many moods"
    shared: list[str] = []
    if profile is not None:
        top = {g.lower() for g in profile.top_genres}
        shared = [g for g in genres if g in top]
    options: list[str] = []
    if profile is not None and profile.liked_titles:
        liked = profile.liked_titles[rng.randrange(min(3, len(profile.liked_titles)))]
        if shared:
            options.append(
                rng.choice(
                    [
                        f"Because you enjoyed {liked}, {item.label} should suit you: more of the "
                        f"{_join(shared[:2])} you keep coming back to.",
                        f"You rated {liked} highly, and {item.label} brings the same {_join(shared[:2])} appeal.",
                    ]
                )
            )
        options.append(f"Picked for you after {liked}: {item.label}, {domain.kind_of(genre_text)}.")
    if shared:
        options.append(f"{item.label} matches your taste for {_join(shared[:2])}.")
    options.append(f"{item.label} is {domain.kind_of(genre_text)}, picked for you.")
    options.append(f"{item.title} is picked for you.")
    for option in options:
        if len(option) <= max_chars:
            return option
    return item.title[: max(1, max_chars - 1)].rstrip() + "…"


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
        sample: bool = False,
        temperature: float = 0.7,
        dtype: str | None = None,
        num_threads: int | None = None,
        cache_dir: Path | str | None = None,
        fallback_on_error: bool = True,
        domain: Domain = FILM,
    ) -> None:
        if isinstance(max_chars, bool) or not isinstance(max_chars, Integral) or not 40 <= max_chars <= 2000:
            raise invalid("max_chars", "an int between 40 and 2000", max_chars)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, Integral) or not 1 <= max_new_tokens <= 1024:
            raise invalid("max_new_tokens", "an int between 1 and 1024", max_new_tokens)
        if not isinstance(sample, bool):
            raise invalid("sample", "a bool", sample)
        if isinstance(temperature, bool) or not isinstance(temperature, Real) or not 0 < temperature <= 5:
            raise invalid("temperature", "a number in (0, 5]", temperature)
        self._init_loading(model, asset_dir, device, dtype, allow_network, num_threads, cache_dir, fallback_on_error,
                           domain)
        self.max_chars = int(max_chars)
        self.max_new_tokens = int(max_new_tokens)
        self.sample = sample
        self.temperature = float(temperature)
        self.system_prompt = domain.system_prompt()
        self._keywords: dict[tuple, list[str] | None] = {}
        self._lm: Any = None
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
        return lm, tokenizer

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
            "max_new_tokens": self.max_new_tokens,
            "sample": self.sample,
            "temperature": self.temperature if self.sample else None,
            "device": self.device.split(":")[0],
            "dtype": str(self.dtype).removeprefix("torch."),
        }

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
        # 4. the model's reply, sanitised and checked; 5. the template when it is unusable
        start = time.perf_counter()
        params: dict[str, Any] = {"max_chars": self.max_chars}
        text: str | None = None
        generator = "fallback"
        if self.uses_fallback:
            params.update(template=TEMPLATE_VERSION, fallback_reason=self.unavailable_reason)
        else:
            assert self.resolved is not None
            raw = self._complete(request, seed)
            candidate = sanitize_caption(raw, self.max_chars)
            problem = caption_problem(candidate, item, profile)
            params.update(
                system_prompt=self.system_prompt,
                max_new_tokens=self.max_new_tokens,
                sample=self.sample,
                device=self.device,
                dtype=str(self.dtype).removeprefix("torch."),
                model_source=self.resolved.source,
                model_fingerprint=self.resolved.fingerprint,
            )
            if problem is None:
                text, generator = candidate, self.resolved.model
            else:
                params.update(
                    template=TEMPLATE_VERSION,
                    model=self.resolved.model,
                    fallback_reason=f"model output unusable: {problem}",
                    raw_output=raw[:500],
                )
                log.info("caption from %s rejected (%s); using the template", self.resolved.model, problem)
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

    def preference_keywords(self, liked: list[ItemInfo], max_keywords: int = MAX_LLM_KEYWORDS) -> list[str] | None:
        """PMG's first step: the LLM names the preferences shown by `liked` (the user's liked items, newest
        first) as up to `max_keywords` short keywords. None when no LLM is loaded or its reply is unusable
        (then `build_profile`'s TF-IDF keyphrases stand alone). Greedy; remembered per list of liked items."""
        if isinstance(liked, (str, bytes)) or not all(isinstance(i, ItemInfo) for i in liked):
            raise invalid("liked", "a list of generation.prompts.ItemInfo", liked)
        if isinstance(max_keywords, bool) or not isinstance(max_keywords, Integral) or not 1 <= max_keywords <= 20:
            raise invalid("max_keywords", "an int between 1 and 20", max_keywords)
        self.load()
        if self.uses_fallback or not liked:
            return None
        key = (tuple(i.item_id for i in liked[:10]), int(max_keywords))
        with self._lock:
            if key in self._keywords:
                return self._keywords[key]
        lines = [f"The {self.domain.audience} liked these {self.domain.plural}:"]
        for item in liked[:10]:
            about = " ".join(item.text.split())[:160]
            genres = f" [{', '.join(item.genres[:3])}]" if item.genres else ""
            lines.append(f"- {item.label}{genres}{': ' + about if about and about != item.label else ''}")
        lines.append(f"Name up to {max_keywords} keywords (one to three words each) for the visual style, mood and "
                     "themes they like, separated by commas.")
        raw = self._complete("\n".join(lines), 0, self.domain.keyword_system_prompt(), max_new_tokens=48)
        keywords = parse_keywords(raw, max_keywords, self.domain)
        if keywords is None:
            log.info("preference keywords from %s rejected: %r", self.resolved.model if self.resolved else None,
                     raw[:200])
        with self._lock:
            self._keywords[key] = keywords
            while len(self._keywords) > KEYWORD_CACHE:
                self._keywords.pop(next(iter(self._keywords)))
        return keywords

    def _complete(self, request: str, seed: int, system: str | None = None, max_new_tokens: int | None = None) -> str:
        """The LLM's raw reply to `request` (chat template, greedy unless `sample`)."""
        import torch

        messages = [{"role": "system", "content": system or self.system_prompt}, {"role": "user", "content": request}]
        prompt = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else self._tokenizer.eos_token_id
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens or self.max_new_tokens, "pad_token_id": pad}
        if self.sample:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=0.9)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        devices = [torch.device(self.device)] if self.device.startswith("cuda") else []
        with self._lock, torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            out = self._lm.generate(**inputs, **kwargs)
        new_tokens = out[0, inputs["input_ids"].shape[1] :]
        return self._tokenizer.decode(new_tokens, skip_special_tokens=True)
