"""Fuzzing the public surface over raw HTTP, as a script on the internet would: every event (each reachable
through POST /gradio_api/queue/join whatever the page shows: the named endpoints, the UI's events, the events
that run no server code, and indices that name no event) and every HTTP route of the app (Gradio's own and the
app's, with generated path parameters, query strings and bodies) gets generated bad input: wrong types, huge and
empty values, unicode edge cases, unknown ids. Every answer must be a clear error (a 4xx, or a message naming
what was wrong) or a result, never a server error; a rejected call costs at most 1 KB of log and no traceback;
afterwards the database passes SQLite's integrity check and the store's own invariants.

The number of cases is `FUZZ_EXAMPLES` per event and per route (hypothesis, derandomized so CI is repeatable);
BENCHMARKS.md records the total of a run.
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


# what the page sends with some events (a card's click: {action, slot}), and anything else
_event_data = st.one_of(
    st.none(),
    _values,
    st.fixed_dictionaries({"action": st.one_of(_values, st.sampled_from(["like", "dislike", "open", "undo"])),
                           "slot": _values}),
)
LOG_PER_REJECTION = 1024  # bytes of log (and of the app's output) a rejected call may cost, at most


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    """The app served in-process on a free port: (url, services, demo)."""
    from app.web.ui import build_demo
    from app.web.launch import enable_queue, launch_kwargs
    from vitrine_app_fixtures import free_port, make_services

    services = make_services(tmp_path_factory.mktemp("fuzz"))
    demo = build_demo(services)
    enable_queue(demo, services.settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_kwargs(services))
    yield f"http://127.0.0.1:{port}/", services, demo
    demo.close()
    services.close()


def _events(url: str) -> list[tuple[object, int]]:
    """(fn_index, number of inputs) of every event of the app, those that run no server code (a cancel-only
    event) included, and indices that name no event."""
    config = requests.get(url + "config", timeout=TIMEOUT_S).json()
    events = [(i, len(dep.get("inputs") or [])) for i, dep in enumerate(config["dependencies"])]
    return events + [(-1, 0), (len(events), 1), (99999, 2), (2**63, 0), ("0", 1), (1.5, 1), (None, 0)]


class _LogMeter:
    """What the app wrote while a fuzz ran: its output (captured file descriptors) and its log records."""

    def __init__(self, capfd, caplog) -> None:
        self.capfd, self.caplog = capfd, caplog
        capfd.readouterr()
        caplog.clear()

    def check(self, rejected: int) -> str:
        out, err = self.capfd.readouterr()
        records = "\n".join(f"{r.name} {r.levelname} {r.getMessage()}" for r in self.caplog.records)
        written = len((out + err + records).encode("utf-8", "backslashreplace"))
        assert "Traceback" not in out + err + records, (out + err + records)[-3000:]
        assert rejected == 0 or written <= LOG_PER_REJECTION * rejected, \
            f"{written} bytes of log for {rejected} rejected calls: {(out + err + records)[-2000:]}"
        return f"{written} bytes of log for {rejected} rejected calls"


def _call(url: str, fn_index: int, data: list, event_data: object = None) -> dict:
    """One queued call over raw HTTP: the process_completed message (or the HTTP error as a dict)."""
    session = uuid.uuid4().hex
    body = json.dumps({"data": data, "fn_index": fn_index, "session_hash": session, "trigger_id": None,
                       "event_data": event_data})
    joined = requests.post(url + "gradio_api/queue/join", data=body.encode(),  # NaN and Infinity as JSON allows them
                           headers={"Content-Type": "application/json"}, timeout=TIMEOUT_S)
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


def test_every_event_answers_bad_input_with_a_clear_error(fuzz_app, capfd, caplog):
    url, svc, _ = fuzz_app
    events = _events(url)
    assert len(events) > 50  # the UI's events, the named endpoints, the cancel-only events, the bad indices
    failures: list[str] = []
    tried = rejected = 0
    meter = _LogMeter(capfd, caplog)

    def fuzz(fn_index: object, n_inputs: int) -> None:
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(_values, min_size=n_inputs, max_size=n_inputs), _event_data)
        def probe(data, event_data):
            nonlocal tried, rejected
            tried += 1
            outcome = _call(url, fn_index, data, event_data)
            rejected += not outcome.get("success")
            why = _clear(outcome)
            if why:
                failures.append(f"fn {fn_index} {data!r:.200} {event_data!r:.100}: {why:.300}")

        probe()

    with caplog.at_level("INFO"):
        for fn_index, n_inputs in events:
            fuzz(fn_index, n_inputs)
        log = meter.check(rejected)
    print(f"fuzz: {tried} cases over {len(events)} events; {log}")
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
def test_named_endpoints_are_events_too(fuzz_app, api_name):
    url, _, _ = fuzz_app
    config = requests.get(url + "config", timeout=TIMEOUT_S).json()
    assert api_name in [dep.get("api_name") for dep in config["dependencies"]]


def test_the_picture_routes_answer_404_to_anything_they_do_not_serve(fuzz_app):
    """/covers/<ab>/<name> and /item-image?id=... (app.web.routes) under generated names and ids: an image or a 404,
    never a server error, never a file that is not a picture."""
    from urllib.parse import quote

    url, _, _ = fuzz_app
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


def _routes(app) -> list[tuple[str, str]]:
    """(path template, method) of every HTTP route of the app: Gradio's (its router included under /gradio_api),
    the app's own."""
    found: list[tuple[str, str]] = []

    def walk(routes) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes)
            elif getattr(route, "methods", None):
                found.extend((route.path, method) for method in sorted(route.methods))

    walk(app.routes)
    return sorted(set(found))


