"""The generation learning loop in the app (issue 12): best-of-N slate assets, the labeling queue that fills
itself, the prompt policy that learns and persists, Create picks in the profile, the reward model's training."""

from __future__ import annotations

import json
import time
import pytest

from annotation import reads, store
from app.preference import Learner, best_of_n_for, reward_versions, train_reward
from app.ranking import ModelChoice
from generation.reward import HashingEncoder


def _show_slate(svc, user_id: str, k: int = 4) -> list[str]:
    """Ask for a slate as a visitor does, then wait for the background worker to make its assets."""
    visit = svc.slates.visit(user_id)
    page = svc.slates.page(visit, ModelChoice(svc.ranking.default_model), k, seed=0)
    assert svc.assets.wait_for(user_id, page.item_ids, timeout=60)
    return page.item_ids


def _user_assets(svc, user_id: str):
    with svc.events.ReadSession() as s:
        frame = store.assets_frame(s)
    return frame[frame["user_id"] == user_id]


def test_best_of_n_defaults_follow_the_device():
    assert best_of_n_for(0, "cpu") == 2
    assert best_of_n_for(0, "cuda") == 4 and best_of_n_for(0, "cuda:1") == 4
    assert best_of_n_for(3, "cuda") == 3


def test_a_slate_records_n_candidates_and_shows_the_first_without_a_reward_model(fresh_svc):
    svc = fresh_svc
    n = svc.assets.learner.n
    assert n == 2 and svc.assets.learner.reward is None
    items = _show_slate(svc, "5")
    mine = _user_assets(svc, "5")
    covers = mine[mine["kind"] == "cover"]
    for item in items:
        candidates = covers[covers["item_id"] == item]
        assert len(candidates) == n
        ranks = sorted(p["best_of_n"]["rank"] for p in candidates["params"])
        assert ranks == list(range(n))
        assert all(p["policy"]["segment"] and p["policy"]["style"] for p in candidates["params"])  # the arm
        shown = svc.assets.known("5", [item])[(item, "cover")]
        first = candidates[candidates["seed"] == 0].iloc[0]  # no reward model: the first candidate is shown
        assert shown["asset_id"] == int(first["asset_id"]) and shown["params"]["best_of_n"]["rank"] == 0
    # the page served once the worker is done has every cover and caption, the shown ones
    page = svc.slates.page(svc.slates.visit("5"), ModelChoice(svc.ranking.default_model), 4, seed=0)
    assert not page.pending and {c["params"]["best_of_n"]["rank"] for c in page.covers.values()} == {0}


def test_the_label_queue_fills_itself_for_a_signed_in_annotator(fresh_svc):
    svc = fresh_svc
    annotator = svc.labeling.sign_in("ann")
    assert svc.labeling.next_pair(annotator) is None  # nothing yet, and no admin action below
    items = _show_slate(svc, "5")
    pair = svc.labeling.next_pair(annotator)
    assert pair is not None and pair["target_user_id"] == "5" and pair["item_id"] in items
    shown = svc.assets.known("5", [pair["item_id"]])[(pair["item_id"], pair["kind"])]["asset_id"]
    assert shown in {pair["a"]["asset_id"], pair["b"]["asset_id"]}  # the shown one against another candidate
    with svc.events.ReadSession() as s:
        assert reads.paired_items(s, "5", items) >= {(i, "cover") for i in items}
    # at most one pair per (user, item, kind): making the same items again adds none
    with svc.events.ReadSession() as s:
        before = reads.table_counts(s)["pair tasks"]
    svc.assets.slate_assets(items, svc.catalog.profile("5"))
    with svc.events.ReadSession() as s:
        assert reads.table_counts(s)["pair tasks"] == before


