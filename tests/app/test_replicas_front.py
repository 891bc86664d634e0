"""Two app replicas behind the one public port (issue 24 item 3): `scripts/serve_all.py --replicas 2` runs nginx and
two `python -m app` (on the tiny catalog) on one PostgreSQL database and one blob store (the shared data dir's).

Through the front, with visitors kept on one replica or the other by the route cookie their page load drew: a
visitor's slate, like and next page work whichever replica serves each call; an annotator's claim and label made
on one are seen by the other; a version promoted by `python -m app.train` is served by both; and one replica
SIGKILLed mid-traffic loses no acknowledged event and duplicates none (a visitor retries a failed call with the same
event_id), its visitors are served by the other meanwhile, and it is started again and serves again."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from annotation import queue, registry, store
from annotation.db import make_engine, make_session_factory, upgrade
from annotation.models import FeedbackEvent, PreferenceLabel
from bench.bench_app import HttpApiClient
from pg_databases import pg_database
from serve_helpers import child_pids, free_port, need_nginx, pid_alive, start_serve_all, stop
from vitrine_app_fixtures import make_tiny_dataset, write_tiny_folder

ROOT = Path(__file__).resolve().parents[2]
START_S = 600  # two `python -m app` starts, one after the other, on a busy 2-core machine
VISITORS = 8


def _seed_pairs(url: str, n_pairs: int) -> None:
    """Caption pairs waiting to be labelled (the app's catalog sync finds the items already there)."""
    upgrade(url)
    engine = make_engine(url)
    Session = make_session_factory(engine)
    with Session() as s, s.begin():
        store.sync_items(s, make_tiny_dataset().items[["item_id", "title"]])
        store.ensure_user(s, "3")
        for p in range(n_pairs):
            sides = [store.record_asset(s, {
                "event_id": str(uuid.uuid4()), "kind": "caption", "item_id": str(p % 24 + 1), "user_id": "3",
                "generator": "fallback", "fallback": True, "prompt": f"pair {p}", "text": f"caption {p}.{side}",
                "content_hash": uuid.uuid4().hex, "latency_ms": 1.0, "personalized": True}).id for side in range(2)]
            queue.create_pair(s, *sides, target_user_id="3")
    engine.dispose()


class Front:
    """The running set: its public URL, log, database and environment."""

    def __init__(self, base: str, log: Path, proc: subprocess.Popen, url: str, env: dict[str, str]):
        self.base, self.log, self.proc, self.url, self.env = base, log, proc, url, env

    def text(self) -> str:
        return self.log.read_text()

    def app_pids(self, replica: int) -> list[int]:
        """Every pid replica `replica`'s app ran as, oldest first (scripts/replica.py logs each start)."""
        return [int(p) for p in re.findall(rf"replica app\.{replica}: app running as pid (\d+)", self.text())]

    def listening_count(self, replica: int) -> int:
        """How many times replica `replica`'s app said it listens (Gradio's own line, printed once it does)."""
        return len(re.findall(rf"app\.{replica} +\| \* Running on local URL", self.text()))

    def ready_count(self, replica: int) -> int:
        return len(re.findall(rf"replica app\.{replica}: app answers its health event", self.text()))

    def client_on(self, replica: int, tries: int = 64) -> HttpApiClient:
        """A visitor the front keeps on `replica` (drawing fresh routes until one lands there: 2^-64 to miss)."""
        for _ in range(tries):
            client = HttpApiClient(self.base)
            client.load_page()
            if client.replica == str(replica):
                return client
        raise AssertionError(f"no route to replica {replica} in {tries} page loads")

    def session(self):
        engine = make_engine(self.url)
        return engine, make_session_factory(engine)()


@pytest.fixture(scope="module")
def front(pg_url, tmp_path_factory):
    need_nginx()
    tmp = tmp_path_factory.mktemp("replicas-front")
    with pg_database(pg_url, "vitrine_front") as url:
        _seed_pairs(url, n_pairs=80)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VITRINE_", "GRADIO_", "PORT", "DATABASE_URL", "SPACE_ID"))}
        env.update(DATABASE_URL=url, VITRINE_DATA_DIR=str(tmp / "data"),
                   VITRINE_DATASET=str(write_tiny_folder(tmp / "byo")), VITRINE_MODEL="ease",
                   VITRINE_EXTRA_MODELS="", VITRINE_COVER_MODEL="none", VITRINE_CAPTION_MODEL="none",
                   VITRINE_AUTO_PAIRS_MAX="0", VITRINE_MODEL_POLL_S="1", VITRINE_HEALTH_INTERVAL_S="2",
                   GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
                   # every visitor here comes from 127.0.0.1: not one client's flood
                   VITRINE_RATE_SLATE="100000/minute", VITRINE_RATE_FEEDBACK="100000/minute",
                   VITRINE_RATE_JOIN="100000/minute", VITRINE_QUEUE_PER_CLIENT="1000")
        port = free_port()
        log = tmp / "serve_all.log"
        proc = start_serve_all(port, log, env, "--replicas", "2", "--join-rate", "999999r/s",
                               "--join-burst", "100000", "--conn-per-client", "10000")
        running = Front(f"http://127.0.0.1:{port}/", log, proc, url, env)
        try:
            deadline = time.monotonic() + START_S
            while not (running.ready_count(1) and running.ready_count(2)):
                assert proc.poll() is None, running.text()[-4000:]
                assert time.monotonic() < deadline, f"replicas not up in {START_S} s: {running.text()[-4000:]}"
                time.sleep(1)
            yield running
        finally:
            pids = [pid for n in (1, 2) for pid in running.app_pids(n)]
            stop(proc, log)
            for pid in pids:  # normally gone with their supervisors
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)


