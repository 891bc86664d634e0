"""Fuzzing the public surface over raw HTTP, as a script on the internet would: every named endpoint and every
UI event (each reachable through POST /gradio_api/queue/join, whatever the page shows) gets generated bad input:
wrong types, huge and empty values, unicode edge cases, unknown ids. Every answer must be a clear error (a
message naming what was wrong) or a result, never a server error; afterwards the database passes SQLite's
integrity check and the store's own invariants.

The number of cases is `FUZZ_EXAMPLES` per event (hypothesis, derandomized so CI is repeatable); BENCHMARKS.md
records the total of a run.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from annotation.models import PairAssignment, PairTask, PreferenceLabel

FUZZ_EXAMPLES = int(os.environ.get("VITRINE_FUZZ_EXAMPLES", "25"))
TIMEOUT_S = 60

_weird_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "\ud800", "a\udfffb", "\u202eevil", "x" * 5000, "../../etc/passwd",
                     "compare:ease|ease", "compare:", "hf:x", "user:1", "<script>alert(1)</script>",
                     "![x](http://198.51.100.1/p.png)", "1", "5", "9999", "-1", "NaN"]),
)
_values = st.one_of(
    _weird_text,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


# what the page sends with some events (a card's click: {action, slot}; a picker's key_up: {input_value, key}), and
# anything else
_event_data = st.one_of(
    st.none(),
    _values,
    st.fixed_dictionaries({"action": st.one_of(_values, st.sampled_from(["like", "dislike", "open", "undo"])),
                           "slot": _values}),
    st.fixed_dictionaries({"input_value": _values, "key": _values}),
)


def _events(url: str) -> list[tuple[int, int]]:
    """(fn_index, number of inputs) of every event of the app that runs server code (a cancel-only event has
    none: Gradio answers a raw call of it with its own generic error, and nothing of ours runs)."""
    config = requests.get(url + "config", timeout=TIMEOUT_S).json()
    return [(i, len(dep.get("inputs") or [])) for i, dep in enumerate(config["dependencies"])
            if dep.get("backend_fn", True)]


def _call(url: str, fn_index: int, data: list, event_data: object = None) -> dict:
    """One queued call over raw HTTP: the process_completed message (or the HTTP error as a dict)."""
    session = uuid.uuid4().hex
    joined = requests.post(url + "gradio_api/queue/join",
                           json={"data": data, "fn_index": fn_index, "session_hash": session, "trigger_id": None,
                                 "event_data": event_data},
                           timeout=TIMEOUT_S)
    if joined.status_code != 200:
        return {"http": joined.status_code, "body": joined.text[:300]}
    with requests.get(url + "gradio_api/queue/data", params={"session_hash": session}, stream=True,
                      timeout=TIMEOUT_S) as stream:
        for raw in stream.iter_lines():  # bytes: str.splitlines would also split at U+0085 inside the JSON
            line = raw.decode("utf-8")
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed":
                return message
            if message.get("msg") == "unexpected_error":
                return {"unexpected": message}
    return {"closed": True}


def _clear(outcome: dict) -> str | None:
    """Why an outcome is not acceptable, or None. A 4xx from the body checks is fine; a completed call must
    succeed or carry a readable message (an unhandled exception answers with an empty or generic one)."""
    if "http" in outcome:
        return None if 400 <= outcome["http"] < 500 else f"HTTP {outcome['http']}: {outcome['body']}"
    if "unexpected" in outcome or "closed" in outcome:
        return f"no clean answer: {outcome}"
    if outcome.get("success"):
        return None
    error = (outcome.get("output") or {}).get("error")
    if not error or error.strip() in ("Error", "None"):
        return f"an unexplained error: {outcome}"
    return None


def test_every_event_answers_bad_input_with_a_clear_error(live_app):
    url, svc = live_app
    events = _events(url)
    assert len(events) > 20  # the UI's events and the six named endpoints
    failures: list[str] = []
    tried = 0

    def fuzz(fn_index: int, n_inputs: int) -> None:
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(_values, min_size=n_inputs, max_size=n_inputs), _event_data)
        def probe(data, event_data):
            nonlocal tried
            tried += 1
            why = _clear(_call(url, fn_index, data, event_data))
            if why:
                failures.append(f"fn {fn_index} {data!r:.200} {event_data!r:.100}: {why:.300}")

        probe()

    for fn_index, n_inputs in events:
        fuzz(fn_index, n_inputs)
    print(f"fuzz: {tried} cases over {len(events)} events")
    assert not failures, "\n".join(failures[:10])
    _store_is_sound(svc)


def _store_is_sound(svc) -> None:
    with svc.events.ReadSession() as s:
        if svc.settings.db_is_sqlite:
            assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert s.execute(text("PRAGMA foreign_key_check")).all() == []
        overlap = svc.settings.label_overlap
        assert s.scalar(select(func.count()).select_from(PairTask).where(PairTask.slots_taken > overlap)) == 0
        assert s.scalar(select(func.count()).select_from(PairTask).where(PairTask.slots_taken < 0)) == 0
        holders = select(func.count()).select_from(PairAssignment).where(
            PairAssignment.pair_id == PairTask.id, PairAssignment.holds_slot.is_(True)).scalar_subquery()
        assert s.scalar(select(func.count()).select_from(PairTask).where(PairTask.slots_taken != holders)) == 0
        current = select(PreferenceLabel.pair_id, PreferenceLabel.annotator_id, func.count()).where(
            PreferenceLabel.is_current.is_(True)).group_by(PreferenceLabel.pair_id, PreferenceLabel.annotator_id)
        assert all(n == 1 for *_, n in s.execute(current)), "one current label per (pair, annotator)"


@pytest.mark.parametrize("api_name", ["recommend", "feedback", "generate_covers", "generate_caption", "next_pair",
                                      "label"])
def test_named_endpoints_are_events_too(live_app, api_name):
    url, _ = live_app
    config = requests.get(url + "config", timeout=TIMEOUT_S).json()
    assert api_name in [dep.get("api_name") for dep in config["dependencies"]]


def test_the_picture_routes_answer_404_to_anything_they_do_not_serve(live_app):
    """/covers/<ab>/<name> and /item-image?id=... (app.web.routes) under generated names and ids: an image or a 404,
    never a server error, never a file that is not a picture."""
    from urllib.parse import quote

    url, _ = live_app
    failures: list[str] = []
    tried = 0

    @settings(max_examples=FUZZ_EXAMPLES * 8, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_weird_text, _weird_text)
    def probe(a, b):
        nonlocal tried
        for target, params in ((lambda: f"covers/{quote(a, safe='')}/{quote(b, safe='')}", None),
                               (lambda: "item-image", {"id": a})):
            tried += 1
            try:
                answer = requests.get(url + target(), params=params, timeout=TIMEOUT_S)
            except UnicodeEncodeError:  # a lone surrogate cannot even be sent in a URL
                continue
            ok = answer.status_code in (400, 404) or (
                answer.status_code == 200 and answer.headers.get("content-type", "").startswith("image/"))
            if not ok:
                failures.append(f"{target} {params}: HTTP {answer.status_code} {answer.text[:100]!r}")

    probe()
    print(f"fuzz: {tried} picture-route cases")
    assert not failures, "\n".join(failures[:10])
