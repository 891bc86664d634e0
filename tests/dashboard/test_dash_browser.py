"""One Chromium screenshot per dashboard page, taken through `scripts/serve_all.py` (so the browser's
websocket goes through the proxy too). Screenshots are kept in `artifacts/dashboard-<page>.png`."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000  # first render reads the database and imports plotly, on a busy machine
MIN_CHARTS = {"Overview": 1, "Recommenders": 4, "Generation": 4, "Annotators": 3}


def _settle(page) -> None:
    """Wait until Streamlit has finished running the script (its status widget says nothing)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.trim() === ''",
        timeout=TIMEOUT_MS,
    )


@pytest.mark.parametrize("name", ["Overview", "Recommenders", "Generation", "Annotators", "Data"])
def test_page_screenshot(browser, served, artifacts_dir, name):
    base, _ = served
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{base}/dashboard/?page={name}")
        page.get_by_role("heading", name=name).first.wait_for()
        if name in MIN_CHARTS:
            page.wait_for_function(
                f"() => document.querySelectorAll('.js-plotly-plot').length >= {MIN_CHARTS[name]}",
                timeout=TIMEOUT_MS,
            )
            charts = page.locator(".js-plotly-plot").count()
            assert charts >= MIN_CHARTS[name]
        else:
            page.get_by_role("button", name="feedback.jsonl").wait_for()
        _settle(page)
        assert page.locator("[data-testid='stException']").count() == 0
        # Streamlit scrolls inside its own container: grow the viewport to the content for a whole-page shot.
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1440, "height": min(max(1000, int(height) + 40), 8000)})
        page.wait_for_timeout(1000)  # plotly re-lays out to the new size
        page.screenshot(path=str(artifacts_dir / f"dashboard-{name.lower()}.png"), full_page=True)
        assert not errors, errors
    finally:
        context.close()