def test_the_set_runs_two_replicas_and_the_dashboard(front):
    assert set(child_pids(front.log)) == {"nginx", "dashboard", "dashboard-health", "app.1", "app.2"}
    assert len(front.app_pids(1)) == 1 and len(front.app_pids(2)) == 1
    text = front.text()  # replica 2 waited for replica 1 to serve before it started
    assert text.index("replica app.2: waiting for") < text.index("app.1            | * Running on local URL") < text.index(
        "replica app.2: app running")


def test_a_visitors_slate_like_and_next_page_work_on_either_replica(front):
    one, two = front.client_on(1), front.client_on(2)
    slate = one.predict("5", "", 5, False, api_name="recommend")
    assert one.replica == "1"
    liked, disliked = slate["items"][0]["item_id"], slate["items"][1]["item_id"]
    like = two.predict("5", liked, "like", slate["impression_id"], str(uuid.uuid4()), api_name="feedback")
    dislike = two.predict("5", disliked, "dislike", slate["impression_id"], str(uuid.uuid4()), api_name="feedback")
    assert two.replica == "2"
    for api in (one, two):  # the next page, from either replica, knows both signals: the disliked item never returns
        page = api.predict("5", "", 5, False, api_name="recommend")
        assert disliked not in [i["item_id"] for i in page["items"]]
    assert (one.replica, two.replica) == ("1", "2")
    engine, s = front.session()
    with s:
        rows = {r.event_id: (r.item_id, r.kind, r.impression_id) for r in s.scalars(
            select(FeedbackEvent).where(FeedbackEvent.event_id.in_([like["event_id"], dislike["event_id"]])))}
    engine.dispose()
    assert sorted(rows.values()) == sorted([(liked, "like", slate["impression_id"]),
                                            (disliked, "dislike", slate["impression_id"])])


def test_a_claim_and_a_label_made_on_one_replica_are_seen_by_the_other(front):
    one, two = front.client_on(1), front.client_on(2)
    first = one.predict("ann-across", "", "", api_name="next_pair")
    token = first["token"]
    assert token and first["pair_id"] and first["done"] == 0
    done = two.predict("ann-across", first["pair_id"], "A", "", str(uuid.uuid4()), token, api_name="label")
    assert done["label_id"] and two.replica == "2"
    after = one.predict("ann-across", "", token, api_name="next_pair")
    assert after["done"] == 1 and after["pair_id"] not in (0, first["pair_id"]) and one.replica == "1"
    with pytest.raises(RuntimeError, match="token"):  # the claim holds on the other replica too
        two.predict("ann-across", "", "", api_name="next_pair")


def test_a_promotion_reaches_both_replicas(front):
    train = subprocess.run([sys.executable, "-m", "app.train", "--model", "ease", "--tolerance", "1", "--json"],
                           cwd=ROOT, env=front.env, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-3000:]
    assert json.loads(train.stdout)["promoted"]
    engine, s = front.session()
    with s:
        version_id = registry.promoted_version(s, "ease").id
    engine.dispose()
    deadline = time.monotonic() + 60  # each replica polls the registry every second (VITRINE_MODEL_POLL_S)
    lines = [re.compile(rf"app\.{n} .*serving ease version id {version_id}\b") for n in (1, 2)]
    while not all(line.search(front.text()) for line in lines) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert all(line.search(front.text()) for line in lines), front.text()[-3000:]
    for n in (1, 2):  # and each serves slates with it
        api = front.client_on(n)
        assert api.predict("7", "", 5, False, api_name="recommend")["items"] and api.replica == str(n)


