"""Browser tests: Debian's Chromium driven by Playwright against the app served in-process.

Each test keeps a screenshot of its screen in `artifacts/` (the `artifacts_dir` fixture).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from annotation.models import FeedbackEvent, PreferenceLabel, User

pytestmark = pytest.mark.browser

TIMEOUT_MS = 20_000


@pytest.fixture()
def page(browser, live_app):
    url, _ = live_app
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#vt-user")
    yield page
    context.close()


def _pick(page, selector: str, text: str) -> None:
    """Type into a Gradio dropdown and choose the first option that matches."""
    page.click(f"{selector} input")
    page.keyboard.type(text)
    page.locator(f"{selector} [role=option]").first.wait_for()
    page.keyboard.press("Enter")


def _rows(svc, model, *where):
    with svc.events.Session() as s:
        return s.scalars(select(model).where(*where)).all()


def test_choose_a_user_and_like_a_card(page, live_app, artifacts_dir):
    _, svc = live_app
    _pick(page, "#vt-user", "6 · 26")  # user 6, aged 26
    page.wait_for_selector("#vt-profile .vt-profile")
    assert "user 6" in page.inner_text("#vt-profile")
    page.wait_for_selector("#vt-card-0 .vt-card img")  # the cover arrived
    title = page.inner_text("#vt-card-0 .vt-title")
    page.click("#vt-like-0")
    page.wait_for_selector("#vt-card-0 .vt-liked")
    expected = svc.catalog.dataset.items.set_index("item_id")["title"]
    likes = _rows(svc, FeedbackEvent, FeedbackEvent.user_id == "6", FeedbackEvent.kind == "like")
    assert len(likes) == 1 and expected[likes[0].item_id] in title
    assert likes[0].impression_id is not None
    page.wait_for_selector("#vt-card-7 .vt-card img")
    page.screenshot(path=str(artifacts_dir / "app-discover.png"), full_page=True)
    # dislike: the card leaves the slate
    second = page.inner_text("#vt-card-1 .vt-title")
    page.click("#vt-dislike-1")
    page.wait_for_function(
        "t => !document.querySelector('#vt-card-1 .vt-title') || "
        "document.querySelector('#vt-card-1 .vt-title').innerText !== t", arg=second)
    assert _rows(svc, FeedbackEvent, FeedbackEvent.user_id == "6", FeedbackEvent.kind == "dislike")


def test_onboard_a_new_user(page, live_app, artifacts_dir):
    _, svc = live_app
    page.get_by_role("tab", name="New user").click()
    for title in ("Comedy Film 4 ", "Comedy Film 8 ", "Comedy Film 12 "):
        _pick(page, "#vt-picks", title)
    page.keyboard.press("Escape")  # close the multiselect's option list
    page.click("#vt-start")
    page.wait_for_selector("#vt-profile .vt-profile")
    profile = page.inner_text("#vt-profile")
    user_id = re.search(r"new user (new-[0-9a-f]{8})", profile).group(1)
    page.wait_for_selector("#vt-card-0 .vt-card img")
    assert "Comedy" in page.inner_text("#vt-card-0")
    assert _rows(svc, User, User.user_id == user_id)[0].kind == "new"
    assert len(_rows(svc, FeedbackEvent, FeedbackEvent.user_id == user_id, FeedbackEvent.kind == "like")) == 3
    page.screenshot(path=str(artifacts_dir / "app-onboarding.png"), full_page=True)


def test_label_a_pair_with_the_keyboard(page, live_app, artifacts_dir):
    _, svc = live_app
    svc.labeling.make_pairs(2, seed=5)
    page.get_by_role("tab", name="Label").click()
    page.fill("#vt-ann-name textarea, #vt-ann-name input", "keyboard-annotator")
    page.click("#vt-sign-in")
    page.wait_for_selector("#vt-side-a .vt-pair")
    page.wait_for_function("() => document.querySelector('#vt-label-progress').innerText.includes('0 done')")
    page.screenshot(path=str(artifacts_dir / "app-label.png"), full_page=True)
    page.locator("body").click(position={"x": 5, "y": 5})  # focus off any text box
    page.keyboard.press("1")
    page.wait_for_function("() => document.querySelector('#vt-label-progress').innerText.includes('1 done')")
    labels = _rows(svc, PreferenceLabel, PreferenceLabel.is_current.is_(True))
    mine = [label for label in labels if label.choice == "A"]
    assert len(mine) == 1
    page.keyboard.press("u")  # undo: the label is cleared and its pair comes back
    page.wait_for_function("() => document.querySelector('#vt-label-progress').innerText.includes('0 done')")
    current = _rows(svc, PreferenceLabel, PreferenceLabel.pair_id == mine[0].pair_id,
                    PreferenceLabel.is_current.is_(True))
    assert [label.choice for label in current] == [None]
    page.reload()  # the name is remembered in the browser
    page.get_by_role("tab", name="Label").click()
    page.wait_for_function(
        "() => (document.querySelector('#vt-ann-name textarea, #vt-ann-name input') || {}).value === "
        "'keyboard-annotator'")


def test_create_and_status_screens(page, live_app, artifacts_dir):
    _, svc = live_app
    _pick(page, "#vt-user", "7 · 27")
    page.wait_for_selector("#vt-card-0 .vt-card img")
    page.get_by_role("tab", name="Create").click()
    _pick(page, "#vt-create-item", "Drama Film 5 ")
    page.click("#vt-generate")
    page.wait_for_selector("#vt-gallery img")
    page.wait_for_function("() => document.querySelectorAll('#vt-gallery img').length === 4")
    page.locator("#vt-gallery img").nth(1).click()
    page.click("#vt-save-pick")
    page.wait_for_function("() => document.querySelector('#vt-create-info').innerText.includes('preferred over 3')")
    labels = _rows(svc, PreferenceLabel)
    assert sum(1 for label in labels if label.time_spent_ms is None) >= 3
    page.screenshot(path=str(artifacts_dir / "app-create.png"), full_page=True)
    page.get_by_role("tab", name="Status").click()
    page.click("#vt-refresh")
    page.wait_for_selector("#vt-status table")
    text = page.inner_text("#vt-status")
    assert "fallback" in text and "SQLite" in text and "feedback events" in text
    page.screenshot(path=str(artifacts_dir / "app-status.png"), full_page=True)
