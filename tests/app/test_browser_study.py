"""A study participant in a real browser (issue 26): the study link opens the Label tab signed in, and 20 pairs
are labelled with the keyboard only, up to the completion code. Debian's Chromium driven by Playwright."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from annotation.models import PreferenceLabel
from label_timing import install_timer, label_with_keys

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000
QUOTA = 20


def test_twenty_pairs_with_the_keyboard_only_through_a_study_link(browser, live_app, artifacts_dir):
    url, svc = live_app
    study = svc.labeling.create_study("Keyboard study", "Press 1 or 2.", "own", QUOTA, 0.0)
    assert svc.labeling.make_pairs(12, seed=11, study=study) >= QUOTA
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{url}?study={study.key}&PROLIFIC_PID=kb-participant-1")
        page.wait_for_selector("#vt-side-a .vt-pair")  # the link opened the Label tab with a pair: no click
        assert "0 of 20 labels" in page.inner_text("#vt-label-progress")
        assert "Keyboard study" in page.inner_text("#vt-study") and "Press 1 or 2." in page.inner_text("#vt-study")
        install_timer(page)
        shown_ms = label_with_keys(page, QUOTA, QUOTA)
        page.wait_for_selector("#vt-completion-code")
        assert page.inner_text("#vt-completion-code") == study.completion_code
        page.wait_for_function("() => document.querySelector('#vt-study-progress').value === 20")
        page.screenshot(path=str(artifacts_dir / "app-study-done.png"), full_page=True)
    finally:
        context.close()
    with svc.events.Session() as s:
        labels = s.scalars(select(PreferenceLabel).where(PreferenceLabel.study_id == study.study_id)).all()
    assert len(labels) == QUOTA and {label.choice for label in labels} == {"A", "B"}
    assert all(label.time_spent_ms is not None for label in labels)
    assert len(shown_ms) == QUOTA and all(ms > 0 for ms in shown_ms)
    # the timings are kept, not asserted: a loaded machine is slow (bench.bench_labeling measures them)
    (artifacts_dir / "study-keyboard-timings.json").write_text(json.dumps({"key_to_next_pair_ms": shown_ms}))
