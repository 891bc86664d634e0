"""The generation loop's world: visitors with real profiles, the hidden truth, and simulated covers and captions.

A hidden truth gives each taste group (a visitor's strongest genre, grouped into four: thrill, light, heart,
dark) a value for each cover style (`generation.policy.DEFAULT_STYLES`, N(0, 1)), a favourite alpha (a penalty
of 2 (alpha - best)^2 away from it) and weights for four caption traits (names a film the user liked, names a
genre, long, exclaims); every single asset adds its own quality N(0, 0.3) that no model can see. Covers are
simulated renders (`sim/swatch`: a picture whose hue follows the style and saturation the alpha). Captions come
from one of two sources (`CAPTION_SOURCES`):
- "template": `caption_text`, a template with the four traits switched on or off as drawn;
- "real": the app's caption model (`generation.captions.CaptionGenerator`, passed in as `captions`) writes each
  candidate, one seed per candidate (derived from the world's seed and the candidate's tag, so a rerun reuses the
  asset cache); its traits are then measured from the text (`measure_traits`) and the truth values those. The
  trait set the loop draws is not used, but drawn all the same, so both sources see the same visitors, items and
  noise. A reply that fails the model's checks is the labelled template (`fallback`): still a candidate, its
  traits measured the same way, and counted (`caption_stats`).
The truth, its weights and the noise are the same for both sources. The loop that uses it:
`app.simulate.generation_loop`.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

GROUPS = {
    "thrill": ("action", "adventure", "scifi", "thriller", "war", "western"),
    "light": ("comedy", "childrens", "animation", "musical", "fantasy", "cold"),
    "heart": ("drama", "romance", "documentary"),
    "dark": ("horror", "crime", "mystery", "filmnoir"),
}
TRAITS = ("names_liked_title", "names_genre", "long", "exclaims")
ASSET_NOISE = 0.3  # each asset's own quality, invisible to every model
ALPHA_PENALTY = 2.0
GENERATORS = {"cover": "sim/swatch", "caption": "sim/template"}
CAPTION_SOURCES = ("template", "real")
# `long`, measured: words besides the titles. The template's short forms have at most 10 ("Because you enjoyed
# <liked>, <item> is one for you: a drama film."), its long forms at least 16 (the long clause adds 12): the
# threshold sits between them.
LONG_WORDS = 13
# genre words of `generation.grounding.GENRE_WORDS` that promise a genre rather than name it: not counted
_GENRE_PROMISES = {"make you laugh", "laugh-out-loud", "hilarious", "funny", "scary", "terrifying", "frightening"}


@dataclass
class Visitor:
    user_id: str
    profile: Any  # generation.profile.UserProfile
    features: Any  # generation.reward.UserFeatures
    segment: str
    group: str


@dataclass
class Truth:
    style: dict[str, dict[str, float]]  # group -> style name -> value
    best_alpha: dict[str, float]
    traits: dict[str, np.ndarray]  # group -> weight per TRAITS

    def arm_value(self, group: str, style: str, alpha: float) -> float:
        return self.style[group][style] - ALPHA_PENALTY * (alpha - self.best_alpha[group]) ** 2

    def caption_value(self, group: str, traits: Sequence[int]) -> float:
        return float(self.traits[group] @ np.asarray(traits, dtype=float))


@dataclass
class CaptionStats:
    """What the real caption source did: candidates written, how many fell back to the template, the seconds."""

    made: int = 0
    fallback: int = 0
    seconds: float = 0.0
    traits: list[int] = field(default_factory=lambda: [0] * len(TRAITS))  # candidates with each measured trait


@dataclass
class SimAsset:
    candidate: Any  # generation.reward.Candidate
    value: float  # hidden truth for its visitor
    arm: Any = None  # generation.policy.Arm for covers
    traits: tuple[int, ...] = ()


def group_of(segment: str) -> str:
    for group, keys in GROUPS.items():
        if segment in keys:
            return group
    return "light"


def make_truth(styles: Sequence[Any], alphas: Sequence[float], seed: int) -> Truth:
    rng = np.random.default_rng(seed + 7919)
    style = {g: {s.name: float(rng.normal()) for s in styles} for g in GROUPS}
    best_alpha = {g: float(alphas[int(rng.integers(len(alphas)))]) for g in GROUPS}
    traits = {g: rng.normal(size=len(TRAITS)) for g in GROUPS}
    return Truth(style, best_alpha, traits)


def swatch(style: str, alpha: float, seed: int):
    """A 48x72 simulated render: hue from the style, saturation from alpha, seeded texture."""
    from PIL import Image
    import colorsys

    hue = int(hashlib.sha256(style.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    rng = np.random.default_rng(seed)
    r, g, b = colorsys.hsv_to_rgb(hue, 0.25 + 0.7 * alpha, 0.55 + 0.4 * rng.random())
    base = np.array([r, g, b]) * 255.0
    texture = rng.normal(0, 18, size=(72, 48, 1)) + np.linspace(-30, 30, 72)[:, None, None]
    pixels = np.clip(base[None, None, :] + texture, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _blank(text: str, titles: Sequence[str]) -> str:
    """`text` with each title (whole, case as written) replaced by a space, longest first."""
    for title in sorted({t for t in titles if t}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(title)}(?!\w)", " ", text)
    return text


def measure_traits(text: str, item: Any, profile: Any) -> tuple[int, int, int, int]:
    """The four caption traits (TRAITS) of a caption's text, for `item` (a generation.prompts.ItemInfo) and the
    visitor's `profile` (a generation.profile.UserProfile):
    - names_liked_title: a title the visitor liked (`liked_titles` or as a person writes it, `liked_names`),
      whole and with its capitals (a title is a name: "big" is not "Big"), other than the item's own title;
    - names_genre: a word for one of the item's genres (`generation.grounding.GENRE_WORDS`: "drama", "sci-fi",
      "romantic", "noir", ...; not the words that only promise one, "funny", "scary"), outside the titles;
    - long: at least LONG_WORDS words besides the titles;
    - exclaims: ends with "!".
    The template's captions (`caption_text`) measure as the traits they were written with."""
    from generation.domain import genre_key
    from generation.grounding import GENRE_WORDS

    own = [item.title, item.name]
    liked = [t for t in (*profile.liked_titles, *profile.liked_names) if t not in own]
    without_own = _blank(text, own)
    names_liked = any(re.search(rf"(?<!\w){re.escape(t)}(?!\w)", without_own) for t in liked)
    rest = _blank(without_own, liked).lower()
    keys = {genre_key(g) for g in item.genres}
    names_genre = any(key in keys and phrase not in _GENRE_PROMISES
                      and re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", rest)
                      for phrase, key in GENRE_WORDS.items())
    words = [w for w in rest.split() if re.search(r"[^\W\d_]", w)]
    return int(names_liked), int(names_genre), int(len(words) >= LONG_WORDS), int(text.rstrip().endswith("!"))