_PARAM = __import__("re").compile(r"\{([A-Za-z_]+)(:path)?\}")
_queries = st.dictionaries(st.sampled_from(["session_hash", "fn_index", "id", "upload_id", "event_id", "url", "x"]),
                           _weird_text, max_size=3)
_bodies = st.one_of(
    st.none(),
    st.builds(lambda v: ("json", v), _values),
    st.builds(lambda d: ("json", d), st.dictionaries(st.sampled_from(
        ["data", "fn_index", "session_hash", "event_id", "trigger_id", "component_id", "fn_name", "files"]),
        _values, max_size=4)),
    st.builds(lambda b: ("raw", b), st.binary(max_size=200)),
    st.builds(lambda d: ("form", d), st.dictionaries(st.sampled_from(["files", "data", "x"]), st.text(max_size=20),
                                                     max_size=2)),
)


def _fill(template: str, values: list[str]) -> str:
    from urllib.parse import quote

    texts = iter(values)
    return _PARAM.sub(lambda m: quote(next(texts, "x"), safe="/" if m.group(2) else ""), template)


def _send(url: str, method: str, path: str, query: dict, body) -> int | None:
    """The status of one request (None when the client library cannot even send it: a lone surrogate)."""
    kwargs: dict = {"params": query, "timeout": TIMEOUT_S, "stream": True, "allow_redirects": False}
    if body is not None:
        kind, value = body
        if kind == "json":
            kwargs["data"] = json.dumps(value).encode()
            kwargs["headers"] = {"Content-Type": "application/json"}
        elif kind == "raw":
            kwargs["data"] = value
        else:
            kwargs["files"] = {name: ("x.txt", text.encode("utf-8", "backslashreplace")) for name, text in value.items()}
    try:
        with requests.request(method, url.rstrip("/") + path, **kwargs) as answer:
            return answer.status_code  # a stream (heartbeats) is not read on
    except UnicodeEncodeError:
        return None


def test_every_route_answers_without_a_server_error(fuzz_app, capfd, caplog):
    """Every HTTP route of the app, Gradio's included: generated path parameters, query strings and bodies (JSON
    values, JSON objects shaped like Gradio's, raw bytes, forms) get a result or a 4xx, never a 5xx; the log
    stays within 1 KB per rejected call, with no traceback."""
    url, _, demo = fuzz_app
    routes = _routes(demo.app)
    assert len(routes) > 60 and ("/gradio_api/queue/join", "POST") in routes
    failures: list[str] = []
    tried = rejected = 0
    meter = _LogMeter(capfd, caplog)

    def fuzz(template: str, method: str) -> None:
        n_params = len(_PARAM.findall(template))

        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(_weird_text, min_size=n_params, max_size=n_params), _queries,
               _bodies if method in ("POST", "PUT", "PATCH") else st.none())
        def probe(params, query, body):
            nonlocal tried, rejected
            try:
                path = _fill(template, params)
            except UnicodeEncodeError:  # a lone surrogate cannot be put in a URL
                return
            status = _send(url, method, path, query, body)
            if status is None:
                return
            tried += 1
            rejected += status >= 400
            if status >= 500:
                failures.append(f"{method} {template} {params!r:.100} {query!r:.100} {body!r:.100}: HTTP {status}")

        probe()

    with caplog.at_level("INFO"):
        for template, method in routes:
            fuzz(template, method)
        log = meter.check(rejected)
    print(f"fuzz: {tried} requests over {len(routes)} routes; {log}")
    assert not failures, "\n".join(failures[:20])
