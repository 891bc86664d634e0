"""Synthetic catalogues with a known latent structure, at any size (issue 23's benchmark data).

What is generated, and why a model has something to learn from it:

- **Topics.** A topic is a (category, theme) pair, e.g. ("outerwear", "winter"): 40 product/book categories x
  25 themes, `n_topics` of those pairs (default about sqrt(n_items), at most 1,000). Every item belongs to one
  topic; topics differ in size (log-normal shares) and in popularity (Zipf over a random topic order).
- **Popularity.** Inside a topic, item weights follow a power law over a random rank (weight ~ rank^-0.9), so a
  few items per topic are hits and many are rarely seen or never (cold items: about 4% at 8k, about half at
  1M items with 2.4 interactions per item).
- **Users.** Each user prefers 1 to 4 topics (drawn by topic popularity) with Dirichlet weights. Each
  interaction picks one of the user's topics, then an item of it by popularity; with probability
  `explore` (0.1) it is an item drawn by global popularity instead. Users' activity is log-normal above a floor
  of 5 interactions (MMRec's 5-core on users), summing to `n_interactions` exactly before duplicates are redrawn.
- **Time and ratings.** Each user starts at a random day within three years; gaps are exponential (mean 20
  days). Ratings are 1-5, higher for items of the user's main topic.
- **Content.** Titles and texts are built from the topic's words (category nouns, materials, theme adjectives)
  plus noise words (brand, colour), so a text encoder's similarity follows the topics.
  `layout="byo"` writes the texts only (the app encodes them: MiniLM). `layout="mmrec"` writes precomputed
  float32 `text_feat.npy` and `image_feat.npy` derived from the topics: text rows are MiniLM embeddings of the
  topic's and item's words mixed with Gaussian noise (`text_space="minilm"`: a MiniLM query such as "a warm
  wool coat for winter" lands near winter outerwear), or random topic vectors (`text_space="random"`, any
  width, no model needed); image rows are random category and colour vectors plus noise (not a CLIP space).
  Only ~1,300 short phrases are ever encoded, never the million item texts.

Deterministic for a seed (the minilm text space also assumes the same torch build). Everything is vectorised
numpy; the feature matrices are written to `.npy` files chunk by chunk, so memory stays bounded
(see bench/bench_scale_data.py for time and peak RSS at 1M items).

Layouts (both carry `dataset.yaml` with `domain: product`):

    byo/    items.csv (item_id,title,text,genres)  interactions.csv (user_id,item_id,rating,timestamp)
    mmrec/  NAME.inter (userID itemID rating timestamp x_label, tab-separated, 0-based ids; MMRec's own per-user
            split rule), text_feat.npy, image_feat.npy, i_id_mapping.csv (asin itemID), u_id_mapping.csv
            (user_id userID), items.csv (item_id,title,text,genres; item_id = the mapping's asin)
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

LAYOUTS = ("byo", "mmrec")
TEXT_SPACES = ("minilm", "random")
MINILM_DIM = 384
# issue 23's sizes; "8k" is a quality-check size close to MMRec's Baby (7,050 / 19,445 / 160,792)
PRESETS: dict[str, tuple[int, int, int]] = {
    "8k": (8_000, 20_000, 160_000),
    "25k": (25_000, 40_000, 290_000),
    "1m": (1_000_000, 300_000, 2_400_000),
}
_MIN_PER_USER = 5  # MMRec's 5-core floor on users
_BASE_TIME = 1_388_534_400  # 2014-01-01 UTC, the era of MMRec's Amazon sets
_DAY = 86_400

# category -> (nouns, materials or formats); the first six are books, the rest products
CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "fantasy novel": (("fantasy novel", "epic saga", "dragon tale", "quest novel"),
                      ("hardcover", "paperback", "illustrated edition", "boxed set")),
    "cookbook": (("cookbook", "recipe book", "baking guide", "kitchen handbook"),
                 ("hardcover", "spiral-bound", "paperback", "illustrated edition")),
    "travel guide": (("travel guide", "city guide", "road atlas", "hiking guide"),
                     ("paperback", "pocket edition", "waterproof edition", "illustrated edition")),
    "crime thriller": (("crime thriller", "detective novel", "mystery novel", "police procedural"),
                       ("paperback", "hardcover", "large print", "audiobook")),
    "children's picture book": (("picture book", "bedtime story book", "board book", "pop-up book"),
                                ("board", "hardcover", "paperback", "cloth")),
    "science book": (("popular science book", "astronomy book", "biology primer", "physics introduction"),
                     ("hardcover", "paperback", "illustrated edition", "textbook edition")),
    "outerwear": (("coat", "jacket", "parka", "anorak"), ("wool", "down", "waxed cotton", "fleece")),
    "knitwear": (("sweater", "cardigan", "jumper", "turtleneck"), ("merino", "cashmere", "cotton", "alpaca")),
    "running shoes": (("running shoe", "trail runner", "racing flat", "training sneaker"),
                      ("mesh", "knit", "synthetic", "recycled foam")),
    "boots": (("boot", "ankle boot", "hiking boot", "chelsea boot"), ("leather", "suede", "rubber", "nubuck")),
    "dresses": (("dress", "maxi dress", "shirt dress", "wrap dress"), ("linen", "silk", "cotton", "jersey")),
    "jeans": (("jeans", "slim jeans", "straight-leg jeans", "denim jacket"),
              ("denim", "selvedge denim", "stretch denim", "organic cotton")),
    "backpacks": (("backpack", "daypack", "rucksack", "laptop bag"), ("canvas", "nylon", "leather", "ripstop")),
    "watches": (("watch", "chronograph", "dive watch", "smartwatch"),
                ("stainless steel", "titanium", "leather strap", "ceramic")),
    "sunglasses": (("sunglasses", "aviator sunglasses", "sport glasses", "polarised shades"),
                   ("acetate", "metal", "polycarbonate", "bamboo")),
    "jewellery": (("necklace", "bracelet", "ring", "earrings"), ("silver", "gold", "pearl", "gemstone")),
    "baby stroller": (("stroller", "pram", "travel system", "buggy"),
                      ("aluminium", "lightweight", "foldable", "all-terrain")),
    "baby bottles": (("baby bottle", "sippy cup", "bottle set", "feeding bottle"),
                     ("glass", "silicone", "BPA-free plastic", "stainless steel")),
    "diapers": (("nappies", "diaper pack", "swim diapers", "training pants"),
                ("eco", "hypoallergenic", "overnight", "biodegradable")),
    "plush toys": (("teddy bear", "plush bunny", "stuffed elephant", "soft toy"),
                   ("organic cotton", "velvet", "faux fur", "knitted")),
    "building blocks": (("building blocks", "construction set", "brick kit", "magnetic tiles"),
                        ("wooden", "plastic", "magnetic", "foam")),
    "board games": (("board game", "card game", "strategy game", "party game"),
                    ("deluxe edition", "travel edition", "family edition", "expansion")),
    "headphones": (("headphones", "earbuds", "over-ear headset", "in-ear monitors"),
                   ("wireless", "noise-cancelling", "wired", "bluetooth")),
    "smartphones": (("smartphone", "phone case", "phone charger", "screen protector"),
                    ("5G", "unlocked", "tempered glass", "fast-charging")),
    "laptops": (("laptop", "ultrabook", "notebook computer", "laptop stand"),
                ("aluminium", "lightweight", "touchscreen", "gaming")),
    "cameras": (("camera", "mirrorless camera", "action camera", "camera lens"),
                ("full-frame", "waterproof", "compact", "4K")),
    "speakers": (("speaker", "soundbar", "bookshelf speaker", "portable speaker"),
                 ("wireless", "bluetooth", "waterproof", "smart")),
    "kitchen knives": (("chef's knife", "knife set", "paring knife", "santoku knife"),
                       ("carbon steel", "damascus steel", "ceramic", "stainless steel")),
    "cookware": (("frying pan", "saucepan", "dutch oven", "wok"),
                 ("cast iron", "non-stick", "copper", "stainless steel")),
    "coffee makers": (("coffee maker", "espresso machine", "pour-over kettle", "french press"),
                      ("stainless steel", "glass", "programmable", "manual")),
    "bedding": (("duvet cover", "pillow", "bed sheet set", "weighted blanket"),
                ("linen", "cotton percale", "bamboo", "down")),
    "lamps": (("table lamp", "floor lamp", "desk lamp", "pendant light"),
              ("brass", "ceramic", "rattan", "LED")),
    "yoga gear": (("yoga mat", "yoga block", "yoga strap", "meditation cushion"),
                  ("cork", "natural rubber", "foam", "organic cotton")),
    "bicycles": (("bicycle", "road bike", "mountain bike", "bike helmet"),
                 ("carbon", "aluminium", "steel", "electric")),
    "camping gear": (("tent", "sleeping bag", "camping stove", "headlamp"),
                     ("ultralight", "waterproof", "four-season", "compact")),
    "fishing tackle": (("fishing rod", "fishing reel", "tackle box", "fly fishing kit"),
                       ("graphite", "carbon", "fibreglass", "stainless steel")),
    "skincare": (("face cream", "serum", "cleanser", "sunscreen"),
                 ("fragrance-free", "vitamin C", "hyaluronic", "mineral")),
    "perfume": (("perfume", "eau de toilette", "cologne", "body mist"),
                ("floral", "woody", "citrus", "musky")),
    "tea": (("green tea", "black tea", "herbal tea", "tea sampler"),
            ("loose-leaf", "organic", "bagged", "matcha")),
    "dog supplies": (("dog bed", "dog leash", "chew toy", "dog harness"),
                     ("orthopedic foam", "nylon", "natural rubber", "reflective")),
}
# theme -> adjectives/phrases that carry it into titles and texts
THEMES: dict[str, tuple[str, ...]] = {
    "winter": ("warm", "insulated", "winter", "cold-weather", "snow-ready"),
    "summer": ("lightweight", "summer", "breathable", "sun-ready", "beach"),
    "luxury": ("luxury", "premium", "designer", "handcrafted", "signature"),
    "budget": ("budget", "value", "everyday", "basic", "affordable"),
    "outdoor adventure": ("rugged", "trail-tested", "expedition", "all-weather", "adventure"),
    "minimalist": ("minimalist", "clean-lined", "simple", "understated", "modern"),
    "vintage": ("vintage", "retro", "classic", "heritage", "old-school"),
    "eco-friendly": ("eco-friendly", "sustainable", "recycled", "organic", "planet-friendly"),
    "kids": ("kids'", "child-safe", "playful", "toddler", "junior"),
    "professional": ("professional", "pro-grade", "studio", "expert", "heavy-duty"),
    "travel": ("travel", "packable", "compact", "carry-on", "on-the-go"),
    "sport performance": ("performance", "athletic", "high-intensity", "competition", "training"),
    "cosy home": ("cosy", "soft", "homely", "snug", "relaxing"),
    "festive gift": ("gift", "festive", "holiday", "limited edition", "celebration"),
    "smart tech": ("smart", "connected", "app-controlled", "high-tech", "next-generation"),
    "romantic": ("romantic", "elegant", "delicate", "charming", "dreamy"),
    "spooky": ("spooky", "gothic", "dark", "haunted", "eerie"),
    "nautical": ("nautical", "coastal", "sailor", "marine", "seaside"),
    "rustic": ("rustic", "farmhouse", "handmade", "country", "timber-toned"),
    "urban street": ("urban", "streetwear", "city", "edgy", "graphic"),
    "wellness": ("wellness", "calming", "mindful", "restorative", "natural"),
    "classic office": ("office", "business", "formal", "polished", "tailored"),
    "party": ("party", "bold", "glittering", "statement", "vibrant"),
    "rainy day": ("rainproof", "waterproof", "storm", "drizzle-ready", "wet-weather"),
    "family": ("family", "family-size", "shared", "all-ages", "household"),
}
COLOURS = ("black", "white", "charcoal", "navy", "olive", "burgundy", "sand", "forest green", "sky blue", "coral",
           "mustard", "lavender", "grey", "brown", "cream", "red")
_BRAND_A = ("North", "Blue", "Iron", "Silver", "Oak", "Cedar", "Stone", "River", "Maple", "Fox", "Wolf", "Pine",
            "Bright", "Lark", "Ember", "Copper", "Harbor", "Willow", "Summit", "Meadow")
_BRAND_B = ("wind", "field", "crest", "wood", "line", "works", "stone", "craft", "well", "gate", "brook", "ridge")
BRANDS = tuple(a + b for a in _BRAND_A for b in _BRAND_B)  # 240 made-up brands: noise words


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Defaults give a small catalogue; PRESETS hold issue 23's sizes."""

    n_items: int = 2_000
    n_users: int = 3_000
    n_interactions: int = 30_000
    layout: str = "byo"  # byo (items.csv + interactions.csv, app encodes text) | mmrec (precomputed features)
    seed: int = 0
    n_topics: int | None = None  # default round(sqrt(n_items)), clipped to [8, 1000]
    text_dim: int = MINILM_DIM  # mmrec only; the minilm text space is 384-d
    image_dim: int = 512  # mmrec only
    text_space: str = "minilm"  # mmrec only: minilm (MiniLM space, query search works) | random (no model)
    popularity_exponent: float = 0.9  # item weight ~ rank^-exponent inside a topic (0: uniform)
    explore: float = 0.1  # share of interactions drawn by global popularity, not by the user's topics
    text_noise: float = 0.55  # norm of the per-item noise relative to the (unit) topic signal in text_feat
    image_noise: float = 0.8  # same for image_feat
    items_table: bool = True  # mmrec only: write items.csv (titles); False tests the generic "Item N" labels
    name: str | None = None  # mmrec only: NAME of NAME.inter (default: the folder's name)

    def topics(self) -> int:
        if self.n_topics is not None:
            return int(self.n_topics)
        return int(np.clip(round(np.sqrt(self.n_items)), 8, len(CATEGORIES) * len(THEMES)))