def test_the_queue_stops_at_its_cap(services_factory):
    svc = services_factory(auto_pairs_max=3)
    _show_slate(svc, "5")
    _show_slate(svc, "6")
    with svc.events.ReadSession() as s:
        assert reads.untouched_pairs(s) == 3
    off = services_factory(auto_pairs_max=0)
    _show_slate(off, "5")
    with off.events.ReadSession() as s:
        assert reads.table_counts(s)["pair tasks"] == 0


def test_an_ungrounded_caption_is_never_shown(fresh_svc, monkeypatch):
    svc = fresh_svc
    real = svc.assets._caption_generate

    def inventing(item, profile, seed=0):
        asset = real(item, profile, seed=seed)
        if seed == 0:  # the first candidate invents a year and a place
            asset.text = "A story from 1853, shot in Marrakesh by Gustavo Perez."
            asset.content_hash = f"invented-{item.item_id}"
        else:
            asset.text = f"{item.title}: picked for you."
            asset.content_hash = f"grounded-{item.item_id}"
        return asset

    monkeypatch.setattr(svc.assets, "_caption_generate", inventing)
    items = _show_slate(svc, "7", k=2)
    for item in items:
        shown = svc.assets.known("7", [item])[(item, "caption")]
        assert shown["text"].endswith("picked for you.")
    mine = _user_assets(svc, "7")
    invented = mine[mine["text"].fillna("").str.contains("Marrakesh")]
    assert len(invented) == len(items)
    assert all(p["best_of_n"]["rank"] is None and p["grounding"]["problems"] for p in invented["params"])


def _label_all(svc, annotator: int, choose) -> int:
    done = 0
    while (pair := svc.labeling.next_pair(annotator)) is not None:
        svc.labeling.record_label(annotator, pair["pair_id"], choose(pair))
        done += 1
    return done


def test_labels_likes_and_picks_teach_the_policy_which_persists(fresh_svc):
    svc = fresh_svc
    learner = svc.assets.learner
    items = _show_slate(svc, "5")
    before = learner.updates
    # a label on two covers of different arms updates it (a pair of one arm teaches nothing: both are counted)
    annotator = svc.labeling.sign_in("teacher")
    _label_all(svc, annotator, lambda pair: "A")
    assert learner.updates > before
    # a like on a card: weak evidence for its cover's arm
    visit = svc.slates.visit("5")
    page = svc.slates.page(visit, ModelChoice(svc.ranking.default_model), 4, seed=0)
    liked = learner.updates
    svc.slates.feedback("5", items[0], "like", page.impression_id)
    assert learner.updates == liked + 1
    # the state reaches the disk from the upkeep thread (never in the request that taught it), and a new process
    # starts from it
    assert learner.flush() and not learner.flush()  # written once; nothing new the second time
    saved = json.loads((svc.settings.data_dir / "policy.json").read_text())
    again = Learner.start(svc.settings.data_dir, svc.catalog, svc.events, n=2, pairs_max=10)
    assert again.policy.to_dict() == saved
    assert again.policy.n_updates == learner.policy.n_updates > 0


def test_a_pick_between_two_arms_updates_the_policy(fresh_svc):
    svc = fresh_svc
    learner = svc.assets.learner
    profile = svc.catalog.profile("5")
    item = svc.ranking.rank("ease", "5", 1)[0][0]
    a, b = learner.policy.arms[0], learner.policy.arms[-1]  # two styles
    segment = "drama"
    made = []  # two Create variants made with two arms, as `Assets.create_variants` makes them
    for i, arm in enumerate((a, b)):
        asset = svc.assets._cover_generate(svc.catalog.item_info(item), profile, n=1, seed=90 + i, alpha=arm.alpha)[0]
        asset.params = {**asset.params, **arm.as_params(segment)}
        made.append(asset)
    variants = svc.assets.record(made)
    before = learner.policy.posterior_mean(segment)["style"][a.style.name]
    svc.labeling.record_pick("5", variants, 0)
    assert learner.policy.posterior_mean(segment)["style"][a.style.name] > before


