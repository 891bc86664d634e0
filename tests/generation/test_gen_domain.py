"""The domain is data: books, products and songs get their own words everywhere (no film, movie or poster),
MovieLens keeps its film words, and preference keywords come from the liked items (LLM or TF-IDF)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.web.cards import CardView, labeling_guidelines, render_card, render_detail, render_profile
from generation.captions import (KEYWORD_REGEX, SYSTEM_PROMPT, CaptionGenerator, caption_request, parse_keywords,
                                 template_caption)
from generation.covers import CoverGenerator
from generation.domain import BOOK, FILM, GENERIC, MUSIC, PRODUCT, Domain
from generation.errors import InvalidInputError
from generation.profile import KeyphraseIndex, build_profile
from generation.prompts import ItemInfo, build_prompt, prompt_pair
from recommenders.catalog import write_synthetic_catalog
from recommenders.data import load_dataset

FILM_WORDS = re.compile(r"film|movie|poster|cinema", re.I)


def _catalogue(root: Path, domain: str):
    ds = load_dataset(write_synthetic_catalog(root / domain, domain, n_items=16, n_users=8), root)
    items = {
        r.item_id: ItemInfo(r.item_id, r.title, int(r.year), list(r.genres), r.text, r.image)
        for r in ds.items.itertuples()
    }
    return ds, items


def _history(ds, user: str) -> list[dict]:
    rows = []
    by_id = ds.items.set_index("item_id")
    for r in ds.interactions.query("user_id == @user").itertuples():
        item = by_id.loc[r.item_id]
        rows.append({"item_id": r.item_id, "title": item["title"], "text": item["text"], "genres": list(item["genres"]),
                     "year": int(item["year"]), "rating": float(r.rating), "timestamp": int(r.timestamp)})
    return rows


@pytest.mark.parametrize("name, domain", [("book", BOOK), ("product", PRODUCT), ("music", MUSIC)])
def test_books_products_and_songs_get_their_own_words(tmp_path, tiny_lm_dir, name, domain):
    ds, items = _catalogue(tmp_path, name)
    assert Domain.from_spec(ds.domain) == domain
    corpus = KeyphraseIndex(ds.items["text"], domain)
    profile = build_profile("u0", _history(ds, "u0"), domain=domain, corpus=corpus)
    assert profile.keywords and profile.top_genres
    strings: list[str] = [domain.system_prompt(), domain.keyword_system_prompt(), labeling_guidelines(domain.ui_words())]
    for item in items.values():
        for who in (profile, None):
            strings += [p.text for p in prompt_pair(item, who, 0.5, domain)]
            strings.append(caption_request(item, who, 220, domain))
            strings += [template_caption(item, who, seed, n, domain) for seed in range(3) for n in (60, 220)]
        strings.append(render_card(CardView(item.item_id, item.title, item.year, item.genres, cover_src="covers/a/c.jpg",
                                            item_image_src=f"item-image?id={item.item_id}", caption="x"), 0, lead="item"))
        strings.append(render_detail(item.title, item.year, item.genres, item.text, "covers/a/c.jpg",
                                     f"item-image?id={item.item_id}", "item"))
    strings.append(render_profile("u0", profile.top_genres, profile.liked_titles, 5))
    # the generators themselves: the template fallback, the tiny LLM (gibberish -> template) and the cover fallback
    item = next(iter(items.values()))
    for captions in (CaptionGenerator(None, tmp_path / "a", domain=domain),
                     CaptionGenerator(str(tiny_lm_dir), tmp_path / "a", domain=domain, max_new_tokens=8)):
        asset = captions.generate(item, profile, seed=1)
        strings += [asset.text, asset.prompt, str(asset.params.get("system_prompt", ""))]
    cover = CoverGenerator(None, tmp_path / "a", domain=domain, size=64).generate(item, profile)[0]
    strings.append(cover.prompt)
    offending = [s for s in strings if FILM_WORDS.search(s)]
    assert not offending, offending[:3]
    # and they are this domain's words
    assert domain.subject(item.title) in build_prompt(item, profile, 0.5, domain).text
    assert f"{domain.noun.capitalize()}: {item.label}, {item.genres[0].lower()}." in caption_request(
        item, profile, 220, domain)
    assert domain.audience in domain.system_prompt()


def test_movielens_keeps_its_film_words(tmp_path, toy_story, scifi_fan):
    assert Domain.from_spec(load_dataset("ml-100k", tmp_path).domain) == FILM
    assert build_prompt(toy_story, None).text == build_prompt(toy_story, None, 0.0, FILM).text
    assert build_prompt(toy_story, None).text.startswith('poster art for the film "Toy Story" (1995), ')
    assert build_prompt(toy_story, None).text.endswith("cinematic composition, highly detailed")
    assert SYSTEM_PROMPT == FILM.system_prompt() == (
        "You write one or two short sentences telling a viewer why a film suits them. "
        "Speak to the viewer as 'you'. Use only the facts given. Plain text only: no lists, no markdown, no emoji."
    )
    request = caption_request(toy_story, None, 220)
    assert request.startswith("Film: Toy Story (1995), animation, children's and comedy.")
    assert request.endswith("why Toy Story is worth watching.")
    assert "The viewer loved: " in caption_request(toy_story, scifi_fan, 220)
    assert template_caption(toy_story, None, 0, 220) == \
        "Toy Story (1995) is a film of animation, children's and comedy, picked for you."
    guide = labeling_guidelines()
    assert "two covers (or two captions) of the same film" in guide and "liked films" in guide
    assert "unknown film" in guide


def test_declared_noun_and_style_hints_are_used(tmp_path):
    domain = Domain.from_spec({"domain": "book", "noun": "novel", "style_hints": {"Sci-Fi": ["chrome starscapes"]}})
    item = ItemInfo("1", "Dune", 1965, ["Sci-Fi"], "Spice and sandworms on a desert planet.")
    prompt = build_prompt(item, None, 0.0, domain)
    assert prompt.text.startswith('cover art for the novel "Dune" (1965), chrome starscapes, ')
    assert "a novel of sci-fi" in template_caption(item, None, 0, 220, domain)
    assert domain.ui_words()["items"] == "novels" and "novel" in domain.stopwords
    assert Domain.from_spec(None) == GENERIC and Domain.from_spec("music") == MUSIC
    for bad in ({"domain": "podcast"}, {"domain": "book", "noun": "<b>"}, 42):
        with pytest.raises(InvalidInputError):
            Domain.from_spec(bad)


# -- preference keywords --------------------------------------------------------------------------------------
def test_tfidf_keywords_come_from_the_liked_items(tmp_path):
    ds, items = _catalogue(tmp_path, "book")
    corpus = KeyphraseIndex(ds.items["text"], BOOK)
    fantasy = build_profile("u0", _history(ds, "u0"), domain=BOOK, corpus=corpus)
    mystery = build_profile("u1", _history(ds, "u1"), domain=BOOK, corpus=corpus)
    vocab = {"fantasy": {"dragons", "wizards", "enchanted forests", "ancient prophecy", "sword and sorcery"},
             "mystery": {"detective", "locked room", "poisoned heiress", "missing diaries", "village secrets"}}
    def words(keywords):
        return {w for k in keywords for w in k.split()}
    assert fantasy.top_genres[0] == "Fantasy" and "fantasy" in fantasy.keywords  # no style hints: the genre name
    assert words(fantasy.keywords) & words(vocab["fantasy"]) and not words(fantasy.keywords) & words(vocab["mystery"])
    assert words(mystery.keywords) & words(vocab["mystery"]) and not words(mystery.keywords) & words(vocab["fantasy"])
    assert fantasy.keyword_source == "tfidf"


def test_idf_puts_a_rare_phrase_before_a_common_one():
    texts = [f"Common harbour tale number {i}." for i in range(20)] + ["Common harbour with lighthouse keepers."] * 2
    history = [{"item_id": str(i), "title": f"T{i}", "text": texts[20 + i], "rating": 5.0, "timestamp": i}
               for i in range(2)]
    corpus = KeyphraseIndex(texts, GENERIC)
    ranked = build_profile("u", history, domain=GENERIC, corpus=corpus).keywords
    assert ranked.index("lighthouse") < ranked.index("common")
    plain = build_profile("u", history, domain=GENERIC).keywords  # without a corpus: no IDF, a tie broken by name
    assert plain.index("common") < plain.index("lighthouse")
    assert "lighthouse keepers" not in ranked  # both of its words are keywords already


def test_the_llm_names_the_preferences_when_it_can(tiny_lm_dir, tmp_path, monkeypatch, scifi_history):
    captions = CaptionGenerator(str(tiny_lm_dir), tmp_path / "a", domain=BOOK).load()
    liked = [ItemInfo(r["item_id"], r["title"], 1990, r["genres"], r["text"]) for r in scifi_history[:3]]
    assert captions.preference_keywords(liked) is None  # random weights write noise: refused, TF-IDF is used
    seen = {}

    def reply(messages, seed, n, greedy=None, max_new_tokens=None, one_line=True, regex=None, accept=None):
        seen.update(request=messages[-1]["content"], system=messages[0]["content"], greedy=greedy,
                    one_line=one_line, roles=[m["role"] for m in messages], regex=regex)
        return ["1. Galactic empire\n2. deep space, space rebels, the, dum dum"]

    monkeypatch.setattr(captions, "_complete_many", reply)
    captions._keywords.clear()
    keywords = captions.preference_keywords(liked)
    assert keywords == ["galactic empire", "deep space", "space rebels"]  # "dum dum": no liked item's words
    assert "Star Wars" in seen["request"] and "liked these books" in seen["request"]
    assert seen["system"] == BOOK.keyword_system_prompt()
    profile = build_profile("u", scifi_history, domain=BOOK, llm_keywords=keywords)
    assert profile.keywords[:3] == keywords and profile.keyword_source == "llm"
    assert len(profile.keywords) > 3  # topped up from the liked items' text
    assert CaptionGenerator(None, tmp_path / "b").preference_keywords(liked) is None  # no LLM: TF-IDF
    assert seen["greedy"] is True and seen["one_line"] is False  # a list may follow a heading line
    assert seen["regex"] == KEYWORD_REGEX  # ONNX Runtime constrains the reply to a comma-separated list
    assert seen["roles"] == ["system", "user", "assistant", "user"]  # a worked example first


def test_keywords_without_waiting_are_named_in_the_background(tiny_lm_dir, tmp_path, monkeypatch, scifi_history):
    import threading

    captions = CaptionGenerator(str(tiny_lm_dir), tmp_path / "a", domain=BOOK).load()
    liked = [ItemInfo(r["item_id"], r["title"], 1990, r["genres"], r["text"]) for r in scifi_history[:3]]
    release, threads = threading.Event(), []

    def slow_reply(messages, seed, n, greedy=None, max_new_tokens=None, one_line=True, regex=None, accept=None):
        threads.append(threading.current_thread().name)
        assert release.wait(10)
        return ["galactic empire, deep space"]

    monkeypatch.setattr(captions, "_complete_many", slow_reply)
    assert captions.preference_keywords(liked, wait=False) is None  # at once: the model runs elsewhere
    assert captions.preference_keywords(liked, wait=False) is None  # still naming them: queued once
    release.set()
    captions._keywords_pool.shutdown(wait=True)
    assert threads == ["caption-keywords_0"]
    assert captions.preference_keywords(liked, wait=False) == ["galactic empire", "deep space"]


@pytest.mark.parametrize("raw, expected", [
    ("dark humour, space opera, slow burn", ["dark humour", "space opera", "slow burn"]),
    ("- **Gothic** mood\n- misty moors\n", ["gothic mood", "misty moors"]),
    ("xqzt, bbbrrr, 12345", None),
    ("The viewer would enjoy many things about this wonderful story.", None),
    ("only", None),
])
def test_parse_keywords(raw, expected):
    assert parse_keywords(raw, 8) == expected


# -- the item's own picture -----------------------------------------------------------------------------------
@pytest.fixture
def pictured(tmp_path):
    from PIL import Image

    paths = []
    for i, colour in enumerate([(220, 40, 40), (40, 40, 220)]):
        path = tmp_path / f"item{i}.png"
        Image.new("RGB", (80, 120), colour).save(path)
        paths.append(str(path))
    return [ItemInfo(f"b{i}", f"Book {i}", 2001, ["Fantasy"], "Dragons over the sea.", p) for i, p in enumerate(paths)]


def test_img2img_starts_from_the_items_picture(tiny_sd_dir, tmp_path, pictured):
    import numpy as np
    import torch
    from diffusers import AutoPipelineForImage2Image
    from PIL import Image, ImageOps

    covers = CoverGenerator(str(tiny_sd_dir), tmp_path / "a", size=64, steps=2, init_strength=0.5, domain=BOOK,
                            fallback_on_error=False, image_format="png")
    red, blue = (covers.generate(item, None, seed=3)[0] for item in pictured)
    assert red.params["pipeline"] == "image-to-image" and red.params["init_strength"] == 0.5
    assert red.params["init_image"] == pictured[0].image and red.prompt.startswith('cover art for the book "Book 0"')
    # no hidden changes: the art is what a bare diffusers image-to-image call makes from the same inputs
    pipe = AutoPipelineForImage2Image.from_pretrained(str(tiny_sd_dir))
    pipe.set_progress_bar_config(disable=True)
    bare = pipe(red.prompt, image=ImageOps.fit(Image.open(pictured[0].image).convert("RGB"), (64, 64)), strength=0.5,
                num_inference_steps=2, guidance_scale=0.0, generator=torch.Generator().manual_seed(3)).images[0]
    from generation.compose import compose_poster

    art = np.asarray(Image.open(red.path))[:64].astype(int)
    expected = np.asarray(compose_poster(bare, "Book 0", 2001)).astype(int)
    assert np.array_equal(np.asarray(Image.open(red.path)).astype(int), expected)
    assert np.abs(art - np.asarray(Image.open(blue.path))[:64].astype(int)).mean() > 1.0  # another picture
    plain = CoverGenerator(str(tiny_sd_dir), tmp_path / "b", size=64, steps=2, domain=BOOK, fallback_on_error=False,
                           image_format="png").generate(pictured[0], None, seed=3)[0]
    assert "pipeline" not in plain.params and plain.content_hash != red.content_hash  # text-to-image
    stronger = CoverGenerator(str(tiny_sd_dir), tmp_path / "a", size=64, steps=2, init_strength=1.0, domain=BOOK,
                              fallback_on_error=False).generate(pictured[0], None, seed=3)[0]
    assert stronger.content_hash != red.content_hash  # the strength is part of the key
    again = covers.generate(pictured[0], None, seed=3)[0]
    assert again.cache_hit and again.content_hash == red.content_hash
    steps = []
    covers.generate(pictured[1], None, seed=9, callback=lambda s, t: steps.append((s, t)))
    assert steps[-1] == (2, 2)  # progress completes although image-to-image skipped a step


def test_init_strength_is_checked_and_the_fallback_frames_the_picture(tmp_path, pictured):
    import numpy as np
    from PIL import Image

    for bad in (0, 1.5, True, "half"):
        with pytest.raises(InvalidInputError, match="init_strength"):
            CoverGenerator(None, tmp_path, init_strength=bad)
    with pytest.raises(InvalidInputError, match="steps \\* init_strength >= 1"):
        CoverGenerator(None, tmp_path, steps=2, init_strength=0.4)
    asset = CoverGenerator(None, tmp_path, size=64).generate(pictured[0], None)[0]
    assert asset.fallback and asset.params["renderer"] == "item-image-v1"
    top = np.asarray(Image.open(asset.path))[:40].reshape(-1, 3).mean(0)
    assert top[0] > 150 and top[2] < 90  # the red picture fills the art area
    missing = ItemInfo("z", "Gone", None, [], "", str(tmp_path / "nope.png"))
    with pytest.raises(InvalidInputError, match="item.image"):
        CoverGenerator(None, tmp_path).generate(missing, None)


def test_cards_lead_with_the_chosen_picture():
    card = CardView("1", "Dune", 1965, ["Sci-Fi"], cover_src="covers/ab/c.jpg", item_image_src='item-image?id="x')
    generated, own = render_card(card, lead="generated"), render_card(card, lead="item")
    first = lambda html: re.search(r'<img class="([^"]+)" src="([^"]+)"', html).groups()  # noqa: E731
    assert first(generated) == ("vt-cover-img", "covers/ab/c.jpg")
    assert first(own) == ("vt-cover-img vt-item-img", "item-image?id=&quot;x")
    assert 'class="vt-inset vt-item-img"' in generated and 'class="vt-inset" src="covers/ab/c.jpg"' in own
    pending = render_card(CardView("1", "Dune", item_image_src="item-image?id=1"), lead="item")
    assert "vt-cover-pending" not in pending and "vt-inset" not in pending  # the item's picture needs no waiting
    detail = render_detail("Dune", 1965, [], "", "covers/ab/c.jpg", "item-image?id=1", lead="item")
    assert detail.index("item-image?id=1") < detail.index("covers/ab/c.jpg")
    with pytest.raises(ValueError, match="lead: expected one of"):
        render_card(card, lead="both")
