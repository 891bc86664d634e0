"""Browser tests: Debian's Chromium driven by Playwright against the app served in-process.

Each test keeps a screenshot of its screen in `artifacts/` (the `artifacts_dir` fixture). The Discover screenshots
at 1400 and 390 px wide are also written, as small palette PNGs, to docs/screenshots/ when VITRINE_DOCS_SCREENSHOTS=1
(so that a test run does not rewrite files git tracks): `VITRINE_DOCS_SCREENSHOTS=1 pytest tests/app/test_browser.py`.

The first five minutes of a visitor (issue 29): a card's caption and "why" are readable in full; an id typed and
confirmed with Enter takes that user (an unknown one gets one message); the Status tab's counts are current when it
opens; a card's buttons sit inside its box and are named with its title; a like or dislike can be undone on the
card (an event of its own); the keyboard shortcuts are shown on Discover; covers say what they are.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from annotation.models import FeedbackEvent, GeneratedAsset, Impression, PreferenceLabel, User

pytestmark = pytest.mark.browser

TIMEOUT_MS = 20_000
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WIDTHS = {"desktop": (1400, 1000), "phone": (390, 844)}


@pytest.fixture()
def open_page(browser, live_app):
    """open_page(width, height) -> a page of the app at that viewport size (closed after the test)."""
    url, _ = live_app
    contexts = []

    def make(width: int = 1400, height: int = 1000):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.wait_for_selector("#vt-user input")
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture()
def page(open_page):
    return open_page()


def _user(page, user_id: str) -> None:
    """Type a user id in the user picker and press Enter (no suggestion clicked)."""
    page.click("#vt-user input")
    page.fill("#vt-user input", "")
    page.keyboard.type(user_id)
    page.keyboard.press("Enter")


def _choose(page, selector: str, typed: str, option: str) -> None:
    """Type into an item picker (it searches as you type) and click the suggestion named `option`."""
    page.click(f"{selector} input")
    page.keyboard.type(typed)
    page.locator(f"{selector} [role=option]", has_text=option).first.click()


def _slate(page, user_id: str) -> None:
    _user(page, user_id)
    page.wait_for_selector("#vt-profile .vt-profile")
    page.wait_for_selector("#vt-card-7 .vt-card img")  # every cover arrived (the captions come with them)
    page.wait_for_function("() => !document.querySelector('#vt-slate .vt-pending')")


def _rows(svc, model, *where):
    with svc.events.Session() as s:
        return s.scalars(select(model).where(*where)).all()


def _titles(svc) -> dict[str, str]:
    items = svc.catalog.dataset.items.set_index("item_id")
    return {i: f"{row['title']} ({int(row['year'])})" for i, row in items.iterrows()}


def _keep(page, artifacts_dir: Path, name: str, docs: bool = False, full_page: bool = True) -> None:
    """A screenshot in artifacts/ (and, with VITRINE_DOCS_SCREENSHOTS=1 and `docs`, a palette PNG in docs/)."""
    png = page.screenshot(path=str(artifacts_dir / f"{name}.png"), full_page=full_page)
    if docs and os.environ.get("VITRINE_DOCS_SCREENSHOTS") == "1":
        from PIL import Image

        DOCS.mkdir(parents=True, exist_ok=True)
        image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        image.save(DOCS / f"{name}.png", optimize=True)


def test_choose_a_user_and_like_a_card(page, live_app, artifacts_dir):
    _, svc = live_app
    _slate(page, "6")
    assert "user 6" in page.inner_text("#vt-profile")
    title = page.inner_text("#vt-card-0 .vt-title")
    page.click("#vt-card-0 button[data-action=like]")
    page.wait_for_selector("#vt-card-0 .vt-liked")
    expected = svc.catalog.dataset.items.set_index("item_id")["title"]
    likes = _rows(svc, FeedbackEvent, FeedbackEvent.user_id == "6", FeedbackEvent.kind == "like")
    assert len(likes) == 1 and expected[likes[0].item_id] in title
    assert likes[0].impression_id is not None
    page.screenshot(path=str(artifacts_dir / "app-discover.png"), full_page=True)
    # dislike: the card shows as removed, in its place
    page.click("#vt-card-1 button[data-action=dislike]")
    page.wait_for_selector("#vt-card-1 .vt-removed")
    assert _rows(svc, FeedbackEvent, FeedbackEvent.user_id == "6", FeedbackEvent.kind == "dislike")


@pytest.mark.parametrize("screen", list(WIDTHS))
def test_the_caption_and_the_why_are_readable_in_full(open_page, live_app, artifacts_dir, screen):
    """Issue 29 item 1: nothing of a card's caption or "why" is cut, on a desktop and on a phone; and the covers'
    alt text says what they are (issue 29 item 5)."""
    _, svc = live_app
    width, height = WIDTHS[screen]
    page = open_page(width, height)
    user = {"desktop": "9", "phone": "10"}[screen]
    _slate(page, user)
    cut = page.evaluate("""(selector) => [...document.querySelectorAll(selector)].filter(el => {
          const style = getComputedStyle(el);
          return el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1
            || (style.webkitLineClamp && style.webkitLineClamp !== 'none') || style.textOverflow === 'ellipsis';
        }).map(el => el.className + ': ' + el.innerText.slice(0, 60))""",
                        "#vt-slate .vt-caption, #vt-slate .vt-why, #vt-slate .vt-title, #vt-slate .vt-card")
    assert cut == []
    captions: dict[str, set[str]] = {}
    with svc.events.Session() as s:
        for item_id, text in s.execute(select(GeneratedAsset.item_id, GeneratedAsset.text).where(
                GeneratedAsset.user_id == user, GeneratedAsset.kind == "caption")):
            captions.setdefault(item_id, set()).add(text)
    titles = _titles(svc)
    for slot in range(8):
        card = page.locator(f"#vt-card-{slot} .vt-card")
        item_id = card.get_attribute("data-item-id")
        caption = card.locator(".vt-caption")
        shown = caption.evaluate("el => el.childNodes[0].textContent").strip()  # without its "template" flag
        assert caption.is_visible() and shown in captions[item_id], "the whole caption made for this visitor"
        why = card.locator(".vt-why").inner_text()
        assert why.startswith("Why:") and len(why) > 12
        alt = card.locator("img.vt-cover-img").get_attribute("alt")
        assert alt == f"Generated cover for {titles[item_id].rsplit(' (', 1)[0]} (typographic fallback: no image model loaded)"
    page.locator("#vt-slate").scroll_into_view_if_needed()
    if screen == "phone":
        page.evaluate("document.querySelector('#vt-slate-info').scrollIntoView()")
    _keep(page, artifacts_dir, f"discover-{width}", docs=True, full_page=screen == "desktop")


@pytest.mark.parametrize("screen", list(WIDTHS))
def test_card_buttons_are_inside_their_card_and_named_with_its_title(open_page, live_app, screen):
    """Issue 29 item 4: every action button lies inside its card's box; its accessible name includes the title."""
    _, svc = live_app
    page = open_page(*WIDTHS[screen])
    _slate(page, {"desktop": "11", "phone": "12"}[screen])
    titles = _titles(svc)
    for slot in range(8):
        card = page.locator(f"#vt-card-{slot} .vt-card")
        card.scroll_into_view_if_needed()
        box = card.bounding_box()
        title = titles[card.get_attribute("data-item-id")]
        for action in ("Like", "Dislike", "Open"):
            button = page.get_by_role("button", name=f"{action} {title}", exact=True)
            assert button.count() == 1, f"{action} {title}"
            b = button.bounding_box()
            assert (box["x"] <= b["x"] and b["x"] + b["width"] <= box["x"] + box["width"] and
                    box["y"] <= b["y"] and b["y"] + b["height"] <= box["y"] + box["height"]), (slot, action, box, b)


