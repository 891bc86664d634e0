"""The app on real generation code: the tiny Stable Diffusion and tiny chat LM of `generation.testing`."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.web import create_tab, discover_tab, status_tab
from app.web.state import Visitor
from app.web.ui import build_demo


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from generation.testing import build_tiny_lm, build_tiny_sd

    root = tmp_path_factory.mktemp("tiny-models")
    return str(build_tiny_sd(root / "sd")), str(build_tiny_lm(root / "lm"))


def test_real_models_replace_the_fallbacks_everywhere(tiny_models, services_factory):
    sd, lm = tiny_models
    svc = services_factory(cover_model=sd, caption_model=lm, device="cpu")
    assert not svc.assets.covers.uses_fallback and not svc.assets.captions.uses_fallback
    visitor, _ = discover_tab.select_user(svc, Visitor(), "3")
    visitor, gallery, caption, _ = create_tab.create_variants(svc, visitor, "6", 2)
    assert len(gallery) == 2 and all(Path(p).is_file() for p, _ in gallery)
    variants = svc.assets.variants.create(svc.catalog.profile("3"), "6", 2, seed=5)
    assert {v["generator"] for v in variants} == {sd} and not any(v["fallback"] for v in variants)
    status = status_tab.status_html(svc)
    assert "real model" in status and sd in status
    assert "vt-fallback-banner" not in str(build_demo(svc).config)


def test_fallbacks_are_announced(svc):
    config = str(build_demo(svc).config)
    assert "vt-fallback-banner" in config and "Fallback generators in use" in config
