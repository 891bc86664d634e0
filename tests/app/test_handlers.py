"""The handlers as plain functions over the tiny services: state in, state out, rows in the DB."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
from sqlalchemy import select

from annotation.models import FeedbackEvent, GeneratedAsset, Impression, PreferenceLabel, User
from app.web import create_tab, discover_tab, label_tab, status_tab
from app.web.state import PAGE_SIZE, Visitor


def _rows(svc, model, *where):
    with svc.events.Session() as s:
        return s.scalars(select(model).where(*where)).all()


def test_select_user_shows_profile_and_resets(svc):
    visitor = Visitor(slate=[{"item_id": "1"}], page=3)
    visitor, html = discover_tab.select_user(svc, visitor, "5")  # user 5 likes genre 5 % 4 = 1 -> Drama
    assert visitor.user_id == "5" and visitor.user_kind == "dataset"
    assert visitor.slate == [] and visitor.page == 0
    assert "Drama" in html and "user 5" in html and "writer" in html


def test_recommend_records_an_impression_and_fills_the_page(svc):
    visitor, _ = discover_tab.select_user(svc, Visitor(), "5")
    visitor, cards, info = discover_tab.recommend(svc, visitor, "ease", discover_tab.NO_COMPARE)
    assert len(cards) == PAGE_SIZE and all(cards)
    assert visitor.impression_id is not None and "impression" in info
    with svc.events.Session() as s:
        imp = s.get(Impression, visitor.impression_id)
        assert imp.user_id == "5" and imp.model == "ease"
        assert imp.item_ids == [r["item_id"] for r in visitor.slate]
    seen = set(svc.catalog.dataset.interactions.query("user_id == '5'")["item_id"])
    assert not seen & set(visitor.shown), "training history is excluded"
    # user 5 loves Drama: the content "why" names a liked Drama film for Drama recommendations
    drama = [r for r in visitor.slate if r["genres"] == ["Drama"]]
    assert drama and all("Drama Film" in r["why"] for r in drama)


def test_compare_interleaves_two_models_and_records_contributors(svc):
    visitor, _ = discover_tab.select_user(svc, Visitor(), "6")
    visitor, cards, info = discover_tab.recommend(svc, visitor, "ease", "pop")
    assert "team-draft" in info
    contributors = [r["contributor"] for r in visitor.slate]
    assert set(contributors) == {"ease", "pop"}
    assert not any("· ease" in c or "· pop" in c or "score" in c for c in cards), "the slate is blind"
    assert abs(contributors.count("ease") - contributors.count("pop")) <= 1
    with svc.events.Session() as s:
        imp = s.get(Impression, visitor.impression_id)
        assert imp.model == "ease" and imp.model_b == "pop"
        assert imp.contributors == contributors
        assert imp.context["seed"] == visitor.seed


def test_like_dislike_open_are_logged_with_the_impression(svc):
    visitor, _ = discover_tab.select_user(svc, Visitor(), "7")
    visitor, cards, _ = discover_tab.recommend(svc, visitor, "ease", None)
    first, second = visitor.slate[0]["item_id"], visitor.slate[1]["item_id"]
    visitor, cards, _, info = discover_tab.card_feedback(svc, visitor, 0, "like")
    assert first in visitor.liked and "♥" in cards[0] and "Liked" in info
    visitor, cards, _, _ = discover_tab.card_feedback(svc, visitor, 1, "dislike")
    assert second in visitor.disliked  # the card stays in its place, shown as removed, with Undo
    assert "vt-removed" in cards[1] and 'data-action="undo"' in cards[1] and 'data-action="like"' not in cards[1]
    visitor, _, detail, _ = discover_tab.card_feedback(svc, visitor, 0, "open")
    assert visitor.slate[0]["title"] in detail
    events = _rows(svc, FeedbackEvent, FeedbackEvent.user_id == "7")
    assert [(e.item_id, e.kind, e.impression_id) for e in events] == [
        (first, "like", visitor.impression_id),
        (second, "dislike", visitor.impression_id),
        (first, "click", visitor.impression_id),
    ]
    # the next page never brings the disliked item back, nor anything already shown
    shown = list(visitor.shown)
    visitor, _, _ = discover_tab.more(svc, visitor)
    assert not set(r["item_id"] for r in visitor.slate) & (set(shown) | {second})
    with pytest.raises(gr.Error, match="no card in slot"):
        discover_tab.card_feedback(svc, visitor, PAGE_SIZE + 3, "like")


def test_fill_assets_streams_covers_and_captions(svc):
    visitor, _ = discover_tab.select_user(svc, Visitor(), "8")
    visitor, cards, _ = discover_tab.recommend(svc, visitor, "ease", None)
    assert all("vt-cover-pending" in c for c in cards)
    assert sorted(visitor.pending) == sorted(r["item_id"] for r in visitor.slate)  # queued on the background worker
    steps = list(discover_tab.fill_assets(svc, visitor, poll_s=0.02))
    assert len(steps) >= 2  # at least one batch as it arrived, then the final state
    visitor, cards = steps[-1]
    assert visitor.pending == []
    assert not any("vt-cover-pending" in c for c in cards)
    for row in visitor.slate:
        cover = visitor.covers[row["item_id"]]
        assert Path(svc.assets.file(cover["key"])).is_file() and cover["fallback"] is True
        assert cover["src"] == cover["key"] and f'src="{cover["src"]}"' in "".join(cards)  # a URL, not a path
        assert visitor.captions[row["item_id"]]["text"]
    assets = _rows(svc, GeneratedAsset, GeneratedAsset.user_id == "8")
    assert {a.kind for a in assets} == {"cover", "caption"} and all(a.fallback for a in assets)
    # a second fill costs nothing and records nothing new
    before = len(assets)
    assert len(list(discover_tab.fill_assets(svc, visitor))) == 1
    assert len(_rows(svc, GeneratedAsset, GeneratedAsset.user_id == "8")) == before
    # the same slate again: every cover and caption comes at once from the store, nothing is queued
    again, _ = discover_tab.select_user(svc, Visitor(), "8")
    again, cards, _ = discover_tab.recommend(svc, again, "ease", None)
    assert again.pending == [] and not any("vt-cover-pending" in c for c in cards)


def test_new_user_onboarding_and_cold_start(svc):
    with pytest.raises(gr.Error, match="at least 3"):
        discover_tab.start_new_user(svc, Visitor(), ["4", "8"])
    visitor, html = discover_tab.start_new_user(svc, Visitor(), ["4", "8", "12"])  # three Comedy films (i % 4 == 0)
    user_id = visitor.user_id
    assert user_id.startswith("new-") and visitor.user_kind == "new" and "new user" in html and "Comedy" in html
    assert _rows(svc, User, User.user_id == user_id)[0].kind == "new"
    likes = _rows(svc, FeedbackEvent, FeedbackEvent.user_id == user_id)
    assert sorted(e.item_id for e in likes) == ["12", "4", "8"] and {e.kind for e in likes} == {"like"}
    visitor, cards, _ = discover_tab.recommend(svc, visitor, "ease", None)
    ids = [r["item_id"] for r in visitor.slate]
    assert not {"4", "8", "12"} & set(ids)
    assert ids[0] in {"16", "20", "24"}, "cold start folds the picks in: the other Comedy films come first"
    # the same user, found again by id (e.g. another tab), keeps their picks as history
    again, html = discover_tab.select_user(svc, Visitor(), user_id)
    assert again.user_kind == "new" and sorted(again.liked) == ["12", "4", "8"]


def test_undo_restores_the_card_and_is_an_event_of_its_own(fresh_svc):
    svc = fresh_svc
    visitor, _ = discover_tab.select_user(svc, Visitor(), "7")
    visitor, before, _ = discover_tab.recommend(svc, visitor, "ease", None)
    first, second = visitor.slate[0]["item_id"], visitor.slate[1]["item_id"]
    with pytest.raises(gr.Error, match="no like or dislike of .* to undo"):
        discover_tab.card_feedback(svc, visitor, 0, "undo")
    visitor, cards, _, _ = discover_tab.card_feedback(svc, visitor, 0, "like")
    assert 'data-action="undo"' in cards[0] and "♥" in cards[0]
    visitor, cards, _, info = discover_tab.card_feedback(svc, visitor, 0, "undo")
    assert first not in visitor.liked and "Took back your like" in info
    assert cards[0] == before[0], "the card is as it was before the like"
    visitor, _, _, _ = discover_tab.card_feedback(svc, visitor, 1, "dislike")
    visitor, cards, _, info = discover_tab.card_feedback(svc, visitor, 1, "undo")
    assert second not in visitor.disliked and cards[1] == before[1] and "Took back your dislike" in info
    assert svc.events.visitor("7").liked == () and svc.events.visitor("7").disliked == ()
    events = _rows(svc, FeedbackEvent, FeedbackEvent.user_id == "7")
    assert [(e.item_id, e.kind, e.impression_id) for e in events] == [
        (first, "like", visitor.impression_id), (first, "undo", visitor.impression_id),
        (second, "dislike", visitor.impression_id), (second, "undo", visitor.impression_id)]
    # the undone dislike no longer hides the item: a fresh first page may show it again
    assert second in [r["item_id"] for r in discover_tab.recommend(svc, Visitor(user_id="7"), "ease", None)[0].slate]


def test_card_actions_from_the_page_are_checked(fresh_svc):
    svc = fresh_svc
    visitor, _ = discover_tab.select_user(svc, Visitor(), "6")
    visitor, _, _ = discover_tab.recommend(svc, visitor, "ease", None)
    visitor, cards, _, info = discover_tab.card_action(svc, visitor, {"action": "like", "slot": 2})
    assert visitor.slate[2]["item_id"] in visitor.liked and "Liked" in info
    for data, message in [(None, "card action: expected one of like, dislike, open, undo, got 'None'"),
                          ({"action": "love", "slot": 0}, "card action: expected one of"),
                          ({"action": "like", "slot": True}, "card slot: expected a whole number from 0 to 7"),
                          ({"action": "like", "slot": 99}, "card slot: expected a whole number"),
                          ({"action": "like", "slot": "x"}, "card slot: expected a whole number"),
                          ([1, 2], "card action: expected one of")]:
        with pytest.raises(gr.Error, match=message):
            discover_tab.card_action(svc, visitor, data)


def test_the_user_picker_takes_a_typed_id_and_suggests_by_prefix(svc):
    suggested = discover_tab.suggest_users(svc, "1")["choices"]
    assert suggested[0] == (svc.catalog.user_label("1"), "1"), "the exact id first"
    assert {u for _, u in suggested[:8]} == {"1", "10", "11", "12", "13", "14", "15", "16"}
    assert suggested[0][0].startswith("1 · 21 F writer · ")
    # the list keeps its length (the dropdown shows only the labels with the typed text): the most active after
    assert len(suggested) == 16 and not any(u.startswith("1") for _, u in suggested[8:])
    assert not any(u.startswith("99") for _, u in discover_tab.suggest_users(svc, "99")["choices"])
    assert len(discover_tab.suggest_users(svc, "")["choices"]) == 16  # the most active, at most SEARCH_HITS
    visitor, html = discover_tab.select_user(svc, Visitor(), " 12 ")  # typed, with spaces
    assert visitor.user_id == "12" and "user 12" in html
    with pytest.raises(gr.Error, match="user id: expected text"):
        discover_tab.suggest_users(svc, 5)


def test_choosing_a_user_shows_the_first_page_and_refocusing_changes_nothing(svc):
    visitor, profile, cards, info = discover_tab.choose_user(svc, Visitor(), "4", "ease")
    assert visitor.user_id == "4" and "user 4" in profile and len(cards) == PAGE_SIZE and "user 4" in info
    impression = visitor.impression_id
    for again in ("4", " 4 ", "", None):  # the picker losing the focus sends its value again
        assert discover_tab.choose_user(svc, visitor, again, "ease") == (gr.skip(), gr.skip(), None, gr.skip())
    assert visitor.impression_id == impression
    with pytest.raises(gr.Error, match="'nobody'"):
        discover_tab.choose_user(svc, visitor, "nobody", "ease")


def test_item_pickers_search_titles_and_keep_what_was_chosen(svc):
    # titles are "<genre> Film <i>", genre = GENRES[i % 4]: every word typed matches, a prefix too
    assert discover_tab.search_items(svc, "comedy film 12")["choices"][0] == ("Comedy Film 12 (2002)", "12")
    assert discover_tab.search_items(svc, "sci-fi fil 7")["choices"][0] == ("Sci-Fi Film 7 (1997)", "7")
    found = discover_tab.search_items(svc, "horror film 6", chosen=["4", "8"])["choices"]
    assert found[0] == ("Horror Film 6 (1996)", "6")
    assert found[-2:] == [("Comedy Film 4 (1994)", "4"), ("Comedy Film 8 (1998)", "8")]  # kept, with their labels
    assert len(discover_tab.search_items(svc, "film")["choices"]) == 20  # SEARCH_HITS, not the catalog
    assert discover_tab.search_items(svc, "", chosen="3")["choices"][-1] == ("Sci-Fi Film 3 (1993)", "3")  # after the popular
    # the tiny catalog's features come from no known text model: meaning falls back to titles, and says so
    assert svc.catalog.meaning_search[0] is False
    assert discover_tab.search_items(svc, "horror film 6", mode="meaning")["choices"][0] == ("Horror Film 6 (1996)", "6")
    with pytest.raises(gr.Error, match="search: expected text"):
        discover_tab.search_items(svc, ["x"])
    with pytest.raises(gr.Error, match="query: expected at most 200 characters"):
        discover_tab.search_items(svc, "x" * 201)


def test_errors_are_clear(svc):
    with pytest.raises(gr.Error, match="user_id: expected a user .* Type a user id from the suggestions"):
        discover_tab.select_user(svc, Visitor(), "no-such-user")
    for nothing in ("  ", None):  # the picker losing the focus while empty: nothing happens, nothing is shown
        with pytest.raises(gr.Error, match="no user id typed") as raised:
            discover_tab.select_user(svc, Visitor(), nothing)
        assert raised.value.visible is False
    with pytest.raises(gr.Error, match="already shown") as raised:  # nor with the user already on the page
        discover_tab.select_user(svc, Visitor(user_id="3"), "3")
    assert raised.value.visible is False
    with pytest.raises(gr.Error, match="Pick a user"):
        discover_tab.recommend(svc, Visitor(), "ease", None)
    visitor, _ = discover_tab.select_user(svc, Visitor(), "3")
    with pytest.raises(gr.Error, match="model: expected one of"):
        discover_tab.recommend(svc, visitor, "nope", None)
    with pytest.raises(gr.Error, match="two different models"):
        discover_tab.recommend(svc, visitor, "ease", "ease")


def test_create_variants_and_pick(fresh_svc):
    svc = fresh_svc
    visitor, _ = discover_tab.select_user(svc, Visitor(), "2")
    with pytest.raises(gr.Error, match="Pick an item"):
        create_tab.create_variants(svc, visitor, None, 4)
    calls = []
    visitor, gallery, caption, info = create_tab.create_variants(svc, visitor, "3", 4, progress=lambda f, desc: calls.append(f))
    assert len(gallery) == 4 and all(Path(p).is_file() for p, _ in gallery)
    assert sorted(v["personalized"] for v in visitor.variants) == [False, False, True, True]
    assert calls and calls[-1] == 1.0 and caption.startswith("> ")
    with pytest.raises(gr.Error, match="Click one of the 4"):
        create_tab.pick_variant(svc, visitor, None)
    visitor, msg = create_tab.pick_variant(svc, visitor, 2)
    assert "preferred over 3 others" in msg
    labels = _rows(svc, PreferenceLabel)
    assert len(labels) == 3
    best = visitor.variants[2]["asset_id"]
    with svc.events.Session() as s:
        for label in labels:
            pair = s.merge(label).pair
            winner = pair.asset_a_id if label.choice == "A" else pair.asset_b_id
            assert winner == best and pair.target_user_id == "2"


def test_label_flow_with_keys_and_undo(fresh_svc):
    svc = fresh_svc
    assert svc.labeling.make_pairs(2, seed=1) == 4  # a cover and a caption pair per (user, item)
    with pytest.raises(gr.Error, match="Sign in"):
        label_tab.load_pair(svc, Visitor())
    visitor, msg = label_tab.sign_in(svc, Visitor(), "ann <b>", "")
    assert "\\<b\\>" in msg and "<b>" not in msg
    visitor, target, a, b, progress = label_tab.load_pair(svc, visitor)
    assert "vt-key" in a and "vt-key" in b and "user" in target
    assert "**0** done" in progress and "**4** remaining" in progress
    first = visitor.pair["pair_id"]
    visitor, *_ , progress = label_tab.label_key(svc, visitor, "1")
    assert "**1** done" in progress and visitor.pair["pair_id"] != first
    visitor, *_ = label_tab.label_key(svc, visitor, "0")
    visitor, *_ , progress = label_tab.undo_label(svc, visitor)
    assert "**1** done" in progress
    labels = _rows(svc, PreferenceLabel, PreferenceLabel.is_current.is_(True), PreferenceLabel.choice.is_not(None))
    assert [(l.pair_id, l.choice) for l in labels] == [(first, "A")]
    with pytest.raises(gr.Error, match="key must be one of"):
        label_tab.label_key(svc, visitor, "x")


def test_label_password(services_factory):
    svc = services_factory(label_password="s3cret")
    with pytest.raises(gr.Error, match="Wrong password"):
        label_tab.sign_in(svc, Visitor(), "ann", "nope")
    visitor, _ = label_tab.sign_in(svc, Visitor(), "ann", "s3cret")
    assert visitor.annotator_id is not None


def test_status_and_retrain(fresh_svc):
    svc = fresh_svc
    html = status_tab.status_html(svc)
    for text in ("ease", "pop", "fallback", "VITRINE_COVER_MODEL", "SQLite", "feedback events", "tiny"):
        assert text in html
    visitor, _ = discover_tab.start_new_user(svc, Visitor(), ["1", "5", "9"])
    # nothing in the registry yet: version 1 (the dataset alone) is registered and served, then version 2 learns
    # from the logs (the new user's 3 likes) and goes through the gate
    msg, _ = status_tab.retrain(svc, "ease")
    assert "version 2" in msg and "event 3" in msg and ("promoted and served" in msg or "rejected by the gate" in msg)
    assert "Time: estimated" in msg and "budget 60" in msg and "took" in msg  # VITRINE_RETRAIN_BUDGET_MIN: 60 min
    from annotation import registry

    with svc.events.ReadSession() as s:
        versions = registry.versions_frame(s, "ease")
    assert list(versions["version"]) == [1, 2] and versions["decision"].notna().all()
    served = versions[versions["promoted"].astype(bool)]["version_id"].tolist()
    assert svc.watchers["ease"].version_id in served


def test_admin_actions_need_the_admin_password_when_set(services_factory):
    svc = services_factory(admin_password="adm1n")
    for wrong in ("nope", "", None):
        with pytest.raises(gr.Error, match="expected the admin password"):
            status_tab.retrain(svc, "ease", wrong)
        with pytest.raises(gr.Error, match="expected the admin password"):
            status_tab.make_pairs(svc, 1, wrong)
    assert "Retrained **ease**" in status_tab.retrain(svc, "ease", "adm1n")[0]
    assert status_tab.make_pairs(svc, 1, "adm1n")[0] == "Created 2 pairs for labeling."


def test_a_retrain_over_the_budget_is_refused_with_its_estimate(services_factory):
    svc = services_factory(retrain_budget_min=1e-9)
    before = svc.ranking.model("ease")
    with pytest.raises(gr.Error, match=r"retrain ease: estimated .* over the retrain time budget .* Raise "
                                       r"VITRINE_RETRAIN_BUDGET_MIN"):
        status_tab.retrain(svc, "ease")
    assert svc.ranking.model("ease") is before


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_admin_actions_fail_closed_without_a_password_or_the_opt_in(services_factory, host):
    # the bind address proves nothing: behind the one-port proxy a loopback-bound app is public
    svc = services_factory(host=host, admin_open=False)
    before = svc.ranking.model("ease")
    with pytest.raises(gr.Error, match="set VITRINE_ADMIN_PASSWORD .* or VITRINE_ADMIN_OPEN=1"):
        status_tab.retrain(svc, "ease", "anything")
    with pytest.raises(gr.Error, match="set VITRINE_ADMIN_PASSWORD"):
        status_tab.make_pairs(svc, 1)
    assert svc.ranking.model("ease") is before  # nothing retrained
    assert svc.events.counts()["pair tasks"] == 0
    opted_in = services_factory(host=host, admin_open=True)  # make demo sets VITRINE_ADMIN_OPEN=1
    assert "Retrained" in status_tab.retrain(opted_in, "ease")[0]


def test_numbers_from_widgets_are_validated(fresh_svc):
    with pytest.raises(gr.Error, match="n: expected an integer between 1 and 200"):
        status_tab.make_pairs(fresh_svc, None)
    visitor, _ = discover_tab.select_user(fresh_svc, Visitor(), "2")
    with pytest.raises(gr.Error, match="n: expected an integer between 2 and 8"):
        create_tab.create_variants(fresh_svc, visitor, "3", 9)
    visitor, gallery, _, _ = create_tab.create_variants(fresh_svc, visitor, "3", 2.0)  # a slider may send a float
    assert len(gallery) == 2
    msg, _ = status_tab.make_pairs(fresh_svc, 1.0)
    assert msg == "Created 2 pairs for labeling."


def test_default_model_without_features_falls_back(tmp_path):
    from recommenders.models import DEFAULT_MODEL, DEFAULT_MODEL_WITHOUT_FEATURES, FEATURE_MODELS
    from vitrine_app_fixtures import make_settings, make_tiny_dataset

    from app.serving.services import build_services

    if DEFAULT_MODEL not in FEATURE_MODELS:
        pytest.skip(f"the default model {DEFAULT_MODEL} needs no features")
    svc = build_services(make_settings(tmp_path, model=None, extra_models=()), dataset=make_tiny_dataset(),
                         features={}, say=lambda msg: None)
    try:
        assert svc.ranking.default_model == DEFAULT_MODEL_WITHOUT_FEATURES
        # the size-based choice sees that there is no text: the dense model without it, and says why
        assert any(note.startswith(f"default model {DEFAULT_MODEL_WITHOUT_FEATURES}: the exact dense model fits")
                   for note in svc.notes)
        assert svc.catalog.why("1", ["5"], ["Comedy"]) == "popular with people like you"  # no text: genres only
        assert svc.catalog.why("4", ["8"], ["Comedy"]) == "you like Comedy"
    finally:
        svc.close()


def test_app_likes_do_not_shorten_the_slate(fresh_svc):
    svc = fresh_svc
    ease = svc.ranking.parse("ease")
    first = svc.slates.page(svc.events.visitor("5"), ease, 4, seed=1)
    top = first.item_ids
    for item_id in top:  # the user likes the whole first page in the app
        svc.slates.feedback("5", item_id, "like", first.impression_id)
    again = svc.slates.page(svc.events.visitor("5"), ease, 4, seed=1).item_ids
    assert len(again) == 4 and not set(again) & set(top)


def test_feedback_sent_through_the_api_counts_on_an_open_discover_page(fresh_svc):
    """The store is the one place a visitor's likes and dislikes live: a like or dislike sent through /feedback
    (another tab, a script) counts on the Discover page that is already open, at its next page."""
    from app.web.api import ApiHandlers

    svc, api = fresh_svc, ApiHandlers(fresh_svc)
    visitor, _ = discover_tab.select_user(svc, Visitor(), "5")
    visitor, _, _ = discover_tab.recommend(svc, visitor, "ease", discover_tab.NO_COMPARE)
    slate = api.recommend("5", "ease", 6)  # the same user through the API: items the open page has not shown
    liked, disliked = slate["items"][0]["item_id"], slate["items"][1]["item_id"]
    api.feedback("5", liked, "like", slate["impression_id"])
    api.feedback("5", disliked, "dislike", slate["impression_id"])
    expected = svc.ranking.rank("ease", "5", PAGE_SIZE, liked=[liked], disliked=[disliked], exclude=visitor.shown,
                                skipped=visitor.shown)  # the first page, passed over
    visitor, cards, _ = discover_tab.more(svc, visitor)
    assert visitor.liked == [liked] and visitor.disliked == [disliked]
    assert [r["item_id"] for r in visitor.slate] == [i for i, _ in expected]  # the API's like is folded in
    assert disliked not in [r["item_id"] for r in visitor.slate]
    # ...and the other way round: a like on the page is what the API ranks with
    visitor, _, _, _ = discover_tab.card_feedback(svc, visitor, 0, "like")
    assert svc.events.visitor("5").liked == (liked, visitor.slate[0]["item_id"])


def test_what_a_visitor_passes_over_counts_on_the_next_page_and_an_opened_card_was_not_passed_over(fresh_svc):
    svc = fresh_svc
    visitor, _ = discover_tab.select_user(svc, Visitor(), "5")
    visitor, _, _ = discover_tab.recommend(svc, visitor, "ease", discover_tab.NO_COMPARE)
    opened = visitor.slate[0]["item_id"]
    visitor, *_ = discover_tab.card_feedback(svc, visitor, 0, "open")
    shown = list(visitor.shown)
    skipped = [i for i in shown if i != opened]
    expected = svc.ranking.rank("ease", "5", PAGE_SIZE, exclude=shown, skipped=skipped)
    every_card = svc.ranking.rank("ease", "5", PAGE_SIZE, exclude=shown, skipped=shown)
    plain = svc.ranking.rank("ease", "5", PAGE_SIZE, exclude=shown)
    assert expected != plain and expected != every_card  # the test can tell the three apart (items or scores)
    visitor, _, _ = discover_tab.more(svc, visitor)
    assert [(r["item_id"], r["score"]) for r in visitor.slate] == expected


def test_a_card_action_of_an_unknown_kind_writes_nothing(fresh_svc):
    svc = fresh_svc
    visitor, _ = discover_tab.select_user(svc, Visitor(), "6")
    visitor, _, _ = discover_tab.recommend(svc, visitor, "ease", discover_tab.NO_COMPARE)
    before = len(_rows(svc, FeedbackEvent))
    for kind in ("bogus", "LIKE", "", "skip"):
        with pytest.raises(gr.Error, match="kind must be one of like, dislike, open"):
            discover_tab.card_feedback(svc, visitor, 0, kind)
    assert len(_rows(svc, FeedbackEvent)) == before and visitor.liked == [] and len(visitor.slate) == PAGE_SIZE


def test_a_pair_heading_escapes_what_the_store_holds(svc, monkeypatch):
    visitor, _ = label_tab.sign_in(svc, Visitor(), "esc-annotator", None)
    pair = {"pair_id": 1, "kind": '<img src=x onerror="alert(1)">', "item_id": "1", "target_user_id": None,
            "a": {"kind": "cover", "text": None}, "b": {"kind": "cover", "text": None}}
    monkeypatch.setattr(svc.labeling, "next_pair", lambda annotator_id, study=None: dict(pair))
    _, head, _, _, _ = label_tab.load_pair(svc, visitor)
    assert "<img" not in head and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in head