@dataclass
class SynthCatalogue:
    """The generated catalogue in memory: integer ids, everything aligned by index."""

    config: SynthConfig
    item_topic: np.ndarray  # (n_items,) int32 topic of each item
    topic_category: np.ndarray  # (n_topics,) int32 index into CATEGORIES
    topic_theme: np.ndarray  # (n_topics,) int32 index into THEMES
    item_noun: np.ndarray  # (n_items,) int8 index into the category's nouns
    item_material: np.ndarray  # (n_items,) int8 index into the category's materials
    item_adjective: np.ndarray  # (n_items,) int8 index into the theme's words
    item_colour: np.ndarray  # (n_items,) int8 index into COLOURS
    item_brand: np.ndarray  # (n_items,) int16 index into BRANDS
    user_topics: np.ndarray  # (n_users, 4) int32 preferred topics (slots beyond a user's count repeat slot 0)
    user_topic_weights: np.ndarray  # (n_users, 4) float64, rows sum to 1
    user: np.ndarray  # (n_interactions,) int32, sorted by user then time
    item: np.ndarray  # (n_interactions,) int32
    rating: np.ndarray  # (n_interactions,) int8 1..5
    timestamp: np.ndarray  # (n_interactions,) int64 unix seconds
    x_label: np.ndarray  # (n_interactions,) int8 MMRec's per-user split: 0 train, 1 valid, 2 test
    stats: dict = field(default_factory=dict)


