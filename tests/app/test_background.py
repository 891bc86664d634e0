"""The background worker that makes slate covers and captions after /recommend answered."""

from __future__ import annotations

import threading
import time

import app.serving.worker as worker_module


def _wait_idle(svc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while svc.assets.worker._pending:
        assert time.monotonic() < deadline, f"background jobs still pending: {svc.assets.worker._pending}"
        time.sleep(0.02)


def _spy_records(svc, monkeypatch) -> list[int]:
    sizes: list[int] = []
    real = svc.assets.record
    monkeypatch.setattr(svc.assets, "record", lambda assets: sizes.append(len(assets)) or real(assets))
    return sizes


def test_quick_assets_of_a_slate_are_recorded_in_one_write(fresh_svc, monkeypatch):
    svc = fresh_svc
    sizes = _spy_records(svc, monkeypatch)
    gate = threading.Event()
    real = svc.assets._item_assets
    monkeypatch.setattr(svc.assets, "_item_assets", lambda *a: gate.wait(10) and real(*a))
    items = [i for i, _ in svc.ranking.rank("ease", "5", 4)]
    profile = svc.catalog.profile("5")
    assert svc.assets.worker.generate_later("5", items, profile) == 4
    assert svc.assets.worker.generate_later("5", items + items[:1], profile) == 0  # already queued: not made twice
    gate.set()
    _wait_idle(svc)
    n = svc.assets.learner.n  # best-of-N: n cover candidates and up to n captions (identical texts kept once)
    assert len(sizes) == 1 and 4 * (n + 1) <= sizes[0] <= 4 * 2 * n  # every candidate, one transaction
    known = svc.assets.known("5", items)
    assert {(i, kind) for i in items for kind in ("cover", "caption")} == set(known)
    assert svc.assets.worker.generate_later("5", items[:1], profile) == 1  # done jobs leave the queue


def test_slow_covers_are_recorded_as_they_come(fresh_svc, monkeypatch):
    svc = fresh_svc
    monkeypatch.setattr(worker_module, "BACKGROUND_BATCH_S", 0.05)
    sizes = _spy_records(svc, monkeypatch)
    fast_cover = svc.assets.generate_cover
    monkeypatch.setattr(svc.assets, "generate_cover", lambda *a, **k: time.sleep(0.1) or fast_cover(*a, **k))
    items = [i for i, _ in svc.ranking.rank("ease", "6", 3)]
    svc.assets.worker.generate_later("6", items, svc.catalog.profile("6"))
    _wait_idle(svc)
    n = svc.assets.learner.n
    assert len(sizes) == 3 and all(n + 1 <= k <= 2 * n for k in sizes)  # each item's candidates as they are made


def test_a_failing_item_does_not_stop_the_queue(fresh_svc, monkeypatch):
    svc = fresh_svc
    items = [i for i, _ in svc.ranking.rank("ease", "7", 2)]
    real = svc.assets._item_assets
    calls = []

    def flaky(item_id, profile):
        calls.append(item_id)
        if len(calls) == 1:
            raise RuntimeError("model crashed")
        return real(item_id, profile)

    monkeypatch.setattr(svc.assets, "_item_assets", flaky)
    monkeypatch.setattr(worker_module, "BACKGROUND_BATCH_S", 0.0)  # one item per batch
    svc.assets.worker.generate_later("7", items, svc.catalog.profile("7"))
    _wait_idle(svc)
    assert set(svc.assets.known("7", items)) == {(items[1], "cover"), (items[1], "caption")}
    assert svc.assets.worker.generate_later("7", items[:1], svc.catalog.profile("7")) == 1  # the failed item can be queued again
    _wait_idle(svc)


def test_cached_assets_keep_one_row_per_user(fresh_svc):
    """A cover served from the asset cache is recorded once per user (stable asset ids); the typographic
    fallback's file is shared by every user, its row is not."""
    svc = fresh_svc
    item = svc.ranking.rank("ease", "5", 1)[0][0]
    (cover5, caption5), = svc.assets.slate_assets([item], svc.catalog.profile("5"))
    (again5, again_caption5), = svc.assets.slate_assets([item], svc.catalog.profile("5"))
    (cover6, _), = svc.assets.slate_assets([item], svc.catalog.profile("6"))
    (generic, _), = svc.assets.slate_assets([item], None)
    (generic_again, _), = svc.assets.slate_assets([item], None)
    assert again5["cache_hit"] and again5["asset_id"] == cover5["asset_id"]
    assert again_caption5["asset_id"] == caption5["asset_id"]
    assert cover6["cache_hit"] and cover6["path"] == cover5["path"]  # one file
    assert len({cover5["asset_id"], cover6["asset_id"], generic["asset_id"]}) == 3  # a row per user
    assert generic_again["asset_id"] == generic["asset_id"]
    assert svc.assets.known("6", [item])[(item, "cover")]["asset_id"] == cover6["asset_id"]


def test_background_work_gives_way_to_interactive_requests(fresh_svc, monkeypatch):
    svc = fresh_svc
    monkeypatch.setattr(worker_module, "BACKGROUND_YIELD_S", 10.0)
    items = [i for i, _ in svc.ranking.rank("ease", "8", 2)]
    with svc.assets.worker.interactive():  # a slate or a like being answered
        svc.assets.worker.generate_later("8", items, svc.catalog.profile("8"))
        time.sleep(0.3)
        assert svc.assets.known("8", items) == {}  # the worker waits
    _wait_idle(svc)  # and goes on as soon as the request is answered
    assert len(svc.assets.known("8", items)) == 4


def test_background_work_is_not_starved_by_a_stream_of_requests(fresh_svc, monkeypatch):
    svc = fresh_svc
    monkeypatch.setattr(worker_module, "BACKGROUND_YIELD_S", 0.05)
    items = [i for i, _ in svc.ranking.rank("ease", "9", 2)]
    with svc.assets.worker.interactive():  # never quiet: the worker still makes progress after each wait
        svc.assets.worker.generate_later("9", items, svc.catalog.profile("9"))
        _wait_idle(svc, timeout=10)
    assert len(svc.assets.known("9", items)) == 4


def test_the_queue_is_bounded_and_drops_the_oldest_waiting_jobs(fresh_svc, monkeypatch):
    svc = fresh_svc
    gate = threading.Event()
    real = svc.assets._item_assets
    monkeypatch.setattr(svc.assets, "_item_assets", lambda *a: gate.wait(10) and real(*a))
    svc.assets.worker.max_queued = 6
    items = [i for i, _ in svc.ranking.rank("ease", "5", 12)]
    profile = svc.catalog.profile("5")
    assert svc.assets.worker.generate_later("5", items[0:2], profile) == 2  # taken by the worker, blocked on the gate
    time.sleep(0.2)
    assert svc.assets.worker.generate_later("5", items[2:5], profile) == 3  # waiting
    assert svc.assets.worker.generate_later("5", items[5:8], profile) == 3  # 8 > 6: the oldest waiting job goes
    assert svc.assets.worker.dropped == 3
    assert svc.assets.worker.pending("5", items) == items[0:2] + items[5:8]
    gate.set()
    _wait_idle(svc)
    made = {i for i, _ in svc.assets.known("5", items)}
    assert made == set(items[0:2] + items[5:8])  # the dropped items were never made...
    assert svc.assets.worker.generate_later("5", items[2:5], profile) == 3  # ...and can be asked for again


def test_waiting_for_the_assets_leaves_the_generation_to_the_worker(fresh_svc, monkeypatch):
    svc = fresh_svc
    threads: set[str] = set()
    real = svc.assets._item_assets
    monkeypatch.setattr(svc.assets, "_item_assets",
                        lambda *a: threads.add(threading.current_thread().name) or real(*a))
    page = svc.slates.page(svc.events.visitor("9"), svc.ranking.parse("ease"), 3, seed=1, wait=True)
    assert page.pending == [] and len(page.covers) == len(page.captions) == 3
    assert threads == {"vitrine-assets"}  # never the request's own thread


def test_a_page_shows_the_template_caption_at_once_and_queues_the_next_page(fresh_svc, monkeypatch):
    """Items whose caption is not made yet get the labelled template in the page (no model call), and with
    prefetch the next page's items are queued behind this page's."""
    svc = fresh_svc
    gate = threading.Event()
    real = svc.assets._item_assets
    monkeypatch.setattr(svc.assets, "_item_assets", lambda *a: gate.wait(10) and real(*a))
    ease = svc.ranking.parse("ease")
    visit = svc.events.visitor("11")
    page = svc.slates.page(visit, ease, 3, seed=1)
    svc.slates.prefetch(visit, page, 3)
    assert page.pending == page.item_ids and page.captions == {}
    profile = svc.catalog.profile("11")
    assert page.templates == {i: svc.assets.captions.template(svc.catalog.item_info(i), profile) for i in page.item_ids}
    assert all(svc.catalog.item_info(i).name in text for i, text in page.templates.items())
    following = [i for i, _ in svc.ranking.rank("ease", "11", 6) if i not in page.item_ids][:3]
    queued = svc.assets.worker.pending("11", page.item_ids + following)
    assert queued[:3] == page.item_ids and set(queued[3:]) <= set(following) and len(queued) > 3
    gate.set()
    _wait_idle(svc)
    made = svc.slates.page(svc.events.visitor("11"), ease, 3, seed=1)
    assert made.templates == {} and len(made.captions) == 3  # made now: no template any more


def test_llm_keywords_never_hold_up_a_profile(fresh_svc, monkeypatch):
    """The catalog asks for the LLM's keywords without waiting (services passes preference_keywords(wait=False)):
    while they are being named the profile has the TF-IDF keywords and is not cached, so the next page uses
    the LLM's once they are there."""
    svc = fresh_svc
    answers = [None, ["neon cityscapes", "lonely heroes"]]
    calls = []
    monkeypatch.setattr(svc.catalog, "_llm_keywords", lambda liked: calls.append(len(liked)) or answers[len(calls) - 1])
    first = svc.catalog.profile("12")
    assert first.keyword_source == "tfidf" and calls == [calls[0]] and calls[0] > 0
    second = svc.catalog.profile("12")  # not cached while the keywords were pending
    assert second.keywords[:2] == ["neon cityscapes", "lonely heroes"] and second.keyword_source == "llm"
    assert svc.catalog.profile("12") is second and len(calls) == 2  # cached once they are there


def test_a_screens_cards_go_before_prefetched_ones(fresh_svc, monkeypatch):
    """The next page's items (prefetch) are made after every screen's, and a prefetch job under way gives way
    between items when a screen's job arrives; a full queue drops prefetched jobs first."""
    svc = fresh_svc
    order: list[str] = []
    first = threading.Event()
    gate = threading.Event()
    real = svc.assets._item_assets

    def make(item_id, profile):
        order.append(item_id)
        first.set()
        gate.wait(10)
        return real(item_id, profile)

    monkeypatch.setattr(svc.assets, "_item_assets", make)
    items = [i for i, _ in svc.ranking.rank("ease", "5", 12)]
    profile = svc.catalog.profile("5")
    worker = svc.assets.worker
    assert worker.generate_later("5", items[0:4], profile, prefetch=True) == 4  # another visitor's next page
    assert first.wait(10)  # the worker is on the prefetch job's first item
    assert worker.generate_later("5", items[8:10], profile, prefetch=True) == 2
    assert worker.generate_later("6", items[4:7], svc.catalog.profile("6")) == 3  # a page being shown
    gate.set()
    _wait_idle(svc)
    # the item under way is finished; then the screen's three; then the rest of the prefetch jobs, oldest first
    assert order == [items[0], *items[4:7], *items[1:4], *items[8:10]]
    assert set(items[4:7]) <= {i for i, _ in svc.assets.known("6", items[4:7])}

    gate.clear()
    first.clear()
    worker.max_queued = 4
    more = [i for i, _ in svc.ranking.rank("ease", "7", 12)]
    assert worker.generate_later("7", more[0:1], None) == 1  # taken by the worker, blocked on the gate
    assert first.wait(10)
    assert worker.generate_later("7", more[1:3], None, prefetch=True) == 2
    assert worker.generate_later("7", more[3:5], None) == 2  # 5 > 4: the prefetched job goes, not the screen's
    assert worker.dropped == 2 and worker.pending("7", more) == [more[0], *more[3:5]]
    gate.set()
    _wait_idle(svc)


def test_a_caption_decoded_in_the_worker_gives_way_to_a_page(fresh_svc, monkeypatch):
    """`give_way` (what the caption model calls between decoding steps) waits while a request is being answered,
    except in the thread answering it (a request's own generation must not wait for itself)."""
    svc = fresh_svc
    worker = svc.assets.worker
    monkeypatch.setattr(worker_module, "BACKGROUND_YIELD_S", 30.0)
    assert svc.assets.captions.between_steps == worker.give_way  # wired by the services
    inside, go, passed = threading.Event(), threading.Event(), threading.Event()

    def make(item_id, profile):
        inside.set()
        go.wait(10)
        worker.give_way()  # as a caption does between tokens
        passed.set()
        return []

    monkeypatch.setattr(svc.assets, "_item_assets", make)
    items = [i for i, _ in svc.ranking.rank("ease", "5", 2)]
    worker.generate_later("5", items[:1], svc.catalog.profile("5"))
    assert inside.wait(10)  # the worker is in the middle of an item
    with worker.interactive():  # a page is being answered
        own = threading.Event()

        def a_request_making_its_own_caption():
            with worker.interactive():
                worker.give_way()
                own.set()

        threading.Thread(target=a_request_making_its_own_caption, daemon=True).start()
        assert own.wait(5)  # a thread answering a request does not wait for the requests (its own among them)
        go.set()
        assert not passed.wait(0.5)  # the worker waits for the page
    assert passed.wait(10)  # and goes on once it is answered
    _wait_idle(svc)
