"""Shared fixtures for the whole suite.

- torch runs single-threaded: on a shared 2-core box that is much faster than the default.
- `pg_url`: the URL of the throwaway PostgreSQL cluster that `scripts/with_postgres.sh` (run by `make test`)
  starts; tests that need it skip with a clear reason when it is not there.
- `artifacts_dir`: where browser tests keep their screenshots (`artifacts/`, ignored by git).
- `browser`: Debian's Chromium driven by Playwright (`playwright install` cannot download browsers here);
  skips outside CI when Chromium is missing, fails in CI.
- every test leaves `sys.modules["__main__"]` as it found it: Streamlit's test runner puts the dashboard script
  there and does not put pytest's back, and a process started with "spawn" afterwards (the sync runner's child)
  would run the dashboard again as its main module and die.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialing out, and this machine refuses every attempt.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def pytest_configure(config: pytest.Config) -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is in requirements.txt
        return
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _keep_main_module():
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get("VITRINE_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("VITRINE_TEST_PG_URL is not set in CI: run the suite through `make test`")
        pytest.skip("no PostgreSQL: run through `make test` (scripts/with_postgres.sh) to test against it")
    return url


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = ROOT / "artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser():
    # Module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread while it is
    # open, and tests in other modules call asyncio.run().
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM}: install Debian's chromium (scripts/system_deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