def _say_none(message: str) -> None:
    return None


def check_config(config: SynthConfig) -> None:
    """A flat list of guards: ValueError naming the argument, what was expected and what was received."""
    if config.layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {list(LAYOUTS)}, got {config.layout!r}")
    if config.text_space not in TEXT_SPACES:
        raise ValueError(f"text_space: expected one of {list(TEXT_SPACES)}, got {config.text_space!r}")
    for name in ("n_items", "n_users", "n_interactions"):
        if int(getattr(config, name)) < 1:
            raise ValueError(f"{name}: expected a positive count, got {getattr(config, name)}")
    if config.n_items < 8:
        raise ValueError(f"n_items: expected at least 8 (one per topic), got {config.n_items}")
    if config.n_interactions < 3 * config.n_users:
        raise ValueError(f"n_interactions: expected at least 3 per user ({3 * config.n_users} for "
                         f"{config.n_users} users: MMRec's split gives each user a train, valid and test row), "
                         f"got {config.n_interactions}")
    if config.n_interactions > 0.2 * config.n_users * config.n_items:
        raise ValueError(f"n_interactions: expected at most 20% of users x items "
                         f"({int(0.2 * config.n_users * config.n_items)}), got {config.n_interactions}")
    max_topics = len(CATEGORIES) * len(THEMES)
    if not 1 <= config.topics() <= min(max_topics, config.n_items):
        raise ValueError(f"n_topics: expected 1..{min(max_topics, config.n_items)}, got {config.topics()}")
    if config.text_space == "minilm" and config.layout == "mmrec" and config.text_dim != MINILM_DIM:
        raise ValueError(f"text_dim: the minilm text space is {MINILM_DIM}-d, got {config.text_dim}; "
                         "use text_space='random' for another width")
    if config.text_dim < 2 or config.image_dim < 2:
        raise ValueError(f"text_dim/image_dim: expected at least 2, got {config.text_dim}/{config.image_dim}")
    if not 0.0 <= config.popularity_exponent <= 3.0:
        raise ValueError(f"popularity_exponent: expected a value in [0, 3], got {config.popularity_exponent}")
    if not 0.0 <= config.explore < 1.0:
        raise ValueError(f"explore: expected a share in [0, 1), got {config.explore}")