def test_create_picks_feed_the_profile(fresh_svc):
    svc = fresh_svc
    item = svc.ranking.rank("ease", "5", 1)[0][0]
    variants = svc.assets.create_variants(svc.catalog.profile("5"), item, 2, seed=3)
    svc.labeling.record_pick("5", variants, 1)
    prompt = variants[1]["prompt"]
    assert svc.assets.learner.preferred_prompts("5")[0] == prompt  # this process: at once
    fresh = Learner.start(svc.settings.data_dir, svc.catalog, svc.events, n=2, pairs_max=10)
    assert fresh.preferred_prompts("5") == (prompt,)  # another process: read from the store
    with svc.events.ReadSession() as s:
        assert reads.picked_prompts(s, "user:5") == [prompt]
        assert reads.picked_prompts(s, "user:6") == []
    profile = svc.catalog.profile("5", preferred_prompts=[prompt])
    assert profile.preferred_prompts == [prompt]
    # the Create tab's variants also put a personalized-vs-generic pair in the queue for other annotators
    with svc.events.ReadSession() as s:
        assert (item, "cover") in reads.paired_items(s, "5", [item])


def _labelled_store(svc, users=("5", "6", "7", "8")) -> None:
    """Slates for a few users, and two annotators who label every pair the queue made (prefer side A)."""
    for user in users:
        _show_slate(svc, user)
    for name in ("ann-1", "ann-2"):
        annotator = svc.labeling.sign_in(name)
        _label_all(svc, annotator, lambda pair: "A")
        time.sleep(0.01)


def test_reward_model_trains_from_the_store_and_best_of_n_uses_it(fresh_svc):
    svc = fresh_svc
    _labelled_store(svc)
    encoder = HashingEncoder(32)
    first = train_reward(svc.events.Session, svc.catalog, svc.settings.data_dir, encoder, say=lambda m: None)
    second = train_reward(svc.events.Session, svc.catalog, svc.settings.data_dir, encoder, say=lambda m: None)
    assert (first["version"], second["version"]) == (1, 2)
    assert [n for n, _ in reward_versions(svc.settings.data_dir / "reward")] == [1, 2]
    assert 0.0 <= first["metrics"]["heldout_accuracy"] <= 1.0 and first["metrics"]["n_pairs"] >= 10
    with svc.events.ReadSession() as s:
        runs = store.eval_runs_frame(s)
    reward_runs = runs[runs["model"] == "reward"]
    assert len(reward_runs) == 2 and set(reward_runs["split"]) == {"time"}
    # the newest version is loaded at start-up, and it ranks the candidates of the next slate
    notes: list[str] = []
    learner = Learner.start(svc.settings.data_dir, svc.catalog, svc.events, n=2, pairs_max=10, notes=notes)
    assert learner.reward is not None and learner.reward.version == second["model_version"]
    assert any("v2.npz" in note for note in notes)
    svc.assets.learner = learner
    items = _show_slate(svc, "9", k=2)
    mine = _user_assets(svc, "9")
    covers = mine[(mine["kind"] == "cover") & mine["item_id"].isin(items)]
    for params in covers["params"]:
        assert params["best_of_n"]["version"] == second["model_version"]
        assert isinstance(params["best_of_n"]["score"], float)
    for item in items:  # the shown cover is the one the model scores highest
        candidates = covers[covers["item_id"] == item]
        best = max(candidates.itertuples(), key=lambda r: r.params["best_of_n"]["score"])
        assert svc.assets.known("9", [item])[(item, "cover")]["asset_id"] == int(best.asset_id)


