"""A page that does not grow with the catalogue (issue 23 item 4), on a generated catalogue of 40,000 items.

No control lists every item or user: the page's config (`/config`, what a browser loads before anything else) is
as small at 40k items as at 24, and the pickers find items by title and by meaning through the search indexes the
catalog builds at start (`recommenders.lookup`). The services are built once for the module, with `pop` only and
the fallback generators; the catalogue is `recommenders.synthetic`'s MMRec layout with MiniLM-space text features.
"""

from __future__ import annotations

import pytest
import requests

from app.web import discover_tab
from vitrine_app_fixtures import free_port, make_settings

N_ITEMS = 40_000
CONFIG_MAX_BYTES = 160_000  # the page's config, whatever the catalogue's size (about 118 KB at 24 and at 40k items)
CONFIG_SPREAD_BYTES = 8_000  # how much more the 40k page may weigh than the 24-item one (longer titles in suggestions)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """(url, services) of the app over a 40k-item catalogue."""
    from app.serving.services import build_services
    from app.web.ui import build_demo
    from app.web.launch import enable_queue, launch_kwargs
    from recommenders.data import load_dataset
    from recommenders.features import precomputed_features
    from recommenders.synthetic import SynthConfig, write_catalogue

    root = tmp_path_factory.mktemp("big")
    write_catalogue(SynthConfig(n_items=N_ITEMS, n_users=2_000, n_interactions=20_000, layout="mmrec", image_dim=8,
                                seed=3), root / "catalogue")
    dataset = load_dataset(str(root / "catalogue"), root / "data")
    text = precomputed_features(dataset)["text"]  # all-MiniLM-L6-v2 space (dataset.yaml says so)
    svc = build_services(make_settings(root / "app", model="pop", extra_models=()), dataset=dataset,
                         features={"text": text}, say=lambda msg: None)
    demo = build_demo(svc)
    enable_queue(demo, svc.settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_kwargs(svc))
    yield f"http://127.0.0.1:{port}/", svc
    demo.close()
    svc.close()


def _config_bytes(url: str) -> int:
    answer = requests.get(url + "config", timeout=60)
    assert answer.status_code == 200
    return len(answer.content)


def test_the_page_config_does_not_grow_with_the_catalogue(big, live_app):
    big_url, svc = big
    tiny_url, tiny = live_app
    assert len(svc.catalog.item_ids) == N_ITEMS and len(tiny.catalog.item_ids) == 24
    big_bytes, tiny_bytes = _config_bytes(big_url), _config_bytes(tiny_url)
    print(f"/config: {big_bytes} bytes at {N_ITEMS} items, {tiny_bytes} bytes at 24 items")
    assert big_bytes < CONFIG_MAX_BYTES
    assert big_bytes - tiny_bytes < CONFIG_SPREAD_BYTES
    # what the pickers start with: a few suggestions, not the catalogue
    config = requests.get(big_url + "config", timeout=60).json()
    choices = {c["props"].get("elem_id"): len(c["props"].get("choices") or []) for c in config["components"]
               if c.get("type") == "dropdown" and c["props"].get("elem_id") in ("vt-user", "vt-picks", "vt-create-item")}
    assert choices == {"vt-user": 20, "vt-picks": 20, "vt-create-item": 20}


def test_search_finds_an_item_by_title_by_id_and_by_meaning(big):
    _, svc = big
    items = svc.catalog.dataset.items
    title, item_id = items["title"].iloc[12_345], items["item_id"].iloc[12_345]
    by_title = discover_tab.search_items(svc, title)["choices"]
    assert by_title[0] == (title, item_id) and len(by_title) == 20
    assert discover_tab.search_items(svc, " ".join(title.split()[1:3]))["choices"], "two words of it find matches too"
    assert discover_tab.search_items(svc, item_id)["choices"][0] == (title, item_id)  # an exact id first
    assert svc.catalog.meaning_search == (True, "")
    for query, category in (("a warm wool coat for winter", "outerwear"),
                            ("something to read to a toddler at bedtime", "children's picture book")):
        found = [svc.catalog.item(i)["genres"] for _, i in discover_tab.search_items(svc, query, mode="meaning")["choices"]]
        assert len(found) == 20 and sum(category in g for g in found) >= 15, (query, found)


def test_the_user_picker_suggests_by_prefix(big):
    _, svc = big
    users = svc.catalog.dataset.users["user_id"].astype(str)
    some = users.iloc[1_234]
    suggested = [u for _, u in discover_tab.suggest_users(svc, some[:-1])["choices"]]
    matching = sorted(u for u in users if u.startswith(some[:-1]))
    assert len(suggested) == 20 and sorted(suggested[:len(matching)]) == matching  # the matches, then the most active
    assert [u for _, u in discover_tab.suggest_users(svc, some)["choices"]][0] == some


@pytest.mark.browser
def test_the_pickers_search_in_a_browser(browser, big, artifacts_dir):
    url, svc = big
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(url)
        page.get_by_role("tab", name="New user").click()
        page.fill("#vt-picks-meaning input, #vt-picks-meaning textarea", "a warm wool coat for winter")
        page.keyboard.press("Enter")
        page.wait_for_function("() => [...document.querySelectorAll('#vt-picks [role=option]')].some("
                               "o => / (coat|jacket|parka|anorak)$/.test(o.innerText.trim()))")
        options = page.locator("#vt-picks [role=option]").all_inner_texts()
        assert sum(o.split()[-1] in ("coat", "jacket", "parka", "anorak") for o in options) >= 10, options
        page.screenshot(path=str(artifacts_dir / "app-search-40k.png"), full_page=True)
        page.keyboard.press("Escape")
        title = svc.catalog.dataset.items["title"].iloc[777]
        page.get_by_role("tab", name="Create").click()
        page.click("#vt-create-item input")
        page.keyboard.type(title)
        page.locator("#vt-create-item [role=option]", has_text=title).first.wait_for()
    finally:
        context.close()