@pytest.mark.browser
def test_a_browser_on_either_replica_keeps_its_session_there(front, browser, artifacts_dir):
    """Chromium: the page load draws the route cookie, and Gradio's own queue (the browser's join and its
    server-sent-events stream) stays on that replica: a slate and a like work, on replica 1 and on replica 2."""
    opened: dict[str, tuple] = {}
    for _ in range(40):  # fresh browser contexts (no cookie) until one page came from each replica
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(90_000)
        replica = page.goto(front.base).headers.get("x-vitrine-replica")
        if replica in opened or replica is None:
            context.close()
        else:
            opened[replica] = (context, page)
        if len(opened) == 2:
            break
    try:
        assert set(opened) == {"1", "2"}
        for replica, (context, page) in sorted(opened.items()):
            assert [c["name"] for c in context.cookies()] == ["vitrine_route"]
            page.click("#vt-user input")  # the user picker takes a typed id with Enter
            page.keyboard.type("6")
            page.keyboard.press("Enter")
            page.wait_for_selector("#vt-card-0 .vt-card")
            page.click("#vt-card-0 button[data-action=like]")  # the card's own button
            page.wait_for_selector("#vt-card-0 .vt-liked")
            page.screenshot(path=str(artifacts_dir / f"replicas-browser-{replica}.png"))
            assert context.request.get(front.base + "config").headers["x-vitrine-replica"] == replica
    finally:
        for context, _ in opened.values():
            context.close()


EXHAUSTED = "every item of the catalog was already seen"


class Exhausted(Exception):
    """/recommend answered that this user has nothing left to see (a clear answer, not a failure to retry)."""


class Visitor:
    """One simulated visitor kept on one replica: slate, feedback, next pair, label, over and over. A call that
    fails (the replica serving it died mid-call) is retried, feedback and labels with the same event_id; what
    comes back is acknowledged."""

    GIVE_UP_S = 120.0  # a visitor retries for this long (a restart under a loaded machine's load takes 30 s and more)

    def __init__(self, api: HttpApiClient, n: int):
        self.api, self.n, self.rng = api, n, random.Random(n)
        self.name, self.token = f"visitor-{n}-{uuid.uuid4().hex[:6]}", ""
        self.acked: list[tuple[str, str, float]] = []  # (kind, event_id, when)
        self.served: list[tuple[float, str]] = []  # (when the call was sent, replica) of every answer
        self.failures: list[tuple[float, str]] = []  # (when, what) of every failed attempt
        self.gave_up: list[str] = []

    def call(self, *data, api_name: str):
        deadline = time.monotonic() + self.GIVE_UP_S
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                out = self.api.predict(*data, api_name=api_name)
            except Exception as exc:  # noqa: BLE001 - counted; retried
                if isinstance(exc, RuntimeError) and EXHAUSTED in str(exc):
                    self.served.append((sent, self.api.replica))  # an answer: this user has seen the whole catalogue
                    raise Exhausted(str(exc)) from None
                self.failures.append((time.monotonic(), f"{api_name}: {type(exc).__name__}: {str(exc)[:120]}"))
                time.sleep(0.5)
                continue
            self.served.append((sent, self.api.replica))  # a call sent before the kill may be answered after it
            return out
        self.gave_up.append(api_name)
        raise RuntimeError(f"{api_name}: no answer in {self.GIVE_UP_S:.0f} s")

    def claim(self) -> None:
        self.token = self.call(self.name, "", "", api_name="next_pair")["token"]

    def run(self, stop_event: threading.Event) -> None:
        try:
            while not stop_event.is_set():
                user = str(self.rng.randint(1, 16))
                try:
                    slate = self.call(user, "", 5, False, api_name="recommend")
                except Exhausted:  # the tiny catalogue runs out for a user who got many likes: take another
                    continue
                event = str(uuid.uuid4())
                self.call(user, self.rng.choice(slate["items"])["item_id"], self.rng.choice(["like", "click"]),
                          slate["impression_id"], event, api_name="feedback")
                self.acked.append(("feedback", event, time.monotonic()))
                pair = self.call(self.name, "", self.token, api_name="next_pair")
                if pair["pair_id"]:
                    event = str(uuid.uuid4())
                    self.call(self.name, pair["pair_id"], self.rng.choice(["A", "B", "tie"]), "", event, self.token,
                              api_name="label")
                    self.acked.append(("label", event, time.monotonic()))
                time.sleep(self.rng.uniform(0.1, 0.4))
        except RuntimeError:
            return  # gave up: recorded


