"""The generation learning loop in the app (issue 12): best-of-N slate assets, the labeling queue that fills
itself, the prompt policy that learns and persists, Create picks in the profile, the reward model's training."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from annotation import reads, registry, store
from app.learning.learner import Learner, best_of_n_for
from app.learning.reward import reward_gate, reward_versions, train_reward
from app.serving.ranking import ModelChoice
from generation.reward import HashingEncoder, RewardModel


def _show_slate(svc, user_id: str, k: int = 4) -> list[str]:
    """Ask for a slate as a visitor does, then wait for the background worker to make its assets."""
    visit = svc.events.visitor(user_id)
    page = svc.slates.page(visit, ModelChoice(svc.ranking.default_model), k, seed=0)
    assert svc.assets.worker.wait_for(user_id, page.item_ids, timeout=60)
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
    page = svc.slates.page(svc.events.visitor("5"), ModelChoice(svc.ranking.default_model), 4, seed=0)
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
    real = svc.assets.generate_caption

    def inventing(item, profile, seed=0):
        asset = real(item, profile, seed=seed)
        if seed == 0:  # the first candidate invents a year and a place
            asset.text = "A story from 1853, shot in Marrakesh by Gustavo Perez."
            asset.content_hash = f"invented-{item.item_id}"
        else:
            asset.text = f"{item.title}: picked for you."
            asset.content_hash = f"grounded-{item.item_id}"
        return asset

    monkeypatch.setattr(svc.assets, "generate_caption", inventing)
    items = _show_slate(svc, "7", k=2)
    for item in items:
        shown = svc.assets.known("7", [item])[(item, "caption")]
        assert shown["text"].endswith("picked for you.")
    mine = _user_assets(svc, "7")
    invented = mine[mine["text"].fillna("").str.contains("Marrakesh")]
    assert len(invented) == len(items)
    assert all(p["best_of_n"]["rank"] is None and p["grounding"]["problems"] for p in invented["params"])


class _LongestWins(RewardModel):
    """A reward model whose choice a test can predict: a caption scores its length."""

    def __init__(self) -> None:
        super().__init__(HashingEncoder(8))
        self.version = "longest-wins"

    def score(self, user, candidates):
        return np.array([float(len(c.text or "")) for c in candidates])


class _CannotScore(_LongestWins):
    def score(self, user, candidates):
        raise RuntimeError("no image reader")


def test_caption_ranks_come_from_the_reward_model_and_the_grounding_check(svc):
    """`Learner.rank_captions` through `generation.bestofn.pick_best_caption`: the grounded captions ranked by the
    model, an invented one unranked with its problems; all invented: none shown; a model that fails: the first."""
    from generation.assets import Asset
    from generation.policy import PromptPolicy

    item = svc.catalog.item_info(svc.catalog.dataset.items["item_id"].iloc[0])
    profile = svc.catalog.profile("5")

    def caption(text: str, tag: str) -> Asset:
        return Asset(kind="caption", item_id=item.item_id, user_id="5", generator="sim", fallback=False,
                     prompt="req", negative_prompt="", seed=0, text=text, content_hash=tag * 64)

    short, invented, long = (caption(f"{item.title}.", "a"), caption("Shot in Marrakesh in 1853.", "f"),
                             caption(f"{item.title}: picked for you, and for a long evening.", "b"))
    learner = Learner(svc.catalog, svc.events, PromptPolicy(seed=0), None, n=3)
    learner.reward = _LongestWins()
    ranked = learner.rank_captions(profile, [short, invented, long], item)
    assert [p["best_of_n"]["rank"] for p in ranked] == [1, None, 0]
    assert {p["best_of_n"]["version"] for p in ranked} == {"longest-wins"} and ranked[2]["best_of_n"]["score"] > 0
    assert "grounding" not in ranked[0] and ranked[1]["grounding"]["problems"]
    none = learner.rank_captions(profile, [invented], item)
    assert none == [{"best_of_n": {"n": 1, "rank": None, "score": None, "version": None},
                     "grounding": {"grounded": False, "problems": ranked[1]["grounding"]["problems"]}}]
    learner.reward = _CannotScore()
    fallback = learner.rank_captions(profile, [short, invented, long], item)
    assert [p["best_of_n"]["rank"] for p in fallback] == [0, None, 1]
    assert {p["best_of_n"]["version"] for p in fallback} == {None}


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
    visit = svc.events.visitor("5")
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
        asset = svc.assets.generate_cover(svc.catalog.item_info(item), profile, n=1, seed=90 + i, alpha=arm.alpha)[0]
        asset.params = {**asset.params, **arm.as_params(segment)}
        made.append(asset)
    variants = svc.assets.record(made)
    before = learner.policy.posterior_mean(segment)["style"][a.style.name]
    svc.labeling.record_pick("5", variants, 0)
    assert learner.policy.posterior_mean(segment)["style"][a.style.name] > before


def test_create_picks_feed_the_profile(fresh_svc):
    svc = fresh_svc
    item = svc.ranking.rank("ease", "5", 1)[0][0]
    variants = svc.assets.variants.create(svc.catalog.profile("5"), item, 2, seed=3)
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


def _reward_rows(svc) -> list:
    with svc.events.ReadSession() as s:
        rows = registry.list_versions(s, "reward", "preference")
        for row in rows:
            s.expunge(row)
    return rows


def test_reward_model_trains_from_the_store_into_the_registry_and_best_of_n_uses_it(services_factory):
    # the upkeep thread would serve version 1 on its own within VITRINE_MODEL_POLL_S: here the test serves it
    svc = services_factory(model_poll_s=3600.0)
    _labelled_store(svc)
    encoder = HashingEncoder(32)
    first = train_reward(svc.events.Session, svc.catalog, svc.artifacts, encoder, tolerance=1.0, say=lambda m: None)
    assert first["promoted"] and first["reason"].startswith("first version")
    assert first["version"] == 1 and first["artifact"].startswith("registry/preference/reward/v1-")
    assert 0.0 <= first["metrics"]["heldout_accuracy"] <= 1.0 and first["metrics"]["n_pairs"] >= 10
    assert svc.artifacts.blobs.exists(first["artifact"]) and not (svc.settings.data_dir / "reward").exists()
    # the same labels again: no held-out pair is newer than what version 1 learned from, so it stays served
    second = train_reward(svc.events.Session, svc.catalog, svc.artifacts, encoder, tolerance=1.0, say=lambda m: None)
    assert second["version"] == 2 and not second["promoted"] and "nothing to compare on" in second["reason"]
    rows = _reward_rows(svc)
    assert [(r.version, r.decision, r.promoted) for r in rows] == [(1, "promoted", True), (2, "rejected", False)]
    assert rows[0].metrics["candidate"]["heldout_accuracy"] == first["metrics"]["heldout_accuracy"]
    assert rows[1].metrics["served_version"] == 1 and rows[1].metrics["served"]["n_fresh"] == 0
    assert rows[0].config["trained_until"] == rows[1].config["trained_until"] and rows[0].config["encoder"]
    with svc.events.ReadSession() as s:
        runs = store.eval_runs_frame(s)
        linked = registry.version_evals_frame(s, "reward")
    reward_runs = runs[runs["model"] == "reward"]
    assert len(reward_runs) == 2 and set(reward_runs["split"]) == {"time"}
    assert linked["version"].tolist() == [1, 2] and set(linked["split"]) == {"time"}
    # the app serves the promoted row (the upkeep thread polls; here at once)
    assert svc.assets.learner.reward is None
    assert "reward" in svc.serve_promoted()
    assert svc.assets.learner.reward.version == first["model_version"]
    items = _show_slate(svc, "9", k=2)
    mine = _user_assets(svc, "9")
    covers = mine[(mine["kind"] == "cover") & mine["item_id"].isin(items)]
    for params in covers["params"]:
        assert params["best_of_n"]["version"] == first["model_version"]
        assert isinstance(params["best_of_n"]["score"], float)
    for item in items:  # the shown cover is the one the model scores highest
        candidates = covers[covers["item_id"] == item]
        best = max(candidates.itertuples(), key=lambda r: r.params["best_of_n"]["score"])
        assert svc.assets.known("9", [item])[(item, "cover")]["asset_id"] == int(best.asset_id)
    # a reward model file saved by a former version under <data>/reward is still read until the registry has one
    legacy = svc.settings.data_dir / "reward" / "v3.npz"
    legacy.parent.mkdir()
    legacy.write_bytes(svc.artifacts.file(first["artifact"]).read_bytes())
    notes: list[str] = []
    learner = Learner.start(svc.settings.data_dir, svc.catalog, svc.events, n=2, pairs_max=10, notes=notes)
    assert learner.reward.version == first["model_version"] and any("v3.npz" in note for note in notes)
    assert [n for n, _ in reward_versions(legacy.parent)] == [3]


def test_the_reward_gate():
    ok, reason = reward_gate(0.55, None, 0, None)
    assert ok and "chance" in reason
    ok, reason = reward_gate(0.45, None, 0, None)
    assert not ok and reason.startswith("worse than chance")
    assert reward_gate(0.45, None, 0, None, tolerance=0.1)[0]
    ok, reason = reward_gate(0.7, 0.6, 12, 3)
    assert ok and "0.700 vs 0.600 on the 12 held-out pairs" in reason
    ok, reason = reward_gate(0.6, 0.7, 12, 3)
    assert not ok and reason.startswith("worse than the served version 3")
    assert reward_gate(0.6, 0.7, 12, 3, tolerance=0.1)[0]
    assert not reward_gate(0.9, None, 0, 3)[0]  # nothing newer than the served version's data to compare on
    with pytest.raises(ValueError, match="tolerance"):
        reward_gate(0.6, 0.7, 12, 3, tolerance=-1)


def test_train_cli_reward_gate_list_and_rollback(fresh_svc, monkeypatch, capsys):
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
    assert train.main(["--reward", "--rollback"]) == 2  # nothing served yet
    assert "no served version" in capsys.readouterr().err
    _labelled_store(svc)
    assert train.main(["--reward", "--encoder", "hashing-16", "--json", "--tolerance", "1"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["version"] == 1 and first["promoted"] and svc.artifacts.blobs.exists(first["artifact"])
    _labelled_store(svc, users=("9", "10", "11", "12"))  # newer labels: the gate compares on them
    assert train.main(["--reward", "--encoder", "hashing-16", "--json", "--tolerance", "1"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["version"] == 2 and second["promoted"] and "held-out pairs it never trained on" in second["reason"]
    gate = _reward_rows(svc)[1].metrics
    assert gate["served"]["n_fresh"] > 0
    # both sides of the gate on the same fresh pairs: the candidate's figure is not its whole held-out accuracy
    assert 0 <= gate["candidate_on_fresh"] <= 1 and f"{gate['candidate_on_fresh']:.3f} vs" in second["reason"]
    svc.serve_promoted()
    assert svc.assets.learner.reward.version == second["model_version"]
    assert train.main(["--reward", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "promoted" in listed and len(listed.strip().splitlines()) == 3  # a header and two versions
    assert train.main(["--reward", "--rollback"]) == 0
    assert "reward: version 1 is served again" in capsys.readouterr().out
    assert [(r.version, r.promoted, r.decision) for r in _reward_rows(svc)] == [(1, True, "promoted"),
                                                                               (2, False, "rejected")]
    svc.serve_promoted()  # every replica follows at its next poll
    assert svc.assets.learner.reward.version == first["model_version"]


def test_a_preference_model_trained_on_one_replica_is_served_by_another(services_factory, monkeypatch):
    """Two replicas that share only the database and a remote blob store (memory://): the reward model one of
    them promotes ranks the other's best-of-N candidates within its poll interval."""
    import uuid

    from app.learning import reward

    monkeypatch.setattr(reward, "encoder_for", lambda name, text_model=None: HashingEncoder(16))
    blobs = f"memory://vitrine-reward-{uuid.uuid4().hex[:8]}"
    one = services_factory(blob_url=blobs, model_poll_s=0.2)
    two = services_factory(blob_url=blobs, database_url=one.settings.database_url, model_poll_s=0.2)
    _labelled_store(one)
    result = train_reward(one.events.Session, one.catalog, one.artifacts, HashingEncoder(16), tolerance=1.0,
                          say=lambda m: None)
    assert result["promoted"] and not (two.settings.data_dir / "model-cache").exists()
    deadline = time.monotonic() + 10
    while two.assets.learner.reward is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert two.assets.learner.reward is not None
    assert two.assets.learner.reward.version == result["model_version"]
    assert two.reward_watcher.version == 1


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
    import app.serving.worker as worker_module

    svc = fresh_svc
    sizes: list[int] = []
    real = svc.assets.record
    monkeypatch.setattr(svc.assets, "record", lambda assets: sizes.append(len(assets)) or real(assets))
    items = [i for i, _ in svc.ranking.rank("ease", "5", 10)]
    svc.assets.worker.generate_later("5", items, svc.catalog.profile("5"))
    assert svc.assets.worker.wait_for("5", items, timeout=60)
    per_item = 2 * svc.assets.learner.n
    assert len(sizes) >= 2 and max(sizes) < worker_module.BACKGROUND_BATCH_ASSETS + per_item
    assert set(svc.assets.known("5", items)) == {(i, k) for i in items for k in ("cover", "caption")}


def test_the_admin_action_trains_the_preference_model_and_serves_it(fresh_svc, monkeypatch):
    import gradio as gr

    from app.web import status_tab
    from app.learning import reward

    svc = fresh_svc
    monkeypatch.setattr(reward, "encoder_for", lambda name, text_model=None: HashingEncoder(16))
    with pytest.raises(gr.Error, match="preference model: expected enough labelled pairs"):
        status_tab.retrain(svc, status_tab.PREFERENCE_MODEL)  # an empty store
    _labelled_store(svc)
    msg, status = status_tab.retrain(svc, status_tab.PREFERENCE_MODEL)
    assert "Trained the preference model, version 1" in msg and "held-out pair accuracy" in msg
    (row,) = _reward_rows(svc)
    assert row.decision in ("promoted", "rejected") and ("promoted: it now ranks" in msg) == row.promoted
    assert (svc.assets.learner.reward is not None) == row.promoted


def test_the_preference_model_retrains_on_a_schedule_of_new_labels(services_factory, monkeypatch):
    from app.learning import reward

    monkeypatch.setattr(reward, "encoder_for", lambda name, text_model=None: HashingEncoder(16))
    # the upkeep thread ticks the same schedule every VITRINE_MODEL_POLL_S: here only the test does
    svc = services_factory(reward_every_labels=10, model_poll_s=3600.0)
    svc.tick_reward_schedule()
    assert _reward_rows(svc) == []  # no labels yet: nothing to learn from
    _labelled_store(svc)
    svc.tick_reward_schedule()
    assert len(_reward_rows(svc)) == 1
    svc.tick_reward_schedule()
    assert len(_reward_rows(svc)) == 1  # no new labels since


def test_the_learning_page_lists_preference_versions_with_their_pair_accuracy():
    import pandas as pd

    from app.dashboard import learning_page as dl

    versions = pd.DataFrame({
        "name": ["ease", "reward", "reward"], "kind": ["recommender", "preference", "preference"],
        "version": [1, 1, 2], "created_at": pd.to_datetime(["2026-11-29 10:00", "2026-11-29 11:00", "2026-11-29 12:00"]),
        "decision": ["promoted", "promoted", "rejected"], "promoted": [True, True, False], "watermark": [None] * 3,
        "reason": ["initial", "first version", "worse than the served version 1"],
        "metrics": [{"candidate": {"offline": {"valid": {"ndcg@10": 0.30}}}},
                    {"candidate": {"heldout_accuracy": 0.62}},
                    {"candidate": {"heldout_accuracy": 0.55}, "served": {"heldout_accuracy": 0.6, "n_fresh": 9}}],
    })
    table = dl.versions_table(versions)
    assert table["kind"].tolist() == ["recommender", "preference", "preference"]
    assert table["pair_accuracy"].tolist()[1:] == [0.62, 0.55] and table["served_pair_accuracy"].iloc[2] == 0.6
    assert len(dl.versions_figure(table).data) == 2  # the NDCG figure: ease's offline and holdout lines only


def test_a_promoted_version_whose_artifact_is_gone_leaves_the_served_model_in_place(fresh_svc):
    """E.g. the rows came back from the sink but the local blob store they point into was lost with the disk."""
    svc = fresh_svc
    before = svc.ranking.model("ease")
    gone = "registry/recommender/ease/v1-0000000000000000.tar"
    with svc.events.Session() as s, s.begin():
        row = registry.register(s, "ease", gone)
        registry.decide(s, row.id, "promoted", "initial version")
    assert svc.serve_promoted() == [] and svc.ranking.model("ease") is before
    assert "not loaded" in svc.watchers["ease"].error and gone in svc.watchers["ease"].error
    assert svc.events.visitor("5") is not None and svc.ranking.rank("ease", "5", 3)  # still serving
    # the preference model's gate: a served version that cannot be loaded is compared with chance instead
    _labelled_store(svc)
    with svc.events.Session() as s, s.begin():
        row = registry.register(s, "reward", "registry/preference/reward/v1-0000000000000000.npz", kind="preference",
                                config={"trained_until": 0.0})
        registry.decide(s, row.id, "promoted", "by hand")
    result = train_reward(svc.events.Session, svc.catalog, svc.artifacts, HashingEncoder(16), tolerance=1.0,
                          say=lambda m: None)
    assert result["version"] == 2 and result["promoted"]
    assert result["reason"].startswith("the served version 1 cannot be loaded") and "chance" in result["reason"]


def test_the_reward_model_reads_the_covers_it_learns_from_and_ranks_by_blob_key(fresh_svc, monkeypatch, caplog):
    """Covers are recorded by blob key, not by a file path: training and best-of-N read them through the blob
    store (before, every cover was 'unreadable' and the model scored without image features)."""
    import logging

    from app.learning import reward

    svc = fresh_svc
    monkeypatch.setattr(reward, "encoder_for", lambda name, text_model=None: HashingEncoder(16))
    _labelled_store(svc)
    with caplog.at_level(logging.WARNING):
        first = train_reward(svc.events.Session, svc.catalog, svc.artifacts, HashingEncoder(16), tolerance=1.0,
                             read_bytes=svc.assets.read_cover, say=lambda m: None)
        assert first["promoted"] and "reward" in svc.serve_promoted()
        svc.train_preference()  # the app's own path (the admin action, the schedule): version 2
        _show_slate(svc, "9", k=2)  # best-of-N: the served model scores this slate's candidate covers
    assert len(_reward_rows(svc)) == 2
    unreadable = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert unreadable == []
    assert svc.assets.learner.reward.read_bytes == svc.assets.read_cover
    with pytest.raises(FileNotFoundError, match="covers/00/"):
        svc.assets.read_cover("covers/00/" + "0" * 64 + ".jpg")
