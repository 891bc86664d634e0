"""A catalogue too big for the dense models, in the app: the default follows the catalogue and the machine, the
dense fit is never reached, an extra model that does not fit is skipped with its reason, and a restart on the
same catalogue does not write a million items again."""

from __future__ import annotations

import numpy as np
import pytest

from app.web import discover_tab, status_tab
from app.web.state import Visitor
from recommenders.models import create_model
from recommenders.synthetic import SynthConfig, write_catalogue
from vitrine_app_fixtures import make_settings

N_ITEMS = 4500  # the dense Gram of ease(-text) needs ~0.7 GB here, the sparse model its fixed ~0.8 GB


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("mmrec") / "shop"
    write_catalogue(SynthConfig(n_items=N_ITEMS, n_users=2000, n_interactions=20_000, layout="mmrec", seed=3,
                                text_space="random", text_dim=32, image_dim=8), out)
    return out


def _costs(folder) -> tuple[int, int]:
    """(dense ease-text, sparse-ease-text) peak bytes on this catalogue, as the models state them."""
    from recommenders.data import load_dataset

    ds = load_dataset(folder, folder.parent)
    sizes = (int(ds.interactions["user_id"].nunique()), len(ds.items), len(ds.interactions), {"text": 32})
    return tuple(create_model(m).cost(*sizes).peak_bytes for m in ("ease-text", "sparse-ease-text"))


def test_a_catalogue_above_the_dense_limit_never_reaches_the_dense_fit(folder, tmp_path, monkeypatch):
    from app.serving.services import build_services

    def no_dense(*args, **kwargs):
        raise AssertionError("a dense inverse was computed")

    monkeypatch.setattr(np.linalg, "inv", no_dense)
    dense, sparse = _costs(folder)
    budget = sparse * 1.05
    assert dense > budget / 2, "the dense model would fit with room: raise N_ITEMS"
    settings = make_settings(tmp_path, dataset=str(folder), model=None, extra_models=("pop",),
                             memory_mb=budget / (1 << 20))
    svc = build_services(settings, say=lambda m: None)
    try:
        assert svc.ranking.default_model == "sparse-ease-text" and svc.ranking.model_names == ["sparse-ease-text", "pop"]
        chosen = next(n for n in svc.notes if n.startswith("default model "))
        assert "the dense ease-text would need about" in chosen and f"{N_ITEMS:,} items" in chosen
        assert chosen.split(" (")[0] in status_tab.status_html(svc)  # the Status tab says what was chosen and why  # the Status tab says what was chosen and why
        visitor, _ = discover_tab.select_user(svc, Visitor(), svc.catalog.random_user(__import__("random").Random(0)))
        visitor, cards, _ = discover_tab.recommend(svc, visitor, svc.ranking.default_model, discover_tab.NO_COMPARE)
        assert visitor.slate and all(r["contributor"] == "sparse-ease-text" for r in visitor.slate)
        # an MMRec folder's items come with their feature rows: it does not grow by appending items
        assert svc.growth.folder is None and svc.growth.refresh() is None
        with pytest.raises(Exception, match="MMRec folder with precomputed features"):
            svc.growth.add_items(str(folder))
    finally:
        svc.close()


def test_an_extra_model_that_does_not_fit_is_skipped_with_its_reason(folder, tmp_path, monkeypatch):
    from app.serving.services import build_services

    monkeypatch.setattr(np.linalg, "inv", lambda *a, **k: pytest.fail("a dense inverse was computed"))
    dense, _ = _costs(folder)
    settings = make_settings(tmp_path, dataset=str(folder), model="pop", extra_models=("ease",),
                             memory_mb=dense / 2 / (1 << 20))
    svc = build_services(settings, say=lambda m: None)
    try:
        assert svc.ranking.model_names == ["pop"]
        refused = next(n for n in svc.notes if n.startswith("model ease not served"))
        assert "too large for this machine" in refused and "Use 'sparse-ease-text'" in refused
    finally:
        svc.close()


def test_a_model_named_that_does_not_fit_is_refused_with_a_message(folder, tmp_path, capsys, monkeypatch):
    from app.__main__ import main

    monkeypatch.setenv("VITRINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VITRINE_DATASET", str(folder))
    monkeypatch.setenv("VITRINE_MODEL", "ease")
    monkeypatch.setenv("VITRINE_MEMORY_MB", str(_costs(folder)[0] / 2 / (1 << 20)))
    monkeypatch.setenv("VITRINE_COVER_MODEL", "none")
    monkeypatch.setenv("VITRINE_CAPTION_MODEL", "none")
    assert main(["--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model 'ease' is too large for this machine") and "Traceback" not in err


def test_a_restart_does_not_write_the_catalog_again(folder, tmp_path, monkeypatch):
    from annotation import store
    from app.serving.services import build_services

    calls = []
    real = store.sync_items
    monkeypatch.setattr(store, "sync_items", lambda s, items: calls.append(len(items)) or real(s, items))
    settings = make_settings(tmp_path, dataset=str(folder), model="pop", extra_models=())
    for _ in range(2):
        build_services(settings, say=lambda m: None).close()
    assert calls == [N_ITEMS]  # the second start found this catalog in this database
    (tmp_path / "vitrine.db").unlink()  # a wiped database is written again
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"vitrine.db{suffix}").unlink(missing_ok=True)
    build_services(settings, say=lambda m: None).close()
    assert calls == [N_ITEMS, N_ITEMS]