def test_a_replica_killed_mid_traffic_loses_no_acknowledged_event(front):
    """SIGKILL replica 1's app (its whole process group) while visitors on both replicas send feedback and labels.
    Every acknowledged event is stored exactly once; no visitor gives up; the killed replica's visitors are
    answered by replica 2 while it is down; scripts/replica.py starts it again and it serves again."""
    visitors = [Visitor(front.client_on(1 + n % 2), n) for n in range(VISITORS)]
    for v in visitors:
        v.claim()
    on_one = [v for v in visitors if v.api.replica == "1"]
    stop_event = threading.Event()
    threads = [threading.Thread(target=v.run, args=(stop_event,), daemon=True) for v in visitors]
    for t in threads:
        t.start()
    try:
        time.sleep(10)
        victim = front.app_pids(1)[-1]
        os.killpg(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        deadline = killed_at + 240
        while len(front.app_pids(1)) < 2 and time.monotonic() < deadline:  # started again
            time.sleep(0.1)
        restarted_at = time.monotonic()
        while front.listening_count(1) < 2 and time.monotonic() < deadline:  # Gradio listens again (it said so)
            time.sleep(0.1)
        listening_at = time.monotonic() - 1.0  # it listened a moment before it said so
        while front.ready_count(1) < 2 and time.monotonic() < deadline:  # its health event answers again
            time.sleep(0.5)
        back_at = time.monotonic()
        time.sleep(8)  # traffic goes back to it
    finally:
        stop_event.set()
        for t in threads:
            t.join(120)
    assert front.proc.poll() is None, "the set stopped:\n" + front.text()[-4000:]
    assert front.ready_count(1) >= 2, front.text()[-3000:]
    assert not pid_alive(victim) and len(front.app_pids(1)) >= 2
    assert not [v.gave_up for v in visitors if v.gave_up], [  # who gave up, and what each of their tries met
        (v.api.replica, [(round(when - killed_at, 1), what) for when, what in v.failures]) for v in visitors if v.gave_up]

    acked = [(kind, event) for v in visitors for kind, event, _ in v.acked]
    assert sum(kind == "feedback" for kind, _ in acked) >= 2 * VISITORS and sum(kind == "label" for kind, _ in acked)
    engine, s = front.session()
    with s:
        feedback = list(s.scalars(select(FeedbackEvent.event_id).where(
            FeedbackEvent.event_id.in_([e for k, e in acked if k == "feedback"]))))
        labels = list(s.scalars(select(PreferenceLabel.event_id).where(
            PreferenceLabel.event_id.in_([e for k, e in acked if k == "label"]))))
        doubled = s.scalar(select(func.count()).select_from(
            select(PreferenceLabel.pair_id).where(PreferenceLabel.is_current.is_(True))
            .group_by(PreferenceLabel.pair_id, PreferenceLabel.annotator_id).having(func.count() > 1).subquery()))
    engine.dispose()
    # every acknowledged event is stored, once
    assert sorted(feedback) == sorted(e for k, e in acked if k == "feedback")
    assert sorted(labels) == sorted(e for k, e in acked if k == "label")
    assert doubled == 0
    # replica 1's visitors were answered by replica 2 while it was down, and by replica 1 again once it was back
    down = [r for v in on_one for when, r in v.served if killed_at < when < listening_at]
    assert down and set(down) == {"2"}, down
    assert any(r == "1" for v in on_one for when, r in v.served if when > back_at + 2)
    # failed attempts only at the kill and when the replica came back (a call in flight, each visitor at most one
    # at a time): not one per request sent while it was down
    failures = [(when - killed_at, what) for v in visitors for when, what in v.failures]
    report = {"acknowledged": len(acked), "failed_attempts": len(failures),
              "restarted_after_s": round(restarted_at - killed_at, 1),
              "listening_again_after_s": round(listening_at + 1.0 - killed_at, 1),
              "healthy_again_after_s": round(back_at - killed_at, 1),
              "answered_by_2_while_1_down": len(down)}
    print("replica kill test:", json.dumps(report))
    assert len(failures) <= 4 * VISITORS, failures[:10]
    assert all(when > -1 for when, _ in failures), failures[:10]
