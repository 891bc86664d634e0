"""Password guesses are throttled per client and per target, and logged (issue 28 item 5): 100 wrong admin
passwords in 3.2 s used to be followed by the right one, accepted."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from app.errors import AppInputError
from app.web import label_tab, status_tab
from app.web.api import ApiHandlers
from app.web.guards import PasswordGuard
from app.web.state import Visitor


def _client(address: str) -> SimpleNamespace:
    """A request as Gradio hands it over, from `address`."""
    return SimpleNamespace(headers={}, client=SimpleNamespace(host=address))


def test_guesses_are_throttled_per_client_and_per_target():
    guard = PasswordGuard(per_client="3/minute", per_target="5/minute")
    assert guard.check("admin", "secret", "secret", "1.1.1.1")  # right answers do not count
    assert not any(guard.check("admin", "guess", "secret", "1.1.1.1") for _ in range(3))
    with pytest.raises(AppInputError, match="too many wrong passwords for admin from this client"):
        guard.check("admin", "secret", "secret", "1.1.1.1")  # even the right one, until the window moves on
    assert guard.check("label", "pw", "pw", "1.1.1.1")  # another target
    assert guard.check("admin", "secret", "secret", "2.2.2.2")  # another client
    assert not guard.check("admin", "guess", "secret", "2.2.2.2")
    assert not guard.check("admin", "guess", "secret", "3.3.3.3")  # five wrong guesses at admin in all
    with pytest.raises(AppInputError, match="from all clients together"):
        guard.check("admin", "secret", "secret", "4.4.4.4")


def test_admin_guesses_are_throttled_and_logged(services_factory, caplog):
    svc = services_factory(admin_password="adm1n", rate_password_client="3/minute")
    attacker, admin = _client("203.0.113.9"), _client("198.51.100.1")
    with caplog.at_level("INFO", logger="vitrine"):
        for _ in range(3):
            with pytest.raises(gr.Error, match="expected the admin password"):
                status_tab.make_pairs(svc, 1, "guess", request=attacker)
        with pytest.raises(gr.Error, match="too many wrong passwords for admin"):
            status_tab.make_pairs(svc, 1, "adm1n", request=attacker)  # the right one, after 3 wrong: refused
        assert status_tab.make_pairs(svc, 1, "adm1n", request=admin)[0].startswith("Created")
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count("password admin from 203.0.113.9: wrong") == 3
    assert "password admin from 198.51.100.1: accepted" in lines
    assert any("password admin from 203.0.113.9: throttled" in line for line in lines)


def test_label_password_guesses_are_throttled_in_the_ui_and_the_api(services_factory):
    svc = services_factory(label_password="s3cret", rate_password_client="2/minute")
    api, guesser = ApiHandlers(svc), _client("203.0.113.7")
    with pytest.raises(gr.Error, match="Wrong password"):
        label_tab.sign_in(svc, Visitor(), "ann", "guess", request=guesser)
    with pytest.raises(gr.Error, match="expected the labeling password"):
        api.next_pair("ann", "guess", request=guesser)
    with pytest.raises(gr.Error, match="too many wrong passwords for label"):
        label_tab.sign_in(svc, Visitor(), "ann", "s3cret", request=guesser)
    with pytest.raises(AppInputError, match="too many wrong passwords for label"):
        api.next_pair("ann", "s3cret", request=guesser)
    assert label_tab.sign_in(svc, Visitor(), "ann", "s3cret", request=_client("198.51.100.2"))[0].annotator_id


def test_behind_the_proxy_guessers_are_told_apart_by_the_address_it_saw(services_factory):
    svc = services_factory(admin_password="adm1n", rate_password_client="1/minute", trust_proxy=True)

    def via_proxy(address: str) -> SimpleNamespace:
        return SimpleNamespace(headers={"x-forwarded-for": f"spoofed, {address}"},
                               client=SimpleNamespace(host="127.0.0.1"))

    with pytest.raises(gr.Error, match="expected the admin password"):
        status_tab.retrain(svc, "ease", "guess", request=via_proxy("10.0.0.1"))
    with pytest.raises(gr.Error, match="too many wrong passwords"):
        status_tab.retrain(svc, "ease", "guess", request=via_proxy("10.0.0.1"))
    with pytest.raises(gr.Error, match="expected the admin password"):  # another client behind the same proxy
        status_tab.retrain(svc, "ease", "guess", request=via_proxy("10.0.0.2"))