def test_a_typed_id_and_enter_take_the_user_and_an_unknown_one_gets_one_message(page, live_app):
    """Issue 29 item 2: an exact id typed and confirmed with Enter gives that user's slate, suggestion or not."""
    _, svc = live_app
    _slate(page, "13")
    assert "user 13" in page.inner_text("#vt-profile")
    assert "for user 13" in page.inner_text("#vt-slate-info")
    _user(page, "nobody")
    page.wait_for_selector(".toast-message-item")
    page.wait_for_timeout(1500)  # a second pop-up, if one came, would be there by now
    messages = page.locator(".toast-message-item").all_inner_texts()
    assert len(messages) == 1 and "'nobody'" in messages[0] and "Type a user id" in messages[0]
    assert "user 13" in page.inner_text("#vt-profile")  # the page stays with the user it had
    # the picker losing the focus sends its value again: nothing happens (no new slate, no pop-up)
    with svc.events.Session() as s:
        slates = s.scalar(select(func.count()).select_from(Impression).where(Impression.user_id == "13"))
    _user(page, "13")
    page.wait_for_timeout(1000)
    page.click("#vt-slate-info")  # the focus leaves the picker
    page.wait_for_timeout(1500)
    with svc.events.Session() as s:
        assert s.scalar(select(func.count()).select_from(Impression).where(Impression.user_id == "13")) == slates
    assert page.locator(".toast-message-item").count() <= 1  # only the one about 'nobody' (it may have gone)


