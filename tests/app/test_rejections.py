"""Rejections cost one short log line at a bounded rate, and every input is checked, named endpoint or not
(issue 28 items 3 and 4): Gradio's own checks (a dropdown value that is not a choice listed every choice, with a
traceback), media types matched whatever their case, lone surrogates refused before anything stores them."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import requests

from test_queue import _result

TIMEOUT_S = 60


def _names(url: str) -> list[str | None]:
    config = requests.get(url + "config", timeout=TIMEOUT_S).json()
    return [dep.get("api_name") for dep in config["dependencies"]]


def _join(url: str, fn_index: int, data: list, session: str | None = None) -> tuple[str, requests.Response]:
    session = session or uuid.uuid4().hex
    answer = requests.post(url + "gradio_api/queue/join", timeout=TIMEOUT_S,
                           json={"data": data, "fn_index": fn_index, "session_hash": session})
    return session, answer


def test_a_bad_dropdown_value_is_one_short_message_and_one_short_line(live_app, capfd, caplog):
    url, svc = live_app
    names = _names(url)
    select_user = names.index("do_choose_user")  # the user picker's event (it takes any id typed: the handler checks it)
    start = names.index("do_start")  # the new-user picks: a Dropdown whose choices are the last search's matches
    capfd.readouterr()
    caplog.clear()
    with caplog.at_level("INFO", logger="vitrine"):
        for _ in range(5):
            session, joined = _join(url, select_user, [None, "no-such-user", "ease", None])
            outcome = _result(url, session)
            error = outcome["output"]["error"]
            assert not outcome["success"] and "user_id: expected a user" in error and "'no-such-user'" in error
            assert len(error) < 200
            session, joined = _join(url, start, [None, ["no-such-item"]])
            outcome = _result(url, session)
            error = outcome["output"]["error"]
            assert not outcome["success"] and "Pick at least 3 items" in error and "20 choices" in error, outcome
            assert len(error) < 200 and "list of choices" not in error
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10 and all(len(line) < 300 for line in lines)


@pytest.mark.parametrize("content_type", ["application/json", "application/JSON", "Application/Json; charset=utf-8",
                                          "text/plain", None])
def test_a_lone_surrogate_is_refused_whatever_the_media_type(live_app, capfd, content_type):
    """In the session hash or in the data: refused before Gradio keeps it (a surrogate session hash made every
    later event log a traceback), under any spelling of the media type (`application/JSON` skipped the check)."""
    url, _ = live_app
    names = _names(url)
    headers = {"content-type": content_type} if content_type else {}
    for body in ({"data": [None, "5", "ease", None], "fn_index": names.index("do_choose_user"),
                  "session_hash": "a\ud800b"},
                 {"data": ["a\ud800", "ease", 3, False], "fn_index": names.index("recommend"), "session_hash": "s"}):
        answer = requests.post(url + "gradio_api/queue/join", data=json.dumps(body), headers=headers,
                               timeout=TIMEOUT_S)
        assert answer.status_code == 400 and "lone surrogates" in answer.json()["detail"], answer.text
    capfd.readouterr()
    for _ in range(5):  # and nothing was poisoned
        session, joined = _join(url, names.index("health"), [])
        assert joined.status_code == 200 and _result(url, session)["output"]["data"] == ["ok"]
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_every_input_component_refuses_text_it_cannot_store(svc):
    """Every input of every event, named or not, is checked before a handler runs: text with a NUL byte or a lone
    surrogate (which made some handlers fail with `TypeError: str is not valid UTF-8` and no message)."""
    from app.web.inputs import Rejected
    from app.web.ui import build_demo
    from app.web.launch import enable_queue

    demo = build_demo(svc)
    enable_queue(demo, svc.settings)
    inputs = {id(c): c for fn in demo.fns.values() for c in fn.inputs if not getattr(c, "stateful", False)}
    assert len(inputs) > 5
    for component in inputs.values():
        for bad in ("\ud800", ["x", "a\x00b"], {"annotator": "\udfff"}):
            with pytest.raises(Rejected, match="expected valid text"):
                component.preprocess(bad)


def test_unknown_sessions_and_events_get_404_without_a_traceback(live_app, capfd):
    url, _ = live_app
    capfd.readouterr()
    for _ in range(5):
        answer = requests.get(url + "gradio_api/queue/data", params={"session_hash": uuid.uuid4().hex},
                              timeout=TIMEOUT_S)
        assert answer.status_code == 404 and "no such session" in answer.json()["detail"]
        answer = requests.get(url + f"gradio_api/call/health/{uuid.uuid4().hex}", timeout=TIMEOUT_S)
        assert answer.status_code == 404 and "no such event" in answer.json()["detail"]
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


@pytest.mark.parametrize("fn_index", [-1, 99999, "x", None])
def test_a_join_must_name_an_event(live_app, capfd, fn_index):
    """fn_index -1 / 99999 gave a 500 with a traceback (and a 503 to the next request on that connection)."""
    url, _ = live_app
    capfd.readouterr()
    with requests.Session() as http:  # one connection: the next request on it is served
        answer = http.post(url + "gradio_api/queue/join", timeout=TIMEOUT_S,
                           json={"data": [], "fn_index": fn_index, "session_hash": "s"})
        assert 400 <= answer.status_code < 500 and answer.json()["detail"]
        assert http.get(url + "config", timeout=TIMEOUT_S).status_code == 200
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_rejections_are_logged_at_a_bounded_rate(caplog):
    from app.web.guards import RejectionLog

    now = [0.0]
    rejections = RejectionLog(logging.getLogger("vitrine.test"), per_minute=5, clock=lambda: now[0])
    with caplog.at_level("INFO", logger="vitrine.test"):
        for i in range(100):
            rejections.note(f"call {i}: " + "x" * 5000)
        assert len(caplog.records) == 5 and all(len(r.getMessage()) <= 220 for r in caplog.records)
        now[0] = 61.0
        rejections.note("later")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[5] == "rejected 95 more requests in the last minute (not logged one by one)"
    assert lines[6] == "rejected later"


def test_a_component_updated_for_a_session_is_checked_too(svc):
    """An event that updates a component (the item pickers get new choices when the catalog grew) leaves a new
    instance of it in the session's state, which Gradio reads that session's inputs with."""
    import asyncio

    from gradio.state_holder import SessionState

    from app.web.inputs import Rejected
    from app.web.ui import build_demo
    from app.web.launch import enable_queue

    demo = build_demo(svc)
    enable_queue(demo, svc.settings)
    fn = next(f for f in demo.fns.values() if f.name == "do_create")
    picker = fn.inputs[1]
    state = SessionState(demo)
    kwargs = {**picker.constructor_args, "choices": [("Only", "only")], "render": False}
    kwargs.pop("value", None)
    state[picker._id] = picker.__class__(**kwargs)  # what Gradio does with gr.update(choices=...)
    with pytest.raises(Rejected, match="expected one of its 1 choices, got 'nope'"):
        asyncio.run(demo.preprocess_data(fn, [None, "nope", 2], state))
