"""What a client learns about the server, and what the pages run (issue 28 item 8): no server paths in Create's
gallery or the Learning page, the root URL not taken from the Host header, Gradio's /monitoring closed, error
pop-ups showing (not rendering) the HTML a client sent, and fn_index -1 / 99999 a clear 4xx."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from test_queue import _result
from vitrine_app_fixtures import free_port

TIMEOUT_S = 60


def _run(url: str, api_name: str, data: list, session: str) -> dict:
    config = requests.get(url + "config", timeout=TIMEOUT_S).json()
    fn = [dep.get("api_name") for dep in config["dependencies"]].index(api_name)
    requests.post(url + "gradio_api/queue/join", json={"data": data, "fn_index": fn, "session_hash": session},
                  timeout=TIMEOUT_S).raise_for_status()
    return _result(url, session)


def test_create_shows_its_variants_by_url_not_by_server_path(live_app):
    url, svc = live_app
    session = uuid.uuid4().hex
    assert _run(url, "do_choose_user", [None, "5", "ease", None], session)["success"]  # the user picker
    assert _run(url, "do_search_titles_1", ["3", None], session)["success"]  # Create's item picker finds item 3
    outcome = _run(url, "do_create", [None, "3", 2], session)
    assert outcome["success"], outcome
    gallery = outcome["output"]["data"][1]
    text = json.dumps(outcome)
    assert len(gallery) == 2
    for entry in gallery:
        assert entry["image"]["url"].startswith(url + "covers/") and entry["image"]["path"] == entry["image"]["url"]
        assert requests.get(entry["image"]["url"], timeout=TIMEOUT_S).headers["content-type"] == "image/jpeg"
    for secret in (str(svc.settings.data_dir), "/tmp/", "gradio_api/file="):
        assert secret not in text


def test_the_root_url_is_the_configured_one_whatever_the_host_header(services_factory):
    from app.web.ui import build_demo
    from app.web.launch import enable_queue, launch_kwargs

    svc = services_factory(public_url="https://vitrine.example.org")
    demo = build_demo(svc)
    enable_queue(demo, svc.settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs(svc))
    try:
        base = f"http://127.0.0.1:{port}/"
        forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
        assert requests.get(base + "config", headers=forged, timeout=TIMEOUT_S).json()["root"] == \
            "https://vitrine.example.org"
        assert "evil.example" not in requests.get(base, headers=forged, timeout=TIMEOUT_S).text
        assert _run(base, "health", [], uuid.uuid4().hex)["output"]["data"] == ["ok"]  # and it still serves
    finally:
        demo.close()


def test_a_space_uses_its_own_address(tmp_path):
    from app.settings import load_settings

    env = {"SPACE_ID": "org/vitrine", "SPACE_HOST": "org-vitrine.hf.space", "VITRINE_DATA_DIR": str(tmp_path)}
    assert load_settings(env).public_url == "https://org-vitrine.hf.space"
    assert load_settings({**env, "VITRINE_PUBLIC_URL": "https://labels.example.org/"}).public_url == \
        "https://labels.example.org"
    for bad in ("javascript:alert(1)", "https://x.org/?a=1", "ftp://x.org", "https://x.org/<b>"):
        with pytest.raises(ValueError, match="VITRINE_PUBLIC_URL"):
            load_settings({**env, "VITRINE_PUBLIC_URL": bad})


def test_gradio_monitoring_is_closed(live_app):
    url, _ = live_app
    for path in ("monitoring", "monitoring/summary", "monitoring/anything"):
        assert requests.get(url + path, timeout=TIMEOUT_S).status_code == 404, path


def test_error_messages_quote_html_as_text(live_app):
    """Gradio's error pop-up renders a message as HTML; a message quoting what the client sent escapes it (the
    pop-up then shows `<img ...>` instead of loading it: tests/deploy's browser test watches it in Chromium)."""
    url, _ = live_app
    beacon = '<img src="http://198.51.100.7/p.png">'
    for api_name, data in (("do_start", [None, [beacon]]),  # Gradio's own choice check (the new user's picks)
                           ("do_choose_user", [None, beacon, "ease", None]),  # the app's own user check
                           ("do_sign_in", [None, "hf:" + beacon, "", ""])):  # the app's own name check
        error = _run(url, api_name, data, uuid.uuid4().hex)["output"]["error"]
        assert "&lt;img" in error and "<img" not in error, error


def test_the_learning_page_names_no_server_path(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from annotation.db import upgrade
    from serve_helpers import REPO_ROOT

    url = f"sqlite:///{tmp_path / 'vitrine.db'}"
    upgrade(url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("VITRINE_DATA_DIR", str(tmp_path / "secret-data-dir"))
    monkeypatch.setenv("VITRINE_DASHBOARD_OPEN", "1")
    monkeypatch.delenv("VITRINE_DASHBOARD_PASSWORD", raising=False)
    at = AppTest.from_file(str(REPO_ROOT / "app" / "dashboard" / "main.py"), default_timeout=90)
    at.query_params["page"] = "Learning"
    at.run()
    shown = " ".join(str(e.value) for kind in ("info", "error", "markdown", "caption") for e in at.get(kind))
    assert "learning.json" in shown and "secret-data-dir" not in shown and str(tmp_path) not in shown