# ---------------------------------------------------------------------------------------------------------
# 1. the latent structure and the interactions
# ---------------------------------------------------------------------------------------------------------
def generate(config: SynthConfig, say: Callable[[str], None] = _say_none) -> SynthCatalogue:
    """The catalogue's structure and interactions (no files, no text features)."""
    check_config(config)
    rng = np.random.default_rng(config.seed)
    n_items, n_users, n_topics = config.n_items, config.n_users, config.topics()
    n_cat, n_theme = len(CATEGORIES), len(THEMES)

    # topics: distinct (category, theme) pairs
    pairs = rng.choice(n_cat * n_theme, size=n_topics, replace=False)
    topic_category = (pairs // n_theme).astype(np.int32)
    topic_theme = (pairs % n_theme).astype(np.int32)
    share = rng.lognormal(0.0, 0.5, n_topics)  # topic sizes
    item_topic = rng.choice(n_topics, size=n_items, p=share / share.sum()).astype(np.int32)
    item_topic[rng.permutation(n_items)[:n_topics]] = np.arange(n_topics, dtype=np.int32)  # no empty topic
    topic_pop = np.empty(n_topics)
    topic_pop[rng.permutation(n_topics)] = 1.0 / np.arange(1, n_topics + 1) ** 0.8  # Zipf over topics

    # items grouped by topic; power-law weight by a random rank inside the topic
    order = np.lexsort((rng.random(n_items), item_topic))  # items sorted by topic, random inside
    sizes = np.bincount(item_topic, minlength=n_topics)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.arange(n_items) - np.repeat(starts, sizes)
    weight_sorted = 1.0 / (rank + 1.0) ** config.popularity_exponent
    mass = np.add.reduceat(weight_sorted, starts)
    weight_sorted *= np.repeat(topic_pop / mass, sizes)  # global weight = topic popularity x share in topic
    cum = np.cumsum(weight_sorted)
    lo = np.concatenate([[0.0], cum])[starts]  # cumulative mass before each topic
    hi = cum[starts + sizes - 1]

    # the attributes behind titles and texts
    item_noun = rng.integers(0, 4, n_items, dtype=np.int8)
    item_material = rng.integers(0, 4, n_items, dtype=np.int8)
    item_adjective = rng.integers(0, 5, n_items, dtype=np.int8)
    item_colour = rng.integers(0, len(COLOURS), n_items, dtype=np.int8)
    item_brand = rng.integers(0, len(BRANDS), n_items, dtype=np.int16)

    # users: 1-4 preferred topics with Dirichlet weights
    k = rng.choice(4, size=n_users, p=[0.25, 0.35, 0.25, 0.15]) + 1
    user_topics = rng.choice(n_topics, size=(n_users, 4), p=topic_pop / topic_pop.sum()).astype(np.int32)
    slot_w = rng.gamma(1.0, 1.0, (n_users, 4)) * (np.arange(4)[None, :] < k[:, None])
    user_topics = np.where(slot_w > 0, user_topics, user_topics[:, :1])
    slot_w /= slot_w.sum(1, keepdims=True)
    say(f"structure: {n_topics} topics, {n_items} items, {n_users} users")

    # activity: a floor of 5 (or what the total allows) plus a log-normal share of the rest
    floor = min(_MIN_PER_USER, config.n_interactions // n_users)
    activity = rng.lognormal(0.0, 1.0, n_users)
    counts = floor + rng.multinomial(config.n_interactions - floor * n_users, activity / activity.sum())
    user = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    item = _draw(rng, user, user_topics, slot_w, lo, hi, cum, order, config.explore)
    for round_ in range(30):  # a (user, item) pair appears once: redraw duplicates for the same user
        dup = _duplicates(user, item, n_items)
        if not dup.any():
            break
        # a user who has exhausted their topics' reachable items browses elsewhere: after 5 rounds the redraw
        # leans more and more on global popularity
        explore = config.explore if round_ < 5 else min(1.0, config.explore + 0.1 * (round_ - 4))
        item[dup] = _draw(rng, user[dup], user_topics, slot_w, lo, hi, cum, order, explore)
    dup = _duplicates(user, item, n_items)
    if dup.any():
        user, item = user[~dup], item[~dup]
    say(f"interactions: {len(user)} drawn ({int(dup.sum())} duplicates dropped)")

    # time: per-user start plus exponential gaps, in drawn order (so rows are sorted by user, then time)
    counts = np.bincount(user, minlength=n_users)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    gaps = rng.exponential(20 * _DAY, len(user))
    run = np.cumsum(gaps)
    run -= np.repeat(run[first] - gaps[first], counts)  # cumulative gap inside each user
    start = _BASE_TIME + rng.integers(0, 3 * 365 * _DAY, n_users)
    timestamp = (np.repeat(start, counts) + run).astype(np.int64)

    main_topic = user_topics[np.arange(n_users), np.argmax(slot_w, 1)]
    in_main = item_topic[item] == main_topic[user]
    rating = np.clip(np.rint(3.6 + 0.9 * in_main + rng.normal(0.0, 0.8, len(user))), 1, 5).astype(np.int8)
    x_label = mmrec_labels(user, rng)
    stats = {"n_topics": n_topics, "interactions": int(len(user)), "duplicates_dropped": int(dup.sum()),
             "cold_items": int((np.bincount(item, minlength=n_items) == 0).sum())}
    return SynthCatalogue(config, item_topic, topic_category, topic_theme, item_noun, item_material, item_adjective,
                          item_colour, item_brand, user_topics, slot_w, user, item, rating, timestamp, x_label, stats)


def _draw(rng, user, user_topics, slot_w, lo, hi, cum, order, explore) -> np.ndarray:
    """One item per row of `user`: a preferred topic by the user's weights, an item of it by popularity."""
    n = len(user)
    slot = (rng.random(n)[:, None] > np.cumsum(slot_w[user], 1)[:, :3]).sum(1)
    topic = user_topics[user, slot]
    r = lo[topic] + rng.random(n) * (hi[topic] - lo[topic])
    wild = rng.random(n) < explore
    r[wild] = rng.random(int(wild.sum())) * cum[-1]
    pos = np.minimum(np.searchsorted(cum, r, side="right"), len(cum) - 1)
    return order[pos].astype(np.int32)


def _duplicates(user: np.ndarray, item: np.ndarray, n_items: int) -> np.ndarray:
    """True for every row whose (user, item) pair appeared in an earlier row."""
    key = user.astype(np.int64) * n_items + item
    order = np.argsort(key, kind="stable")  # a sort, not np.unique: numpy 2.4's hash-based unique is ~20x slower
    ordered = key[order]
    dup = np.zeros(len(key), dtype=bool)
    dup[order[1:]] = ordered[1:] == ordered[:-1]  # every repeat after the first (stable: the earliest row stays)
    return dup


def mmrec_labels(user: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MMRec's split (preprocessing/1splitting.ipynb) over each user's rows in a seeded random order.

    A user with n < 10 rows: n-2 train, 1 valid, 1 test; else the last int(0.2 n) rows leave train, half
    (rounded down) valid and the rest test. `user` must be grouped (all rows of a user contiguous).
    """
    n_rows = len(user)
    counts = np.bincount(user)
    order = np.lexsort((rng.random(n_rows), user))  # each user's rows in a random order
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.empty(n_rows, dtype=np.int64)
    pos[order] = np.arange(n_rows) - np.repeat(first, counts)
    n = counts[user]
    val_test = np.where(n < 10, 2, (n * 0.2).astype(np.int64))
    n_val = np.where(n < 10, 1, val_test // 2)
    train_len = n - val_test
    return np.where(pos < train_len, 0, np.where(pos < train_len + n_val, 1, 2)).astype(np.int8)


# ---------------------------------------------------------------------------------------------------------
# 2. titles and texts
# ---------------------------------------------------------------------------------------------------------
def _pick(table: list[tuple[str, ...]], row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """table[row][col] for every item, vectorised through a padded string array."""
    width = max(len(t) for t in table)
    grid = np.array([list(t) + [t[-1]] * (width - len(t)) for t in table], dtype=object)
    return grid[row, col]


def item_words(cat: SynthCatalogue) -> dict[str, np.ndarray]:
    """Per item (object arrays): category, theme, noun, material, adjective, colour, brand."""
    names = list(CATEGORIES)
    themes = list(THEMES)
    c = cat.topic_category[cat.item_topic]
    t = cat.topic_theme[cat.item_topic]
    return {
        "category": np.array(names, dtype=object)[c],
        "theme": np.array(themes, dtype=object)[t],
        "noun": _pick([CATEGORIES[n][0] for n in names], c, cat.item_noun),
        "material": _pick([CATEGORIES[n][1] for n in names], c, cat.item_material),
        "adjective": _pick([THEMES[n] for n in themes], t, cat.item_adjective),
        "colour": np.array(COLOURS, dtype=object)[cat.item_colour],
        "brand": np.array(BRANDS, dtype=object)[cat.item_brand],
    }


def titles_and_texts(cat: SynthCatalogue) -> tuple[list[str], list[str], list[str]]:
    """(titles, texts, genres): "Oakcrest warm navy wool parka", a sentence from the topic's words, category."""
    w = item_words(cat)
    titles = [f"{b} {a} {c} {m} {n}" for b, a, c, m, n in
              zip(w["brand"], w["adjective"], w["colour"], w["material"], w["noun"])]
    texts = [f"{title}. A {a} {n} in {c} {m} from {b}, for {th} {cg} lovers. Category: {cg}; theme: {th}."
             for title, a, n, c, m, b, th, cg in
             zip(titles, w["adjective"], w["noun"], w["colour"], w["material"], w["brand"], w["theme"],
                 w["category"])]
    return titles, texts, list(w["category"])


def item_ids(n: int, prefix: str = "P") -> np.ndarray:
    """Stable string ids: "P0000000", ... (8 characters up to 10^7 items)."""
    width = max(7, len(str(n - 1)))
    return np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), width)).astype(object)


