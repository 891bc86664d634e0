"""A catalog that grows while the app runs: items added by the CLI or the admin action are served at once, the
content model ranks them for the users whose liked items they resemble (cold start), ID models wait for their
next retrain, feedback on them is accepted, and a bad batch changes nothing."""

from __future__ import annotations

import gradio as gr
import pytest
from sqlalchemy import select

from annotation.models import FeedbackEvent

from app.web import discover_tab, status_tab
from app.web.state import Visitor
from recommenders.__main__ import main as recommenders_cli
from recommenders.catalog import write_synthetic_catalog
from vitrine_app_fixtures import make_services, make_settings

FANTASY_NEW = {"b24", "b28"}  # write_synthetic_catalog: genre k % 4 == 0 is Fantasy; u0 likes Fantasy


@pytest.fixture()
def books(tmp_path):
    from app.serving.services import build_services

    folder = write_synthetic_catalog(tmp_path / "books", "book", n_items=24, n_users=12, seed=3)
    settings = make_settings(tmp_path / "data", dataset=str(folder), model=None, extra_models=("ease",),
                             image_model=None)
    svc = build_services(settings, say=lambda msg: None)
    svc.upkeep.stop()  # the test calls the upkeep task itself
    yield svc, folder, tmp_path
    svc.close()


def _slate(svc, user: str, model: str, k: int = 8) -> list[str]:
    visitor, _ = discover_tab.select_user(svc, Visitor(), user)
    visitor, _, _ = discover_tab.recommend(svc, visitor, model, None)
    return [row["item_id"] for row in visitor.slate][:k]


def test_items_added_by_the_cli_are_served_by_the_running_app(books):
    svc, folder, root = books
    assert svc.ranking.default_model == "ease-text"
    assert not FANTASY_NEW & set(svc.catalog.item_ids)
    new = write_synthetic_catalog(root / "new", "book", n_items=8, start=24, seed=5, interactions=False)
    # another process grows the folder while this app runs (the CLI, or the admin action on another replica)
    assert recommenders_cli(["add-items", str(new), "--dataset", str(folder), "--data-dir", str(root / "cli")]) == 0
    assert svc.growth.refresh() is not None  # what the upkeep thread runs every VITRINE_MODEL_POLL_S
    assert svc.growth.refresh() is None  # nothing new the second time

    added = [f"b{k}" for k in range(24, 32)]
    assert svc.catalog.item_ids[-8:] == added and svc.catalog.version == 2
    assert svc.features["text"].shape[0] == 32
    # the content model ranks the new Fantasy books for u0, who likes Fantasy, at once
    assert FANTASY_NEW <= set(_slate(svc, "u0", "ease-text"))
    # the ID model picks them up at its next retrain: not before
    assert not set(added) & set(_slate(svc, "u0", "ease", k=32))
    # their pages work: a card, a cover, feedback on a new item is stored
    visitor, _ = discover_tab.select_user(svc, Visitor(), "u0")
    visitor, cards, _ = discover_tab.recommend(svc, visitor, "ease-text", None)
    slot = next(n for n, row in enumerate(visitor.slate) if row["item_id"] in FANTASY_NEW)
    visitor, *_ = discover_tab.card_feedback(svc, visitor, slot, "like")
    assert visitor.slate[slot]["item_id"] in visitor.liked
    with svc.events.ReadSession() as s:
        stored = s.scalars(select(FeedbackEvent.item_id).where(FeedbackEvent.kind == "like")).all()
    assert stored == [visitor.slate[slot]["item_id"]]
    # the new item's own picture is shown (copied into the folder's images/)
    assert visitor.slate[slot]["image"].startswith(str((folder / "images").resolve()))
    assert "+8 items" in status_tab.status_html(svc)
    # the pickers' search (built with the catalog, swapped with it) finds the new items by title at once
    new_item = visitor.slate[slot]["item_id"]
    found = discover_tab.search_items(svc, svc.catalog.item(new_item)["title"])["choices"]
    assert new_item in [item_id for _, item_id in found]


def test_the_admin_action_grows_the_catalog_and_refuses_bad_batches(books):
    svc, folder, root = books
    table = (folder / "items.csv").read_bytes()
    dup = write_synthetic_catalog(root / "dup", "book", n_items=2, start=23, interactions=False)
    with pytest.raises(gr.Error, match="'b23' is already in the catalogue"):
        status_tab.add_items(svc, str(dup), None)
    with pytest.raises(gr.Error, match="folder"):
        status_tab.add_items(svc, "", None)
    assert (folder / "items.csv").read_bytes() == table and svc.catalog.version == 1  # nothing changed

    new = write_synthetic_catalog(root / "new", "book", n_items=8, start=24, seed=5, interactions=False)
    msg, status = status_tab.add_items(svc, str(new), None)
    assert "Added 8 items" in msg and "ease-text" in msg and "+8 items" in status
    assert FANTASY_NEW <= set(_slate(svc, "u0", "ease-text"))

    svc.settings = make_settings(svc.settings.data_dir, admin_open=False)  # a public app without a password
    with pytest.raises(gr.Error, match="Admin actions are off"):
        status_tab.add_items(svc, str(new), None)


def test_a_content_model_promoted_before_the_growth_ranks_the_new_items(books):
    svc, folder, root = books
    before = svc.ranking.model("ease-text")
    new = write_synthetic_catalog(root / "new", "book", n_items=8, start=24, seed=5, interactions=False)
    status_tab.add_items(svc, str(new), None)
    grown = svc.growth.fit(before)  # what serve_promoted does with a version trained on the old catalog
    assert grown is not None and list(grown.item_ids) == svc.catalog.item_ids
    ids, _ = grown.recommend("u0", k=8)
    assert FANTASY_NEW <= set(ids)
    assert len(before.item_ids) == 24  # the served model was extended on a copy, never in place
    assert svc.growth.fit(svc.ranking.model("ease")) is None  # an ID model waits for its retrain


def test_the_built_in_catalog_cannot_grow(tmp_path):
    svc = make_services(tmp_path)
    try:
        with pytest.raises(gr.Error, match="cannot grow"):
            status_tab.add_items(svc, str(tmp_path), None)
        assert svc.growth.refresh() is None
    finally:
        svc.close()