def test_the_status_tab_is_current_when_it_opens(page, live_app, artifacts_dir):
    """Issue 29 item 3: after a slate and a like, the Status tab shows the store's counts without Refresh, and says
    when it read them."""
    _, svc = live_app
    page.get_by_role("tab", name="Status").click()  # opened once before anything happens
    page.wait_for_selector("#vt-status-read-at")
    page.get_by_role("tab", name="Discover").click()
    _slate(page, "14")
    page.click("#vt-card-0 button[data-action=like]")
    page.wait_for_selector("#vt-card-0 .vt-liked")
    page.get_by_role("tab", name="Status").click()
    with svc.events.Session() as s:
        counts = {"feedback events": s.scalar(select(func.count()).select_from(FeedbackEvent)),
                  "users": s.scalar(select(func.count()).select_from(User))}
    for name, count in counts.items():
        page.wait_for_function(
            "([name, count]) => [...document.querySelectorAll('#vt-status tr')].some(tr => "
            "tr.querySelector('th') && tr.querySelector('th').innerText.trim() === name && "
            "tr.querySelector('td').innerText.trim() === String(count))", arg=[name, count])
    assert "Read at" in page.inner_text("#vt-status-read-at") and "UTC" in page.inner_text("#vt-status-read-at")
    page.screenshot(path=str(artifacts_dir / "app-status-current.png"), full_page=True)


def test_undo_a_like_and_a_dislike_on_the_card_with_the_keyboard_hint(page, live_app, artifacts_dir):
    """Issue 29 item 5: undo restores the card as it was and is logged as an event; the shortcuts are shown on
    Discover, and l / d / u work on a focused card."""
    _, svc = live_app
    hint = page.locator("#vt-keys")
    assert hint.is_visible() and "l like" in hint.inner_text() and "u undo" in hint.inner_text()
    _slate(page, "15")
    titles = _titles(svc)
    first, second = (page.locator(f"#vt-card-{i} .vt-card").get_attribute("data-item-id") for i in (0, 1))
    before = page.inner_html("#vt-card-0")
    page.get_by_role("button", name=f"Like {titles[first]}", exact=True).click()
    undo = page.get_by_role("button", name=f"Undo your like of {titles[first]}", exact=True)
    undo.wait_for()
    undo.focus()
    page.keyboard.press("u")  # the shortcut of the focused card
    page.get_by_role("button", name=f"Like {titles[first]}", exact=True).wait_for()
    assert page.inner_html("#vt-card-0") == before
    page.locator("#vt-card-1 .vt-card").focus()
    page.keyboard.press("d")
    page.wait_for_selector("#vt-card-1 .vt-removed")
    _keep(page, artifacts_dir, "app-undo")
    page.get_by_role("button", name=f"Undo your dislike of {titles[second]}", exact=True).click()
    page.get_by_role("button", name=f"Dislike {titles[second]}", exact=True).wait_for()
    events = _rows(svc, FeedbackEvent, FeedbackEvent.user_id == "15")
    assert [(e.item_id, e.kind) for e in events] == [(first, "like"), (first, "undo"), (second, "dislike"),
                                                     (second, "undo")]
    visit = svc.events.visitor("15")
    assert visit.liked == () and visit.disliked == ()


def test_onboard_a_new_user(page, live_app, artifacts_dir):
    _, svc = live_app
    page.get_by_role("tab", name="New user").click()
    for i in (4, 8, 12):  # three Comedy films, found by typing part of their title
        _choose(page, "#vt-picks", f"comedy film {i}", f"Comedy Film {i} ({1990 + i})")
    page.keyboard.press("Escape")  # close the multiselect's option list
    page.click("#vt-start")
    page.wait_for_selector("#vt-profile .vt-profile")
    profile = page.inner_text("#vt-profile")
    import re

    user_id = re.search(r"new user (new-[0-9a-f]{8})", profile).group(1)
    page.wait_for_selector("#vt-card-0 .vt-card img")
    assert "Comedy" in page.inner_text("#vt-card-0")
    assert _rows(svc, User, User.user_id == user_id)[0].kind == "new"
    likes = _rows(svc, FeedbackEvent, FeedbackEvent.user_id == user_id, FeedbackEvent.kind == "like")
    assert sorted(e.item_id for e in likes) == ["12", "4", "8"]
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
    _slate(page, "7")
    page.get_by_role("tab", name="Create").click()
    _choose(page, "#vt-create-item", "drama film 5", "Drama Film 5 (1995)")
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
    assert "fallback" in text and "SQLite" in text and "feedback events" in text and "item search" in text
    page.screenshot(path=str(artifacts_dir / "app-status.png"), full_page=True)
