"""A bring-your-own catalog in the app: its domain's words everywhere, its items' own pictures on the cards,
text features kept when no image model is there (so a content model is served), and a screenshot of Discover."""

from __future__ import annotations

import re

import pytest

from app.web import discover_tab, status_tab
from app.web.state import Visitor
from vitrine_app_fixtures import free_port, make_settings

FILM_WORDS = re.compile(r"\b(film|films|movie|movies|poster|posters|cinema)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    from recommenders.catalog import write_synthetic_catalog

    from app.serving.services import build_services

    root = tmp_path_factory.mktemp("byo")
    folder = write_synthetic_catalog(root / "books", "book", n_items=24, n_users=12, seed=3)
    # no image model (as on a machine without CLIP): the text model is the packaged MiniLM
    settings = make_settings(root / "data", dataset=str(folder), model=None, extra_models=("ease",),
                             image_model=None, card_lead="item")
    svc = build_services(settings, say=lambda msg: None)
    yield svc
    svc.close()


def test_text_features_survive_a_missing_image_model(books):
    assert "text" in books.features and "image" not in books.features
    assert books.ranking.default_model == "ease-text"  # the content model is served, not plain ease
    assert any("image" in note and "VITRINE_IMAGE_MODEL" in note for note in books.notes)
    assert "VITRINE_IMAGE_MODEL" in status_tab.status_html(books)


def test_the_catalog_speaks_its_own_domain(books):
    from app.web.ui import build_demo

    visitor, profile = discover_tab.select_user(books, Visitor(), books.catalog.user_ids[0])
    visitor, cards, info = discover_tab.recommend(books, visitor, "ease-text", None)
    steps = list(discover_tab.fill_assets(books, visitor, poll_s=0.02))
    visitor, cards = steps[-1]
    config = str(build_demo(books).config)
    assert "book" in config.lower()  # the guidelines say "book"
    for shown in (profile, info, *cards, config):
        assert not FILM_WORDS.search(shown), FILM_WORDS.search(shown)
    for row in visitor.slate:
        assert row["image"] and row["image"].startswith(str(books.catalog.dataset.folder))
        assert not FILM_WORDS.search(visitor.captions[row["item_id"]]["text"])
    assert all("vt-item-img" in card for card in cards if card)


@pytest.mark.browser
def test_discover_shows_the_items_own_pictures(books, browser, artifacts_dir):
    from app.web.ui import build_demo
    from app.web.launch import enable_queue, launch_kwargs

    demo = build_demo(books)
    enable_queue(demo, books.settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_kwargs(books))
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/")
        user = books.catalog.user_ids[1]
        page.click("#vt-user input")
        page.keyboard.type(user)
        # the suggestions for what was typed come first: the exact id leads them
        page.wait_for_function("u => (document.querySelector('#vt-user [role=option]') || {}).innerText"
                               " ?.startsWith(u + ' ·')", arg=user)
        page.get_by_role("option", name=re.compile(rf"^{user} ·")).first.click()
        page.wait_for_selector("#vt-card-0 img.vt-item-img")
        page.wait_for_function("() => [...document.querySelectorAll('#vt-card-0 img.vt-item-img')]"
                               ".every(img => img.complete && img.naturalWidth > 0)")
        page.screenshot(path=str(artifacts_dir / "app-byo-books.png"), full_page=True)
        assert not FILM_WORDS.search(page.inner_text("body"))
        page.close()
    finally:
        demo.close()


def test_pictures_are_served_by_name_and_no_page_shows_a_server_path(books):
    """Cards point at /covers/<key> and /item-image?id=<item> (app.web.routes), never at a file of the data dir or of
    the dataset folder; both routes serve the exact files and answer 404 to anything else."""
    import requests

    from app.web.ui import build_demo
    from app.web.launch import enable_queue, launch_kwargs

    visitor, _ = discover_tab.select_user(books, Visitor(), books.catalog.user_ids[2])
    visitor, _, _ = discover_tab.recommend(books, visitor, "ease-text", None)
    visitor, cards = list(discover_tab.fill_assets(books, visitor, poll_s=0.02))[-1]
    row = visitor.slate[0]
    _, _, detail, _ = discover_tab.card_feedback(books, visitor, 0, "open")
    html = "".join(cards) + detail
    for secret in (str(books.settings.data_dir), str(books.catalog.dataset.folder), "gradio_api/file="):
        assert secret not in html
    srcs = re.findall(r'src="([^"]+)"', html)
    assert any(s.startswith("covers/") for s in srcs) and any(s.startswith("item-image?id=") for s in srcs)
    demo = build_demo(books)
    enable_queue(demo, books.settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_kwargs(books))
    try:
        base = f"http://127.0.0.1:{port}/"
        for src in set(srcs):
            answer = requests.get(base + src.replace("&amp;", "&"), timeout=30)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("image/"), src
        own = requests.get(base + f"item-image?id={row['item_id']}", timeout=30)
        assert own.content == open(row["image"], "rb").read()
        cover = visitor.covers[row["item_id"]]
        assert requests.get(base + cover["src"], timeout=30).content == open(books.assets.file(cover["key"]), "rb").read()
        for bad in ("item-image?id=nope", "item-image?id=", "item-image?id=..%2Fitems.csv", "covers/ab/x.jpg",
                    "covers/00/" + "0" * 64 + ".jpg"):
            assert requests.get(base + bad, timeout=30).status_code == 404, bad
    finally:
        demo.close()