def test_train_cli_reward(fresh_svc, monkeypatch, capsys):
    from app import train
    from vitrine_app_fixtures import make_tiny_dataset

    svc = fresh_svc
    with pytest.raises(SystemExit):
        train.parse_args([])  # neither --model nor --reward
    with pytest.raises(SystemExit):
        train.parse_args(["--reward", "--model", "ease"])
    monkeypatch.setenv("VITRINE_DATA_DIR", str(svc.settings.data_dir))
    monkeypatch.setenv("DATABASE_URL", svc.settings.database_url)
    monkeypatch.setattr("recommenders.data.load_dataset", lambda name, data_dir: make_tiny_dataset())
    assert train.main(["--reward", "--encoder", "hashing-16"]) == 2  # an empty store: too few pairs
    assert "at least 10" in capsys.readouterr().err
    _labelled_store(svc)
    assert train.main(["--reward", "--encoder", "hashing-16", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["version"] == 1 and (svc.settings.data_dir / "reward" / "v1.npz").is_file()


def test_the_settings_read_best_of_n_and_the_queue_cap():
    from app.settings import load_settings

    settings = load_settings({"VITRINE_BEST_OF_N": "3", "VITRINE_AUTO_PAIRS_MAX": "0"})
    assert settings.best_of_n == 3 and settings.auto_pairs_max == 0
    assert load_settings({}).best_of_n == 0  # auto
    with pytest.raises(ValueError, match="VITRINE_BEST_OF_N"):
        load_settings({"VITRINE_BEST_OF_N": "17"})


def test_the_learner_checks_its_arguments(fresh_svc):
    svc = fresh_svc
    with pytest.raises(ValueError, match="n must"):
        Learner(svc.catalog, svc.events, svc.assets.learner.policy, None, n=0)
    with pytest.raises(ValueError, match="pairs_max"):
        Learner(svc.catalog, svc.events, svc.assets.learner.policy, None, pairs_max=-1)


def test_best_of_n_writes_stay_short(fresh_svc, monkeypatch):
    """Several candidates per item: the worker still records at most BACKGROUND_BATCH_ASSETS per transaction."""
    import app.assets as assets_module

    svc = fresh_svc
    sizes: list[int] = []
    real = svc.assets.record
    monkeypatch.setattr(svc.assets, "record", lambda assets: sizes.append(len(assets)) or real(assets))
    items = [i for i, _ in svc.ranking.rank("ease", "5", 10)]
    svc.assets.generate_later("5", items, svc.catalog.profile("5"))
    assert svc.assets.wait_for("5", items, timeout=60)
    per_item = 2 * svc.assets.learner.n
    assert len(sizes) >= 2 and max(sizes) < assets_module.BACKGROUND_BATCH_ASSETS + per_item
    assert set(svc.assets.known("5", items)) == {(i, k) for i in items for k in ("cover", "caption")}


def test_the_admin_action_trains_the_preference_model_and_serves_it(fresh_svc, monkeypatch):
    import gradio as gr

    from app import handlers as h
    from app import preference

    svc = fresh_svc
    monkeypatch.setattr(preference, "encoder_for", lambda name, text_model=None: HashingEncoder(16))
    with pytest.raises(gr.Error, match="preference model: expected enough labelled pairs"):
        h.retrain(svc, h.PREFERENCE_MODEL)  # an empty store
    _labelled_store(svc)
    msg, status = h.retrain(svc, h.PREFERENCE_MODEL)
    assert "Trained the preference model, version 1" in msg and "held-out pair accuracy" in msg
    assert svc.assets.learner.reward is not None and (svc.settings.data_dir / "reward" / "v1.npz").is_file()


def test_the_preference_model_retrains_on_a_schedule_of_new_labels(services_factory, monkeypatch):
    from app import preference

    monkeypatch.setattr(preference, "encoder_for", lambda name, text_model=None: HashingEncoder(16))
    svc = services_factory(reward_every_labels=10)
    svc.tick_reward_schedule()
    assert not (svc.settings.data_dir / "reward").exists()  # no labels yet: nothing to learn from
    _labelled_store(svc)
    svc.tick_reward_schedule()
    assert (svc.settings.data_dir / "reward" / "v1.npz").is_file() and svc.assets.learner.reward is not None
    svc.tick_reward_schedule()
    assert not (svc.settings.data_dir / "reward" / "v2.npz").exists()  # no new labels since
