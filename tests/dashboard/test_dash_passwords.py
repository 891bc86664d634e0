"""The dashboard's password guesses are throttled too (issue 28 item 5): 20 in 6.6 s, then the right one."""

from __future__ import annotations

from test_dash_app import charts, run_page


def test_dashboard_guesses_are_throttled(monkeypatch, sim_db):
    monkeypatch.setenv("VITRINE_RATE_PASSWORD_CLIENT", "3/hour")  # a rate of its own: a guard of its own
    at = run_page(monkeypatch, sim_db[0], "Overview", password="s3cret")
    for guess in ("a", "b", "c"):
        at.text_input(key="dashboard_password").input(guess).run()
        assert at.error[0].value == "Wrong password."
    at.text_input(key="dashboard_password").input("s3cret").run()
    assert "too many wrong passwords for dashboard" in at.error[0].value
    assert not charts(at) and not at.metric