# ---------------------------------------------------------------------------------------------------------
# 3. precomputed features (mmrec layout)
# ---------------------------------------------------------------------------------------------------------
def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _minilm_vectors(phrases: list[str], encode: Callable[[list[str]], np.ndarray] | None) -> np.ndarray:
    if encode is None:
        from recommenders.features import encode_texts

        encode = encode_texts
    return np.asarray(encode(phrases), dtype=np.float32)


def text_bases(cat: SynthCatalogue, encode: Callable[[list[str]], np.ndarray] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(topic (n_topics, d), noun (n_cat*4, d), colour (n_colours, d)) unit vectors of the text space."""
    cfg = cat.config
    names, themes = list(CATEGORIES), list(THEMES)
    if cfg.text_space == "minilm":
        topic_phrases = [f"{THEMES[themes[t]][0]} {names[c]}: {', '.join(THEMES[themes[t]][1:3])} "
                         f"{CATEGORIES[names[c]][0][0]}" for c, t in zip(cat.topic_category, cat.topic_theme)]
        nouns = [f"{n} {CATEGORIES[c][1][0]}" for c in names for n in CATEGORIES[c][0]]
        vecs = _minilm_vectors(topic_phrases + nouns + list(COLOURS), encode)
        if vecs.shape[1] != cfg.text_dim:
            raise ValueError(f"text_dim: the encoder gave {vecs.shape[1]}-d vectors, expected {cfg.text_dim}")
        vecs = _unit(vecs)
        a, b = len(topic_phrases), len(topic_phrases) + len(nouns)
        return vecs[:a], vecs[a:b], vecs[b:]
    rng = np.random.default_rng([cfg.seed, 1])
    d = cfg.text_dim
    cat_v = _unit(rng.standard_normal((len(names), d)))
    theme_v = _unit(rng.standard_normal((len(themes), d)))
    topic = _unit(cat_v[cat.topic_category] + 0.8 * theme_v[cat.topic_theme])
    noun = _unit(np.repeat(cat_v, 4, 0) + 0.7 * rng.standard_normal((len(names) * 4, d)) / np.sqrt(d) * 3)
    colour = _unit(rng.standard_normal((len(COLOURS), d)))
    return topic.astype(np.float32), noun.astype(np.float32), colour.astype(np.float32)


class _NpyWriter:
    """Appends float32 rows to a `.npy` file through a plain file handle (no memory map: pages written are not
    kept in this process's resident set). Checks that exactly `shape[0]` rows were written."""

    def __init__(self, path: Path, shape: tuple[int, int]) -> None:
        self.path, self.shape, self.rows = Path(path), shape, 0
        self.file = open(self.path, "wb")
        np.lib.format.write_array_header_1_0(
            self.file, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                        "shape": shape})

    def write(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.shape[1]:
            raise ValueError(f"{self.path.name}: expected rows of width {self.shape[1]}, got {rows.shape}")
        self.file.write(rows.tobytes())
        self.rows += len(rows)

    def __enter__(self) -> "_NpyWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.file.close()
        if exc_type is None and self.rows != self.shape[0]:
            raise ValueError(f"{self.path.name}: wrote {self.rows} rows, expected {self.shape[0]}")


_NOISE_BLOCK = 8_192  # noise rows come from a generator per block of this many rows


def _noise(seed: int, stream: int, start: int, stop: int, dim: int) -> np.ndarray:
    """Standard normal rows start..stop of a seeded stream, the same whatever chunks they are asked in."""
    out = np.empty((stop - start, dim), dtype=np.float32)
    for block in range(start // _NOISE_BLOCK, (stop - 1) // _NOISE_BLOCK + 1):
        b0 = block * _NOISE_BLOCK
        rows = np.random.default_rng([seed, stream, block]).standard_normal((_NOISE_BLOCK, dim), dtype=np.float32)
        lo, hi = max(start, b0), min(stop, b0 + _NOISE_BLOCK)
        out[lo - start: hi - start] = rows[lo - b0: hi - b0]
    return out


def write_features(cat: SynthCatalogue, folder: Path, chunk: int = 65_536,
                   encode: Callable[[list[str]], np.ndarray] | None = None,
                   say: Callable[[str], None] = _say_none) -> dict[str, str]:
    """text_feat.npy and image_feat.npy (float32, row = itemID), written chunk by chunk.

    text row = unit(topic + 0.45 noun + 0.2 colour + noise); image row = unit(category + 0.6 colour +
    0.3 topic + noise) in a random 512-d space. Returns {modality: what made it} for dataset.yaml.
    """
    cfg = cat.config
    n = cfg.n_items
    topic_v, noun_v, colour_v = text_bases(cat, encode)
    rng_i = np.random.default_rng([cfg.seed, 2])
    di = cfg.image_dim
    img_cat = _unit(rng_i.standard_normal((len(CATEGORIES), di))).astype(np.float32)
    img_colour = _unit(rng_i.standard_normal((len(COLOURS), di))).astype(np.float32)
    img_topic = _unit(rng_i.standard_normal((cfg.topics(), di))).astype(np.float32)
    noun_row = cat.topic_category[cat.item_topic] * 4 + cat.item_noun
    with _NpyWriter(folder / "text_feat.npy", (n, cfg.text_dim)) as text, \
            _NpyWriter(folder / "image_feat.npy", (n, di)) as image:
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            t = cat.item_topic[s:e]
            x = topic_v[t] + 0.45 * noun_v[noun_row[s:e]] + 0.2 * colour_v[cat.item_colour[s:e]]
            x += _noise(cfg.seed, 3, s, e, cfg.text_dim) * (cfg.text_noise / np.sqrt(cfg.text_dim))
            text.write(_unit(x))
            y = img_cat[cat.topic_category[t]] + 0.6 * img_colour[cat.item_colour[s:e]] + 0.3 * img_topic[t]
            y += _noise(cfg.seed, 4, s, e, di) * (cfg.image_noise / np.sqrt(di))
            image.write(_unit(y))
            if e == n or (s // chunk) % 4 == 3:
                say(f"features: {e}/{n} items")
    return {"text": "all-MiniLM-L6-v2" if cfg.text_space == "minilm" else "synthetic",
            "image": "synthetic"}


# ---------------------------------------------------------------------------------------------------------
# 4. files
# ---------------------------------------------------------------------------------------------------------
def _write_csv(table, path: Path, delimiter: str = ",", quote: bool = False) -> None:
    """pyarrow's CSV writer; `quote=True` for free text (titles may hold commas), else ids and numbers bare."""
    import pyarrow.csv as pacsv

    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(
        delimiter=delimiter, quoting_style="needed" if quote else "none", quoting_header="none"))


def _write_yaml(folder: Path, features: dict[str, str] | None) -> None:
    lines = ["# a synthetic catalogue made by recommenders.synthetic (python -m recommenders synth)",
             "domain: product"]
    if features:
        lines.append("features:  # the encoder behind each precomputed feature file")
        lines += [f"  {k}: {v}" for k, v in features.items()]
    (folder / "dataset.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_catalogue(config: SynthConfig, out: Path, overwrite: bool = False,
                    encode: Callable[[list[str]], np.ndarray] | None = None,
                    say: Callable[[str], None] = _say_none) -> dict:
    """Generate `config` into the folder `out` (written into `out.partial` and renamed). Returns a summary.

    `encode` (texts -> (n, d) array) replaces the packaged MiniLM for the minilm text space (tests).
    """
    import pyarrow as pa

    check_config(config)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"out: {out} exists and is not empty; pass overwrite=True (--overwrite) "
                                  "to replace it")
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    try:
        cat = generate(config, say)
        t_gen = time.perf_counter() - t0
        iids = item_ids(config.n_items, "P")
        uids = item_ids(config.n_users, "U")
        files: list[str] = []
        if config.layout == "byo" or config.items_table:
            titles, texts, genres = titles_and_texts(cat)
            columns = {"item_id": iids, "title": titles, "text": texts, "genres": genres}
            _write_csv(pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()}), tmp / "items.csv",
                       quote=True)
            del titles, texts, genres, columns
            files.append("items.csv")
            say("items.csv written")
        if config.layout == "byo":
            _write_csv(pa.table({"user_id": pa.array(uids[cat.user], pa.string()),
                                 "item_id": pa.array(iids[cat.item], pa.string()),
                                 "rating": cat.rating.astype(np.float32), "timestamp": cat.timestamp}),
                       tmp / "interactions.csv")
            files.append("interactions.csv")
            _write_yaml(tmp, None)
        else:
            name = config.name or out.name
            _write_csv(pa.table({"userID": cat.user, "itemID": cat.item, "rating": cat.rating.astype(np.float32),
                                 "timestamp": cat.timestamp, "x_label": cat.x_label}),
                       tmp / f"{name}.inter", delimiter="\t")
            _write_csv(pa.table({"asin": pa.array(iids, pa.string()), "itemID": np.arange(config.n_items)}),
                       tmp / "i_id_mapping.csv", delimiter="\t")
            _write_csv(pa.table({"user_id": pa.array(uids, pa.string()), "userID": np.arange(config.n_users)}),
                       tmp / "u_id_mapping.csv", delimiter="\t")
            say(f"{name}.inter written")
            provenance = write_features(cat, tmp, encode=encode, say=say)
            _write_yaml(tmp, provenance)
            files += [f"{name}.inter", "i_id_mapping.csv", "u_id_mapping.csv", "text_feat.npy", "image_feat.npy"]
        files.append("dataset.yaml")
        summary = {"config": asdict(config), "folder": str(out), "files": sorted(files), **cat.stats,
                   "users": config.n_users, "items": config.n_items,
                   "generate_seconds": round(t_gen, 2), "total_seconds": round(time.perf_counter() - t0, 2)}
        (tmp / "synth.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