def caption_text(item: Any, visitor: Visitor, traits: Sequence[int]) -> str:
    liked_title, genre_trait, long, exclaims = traits
    liked = visitor.profile.liked_titles[0] if visitor.profile.liked_titles else None
    text = f"Because you enjoyed {liked}, {item.title} is one for you" if liked_title and liked else \
        f"{item.title} is one for you"
    if genre_trait and item.genres:
        shared = [g for g in item.genres if g in visitor.profile.top_genres] or list(item.genres)
        text += f": a {shared[0].lower()} film"
    if long:
        text += " with a story that stays with you long after the credits roll"
    return text + ("!" if exclaims else ".")


class GenerationWorld:
    """Visitors, items, the hidden truth and candidate makers; one seeded RNG per purpose."""

    def __init__(self, dataset: Any, n_users: int, seed: int, captions: Any = None) -> None:
        """captions: None (template captions) or a loaded `generation.captions.CaptionGenerator` (real ones)."""
        import pandas as pd

        from generation.policy import DEFAULT_ALPHAS, DEFAULT_STYLES, segment_of
        from generation.profile import build_profile
        from generation.prompts import ItemInfo
        from generation.reward import UserFeatures

        rng = random.Random(seed)
        items = dataset.items
        self.items = [ItemInfo(str(r.item_id), str(r.title), None if pd.isna(r.year) else int(r.year),
                               list(r.genres), str(r.text)) for r in items.itertuples(index=False)]
        by_id = {it.item_id: it for it in self.items}
        inter = dataset.interactions.sort_values(["user_id", "timestamp"], kind="stable")
        users = sorted(inter["user_id"].unique(), key=int)
        chosen = rng.sample(users, min(n_users, len(users)))
        self.visitors: list[Visitor] = []
        grouped = {u: g for u, g in inter[inter["user_id"].isin(chosen)].groupby("user_id")}
        for uid in chosen:
            rows = grouped[uid]
            history = [{"item_id": i, "title": by_id[i].title, "text": by_id[i].text, "genres": by_id[i].genres,
                        "year": by_id[i].year, "rating": float(r), "timestamp": int(t)}
                       for i, r, t in rows[["item_id", "rating", "timestamp"]].itertuples(index=False)]
            profile = build_profile(str(uid), history)
            liked = [h["text"] for h in reversed(history) if h["rating"] >= 4][:20]
            features = UserFeatures.from_profile(profile, liked)
            segment = segment_of(profile)
            self.visitors.append(Visitor(str(uid), profile, features, segment, group_of(segment)))
        self.styles = list(DEFAULT_STYLES)
        self.alphas = list(DEFAULT_ALPHAS)
        self.truth = make_truth(self.styles, self.alphas, seed)
        self.seed = seed
        self.captions = captions
        self.caption_stats = CaptionStats()

    def best_arm_value(self, group: str) -> float:
        return max(self.truth.arm_value(group, s.name, a) for s in self.styles for a in self.alphas)

    def cover(self, visitor: Visitor, item: Any, arm: Any, tag: str, rng: np.random.Generator) -> SimAsset:
        from generation.policy import styled_profile
        from generation.prompts import build_prompt
        from generation.reward import Candidate

        prompt = build_prompt(item, styled_profile(visitor.profile, arm), arm.alpha)
        image = swatch(arm.style.name, arm.alpha, int(rng.integers(2**31)))
        value = self.truth.arm_value(visitor.group, arm.style.name, arm.alpha) + float(rng.normal(0, ASSET_NOISE))
        candidate = Candidate(tag, "cover", prompt.text, arm.style.keywords, arm.alpha, GENERATORS["cover"],
                              image=image, item_id=item.item_id)
        return SimAsset(candidate, value, arm=arm)

    def caption(self, visitor: Visitor, item: Any, traits: Sequence[int], tag: str,
                rng: np.random.Generator) -> SimAsset:
        from generation.captions import caption_request
        from generation.reward import Candidate

        """A caption candidate: the template with `traits`, or (with a caption model) the model's caption for a
        seed of its own, whose traits are measured; see the module docstring."""
        generator = GENERATORS["caption"]
        if self.captions is None:
            text = caption_text(item, visitor, traits)
        else:
            seed = int.from_bytes(hashlib.sha256(f"{self.seed}:{tag}".encode()).digest()[:6], "big")
            start = time.perf_counter()
            asset = self.captions.generate(item, visitor.profile, seed=seed)
            stats = self.caption_stats
            stats.seconds += time.perf_counter() - start
            stats.made += 1
            stats.fallback += int(asset.fallback)
            text, generator = asset.text, asset.generator
            traits = measure_traits(text, item, visitor.profile)
            stats.traits = [n + t for n, t in zip(stats.traits, traits)]
        value = self.truth.caption_value(visitor.group, traits) + float(rng.normal(0, ASSET_NOISE))
        candidate = Candidate(tag, "caption", caption_request(item, visitor.profile, 220), (), 0.0,
                              generator, text=text, item_id=item.item_id)
        return SimAsset(candidate, value, traits=tuple(traits))

    def random_arm(self, rng: np.random.Generator):
        from generation.policy import Arm

        return Arm(self.styles[int(rng.integers(len(self.styles)))], self.alphas[int(rng.integers(len(self.alphas)))])

    def random_traits(self, rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(int(x) for x in rng.integers(0, 2, size=len(TRAITS)))

    def two_arms(self, rng: np.random.Generator) -> tuple[Any, Any]:
        """Two different random arms: the sides of a cover pair."""
        first, second = self.random_arm(rng), self.random_arm(rng)
        while second == first:
            second = self.random_arm(rng)
        return first, second

    def two_traits(self, rng: np.random.Generator) -> list[tuple[int, ...]]:
        """Two different random trait sets: the sides of a caption pair."""
        pair = [self.random_traits(rng), self.random_traits(rng)]
        while pair[1] == pair[0]:
            pair[1] = self.random_traits(rng)
        return pair
