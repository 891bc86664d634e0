"""The generation learning loop, app side: the prompt policy, the reward model, best-of-N and the self-filling queue.

    learner = Learner.start(data_dir, catalog, events, ...)  # policy from <data>/policy.json
    arms = learner.choose_arms(profile, n)                   # Thompson draws, one per cover candidate
    params = learner.rank_covers(profile, covers)            # best_of_n params per candidate; rank 0 is shown
    learner.queue_pairs(user_id, [(kind, shown_id, other_id, item_id)])  # the labeling queue fills itself
    learner.learn_from_label(...) / learn_from_pick(...) / learn_from_like(...)   # the policy learns
    learner.preferred_prompts(user_id)                       # Create picks -> the user's profile
    python -m app.train --reward                             # `train_reward`: labels + picks -> gate -> registry
    python -m app.train --reward --rollback                  # serve the previous promoted reward model again

The reward model is versioned like the recommenders: each `train_reward` registers a row (name "reward", kind
"preference") in the model registry with its metrics and the gate's decision, its `.npz` saved in the blob store
(`app.learning.artifacts`); every replica serves the promoted row (`Services.reward_watcher`, polled every
VITRINE_MODEL_POLL_S) and swaps `learner.reward` without a restart.

The background worker (`app.serving.assets`) makes `n` cover and caption candidates per slate item and records them all;
the one this learner ranks first for the visitor is the one `Assets.known` returns (`annotation.reads.shown_assets`:
params["best_of_n"]["rank"] == 0). Without a trained reward model the first candidate is shown. Captions that
invent a fact (`generation.grounding`) get rank None and are never shown. Nothing here runs on the /recommend
path except `preferred_prompts`, which reads the store once per user per process (then it is cached, and a pick
made in this process updates it).

The policy state is one JSON file under the data dir, written (atomically) after each update and read at start-up;
each replica keeps its own (a shared policy would live in the store: not built).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.serving.catalog import Catalog
from app.serving.events import EventLog

if TYPE_CHECKING:  # pragma: no cover - types only
    from app.learning.artifacts import ModelArtifacts
    from generation.policy import Arm, PromptPolicy
    from generation.profile import UserProfile
    from generation.prompts import ItemInfo
    from generation.reward import RewardModel, UserFeatures

log = logging.getLogger("vitrine")

__all__ = ["Learner", "best_of_n_for", "train_reward", "reward_gate", "reward_versions", "load_reward",
           "load_reward_file", "load_reward_artifact", "encoder_for", "user_features", "POLICY_FILE", "REWARD_DIR",
           "REWARD_NAME", "REWARD_KIND", "CHANCE"]

POLICY_FILE = "policy.json"  # under the data dir
REWARD_DIR = "reward"  # under the data dir: v1.npz, ... as saved before the registry held reward models (read only)
REWARD_NAME = "reward"  # its name in the model registry (and in eval_runs)
REWARD_KIND = "preference"  # its kind in the model registry
CHANCE = 0.5  # held-out pair accuracy of showing the first candidate (what is served without a reward model)
PICK_PREFIX = "user:"  # the Create-tab picker of user u is the annotator "user:u" (as app.serving.labeling.PICK_PREFIX)
PREFERRED_PROMPTS_MAX = 10  # picked prompts passed to a profile (newest first)
PREFERRED_CACHE = 4096  # users whose picked prompts are kept in memory
LIKED_TEXTS_MAX = 20  # liked item texts in a user's reward features
_VERSION_FILE = re.compile(r"^v(\d+)\.npz$")


def best_of_n_for(setting: int, device: str) -> int:
    """N of best-of-N: the setting when > 0, else 4 on CUDA and 2 on CPU ("auto" asks torch)."""
    if setting > 0:
        return int(setting)
    if device == "auto":
        try:
            import torch

            return 4 if torch.cuda.is_available() else 2
        except ImportError:  # pragma: no cover - torch is a pinned requirement
            return 2
    return 4 if str(device).startswith("cuda") else 2


def encoder_for(name: str, text_model: str | None = None) -> Callable[[list[str]], Any]:
    """The text encoder a reward model was fitted with, by its name: "hashing-<dim>" (tests, cheap) or MiniLM."""
    from generation.reward import HashingEncoder, MiniLMEncoder

    found = re.fullmatch(r"hashing-(\d+)", name or "")
    if found:
        return HashingEncoder(int(found.group(1)))
    return MiniLMEncoder(text_model)


def reward_versions(reward_dir: Path) -> list[tuple[int, Path]]:
    """The reward models saved in `reward_dir` before the registry held them, (version number, path), oldest first."""
    if not reward_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in reward_dir.iterdir() if (m := _VERSION_FILE.match(p.name))]
    return sorted(found)


def load_reward_file(path: Path, text_model: str | None = None) -> "RewardModel":
    """The reward model saved at `path`, with the encoder it was fitted with (named in its header)."""
    import numpy as np

    from generation.reward import RewardModel

    with np.load(path, allow_pickle=False) as data:
        encoder_name = json.loads(str(data["header"]))["encoder"]
    return RewardModel.load(path, encoder=encoder_for(encoder_name, text_model))


def load_reward_artifact(artifacts: "ModelArtifacts | Path | str", artifact: str,
                         text_model: str | None = None) -> "RewardModel":
    """The reward model of a registry row (`artifact`: its blob key), fetched into the local cache on a miss."""
    from app.learning.artifacts import ModelArtifacts

    return load_reward_file(ModelArtifacts.at(artifacts).file(artifact), text_model)


def load_reward(reward_dir: Path, text_model: str | None = None) -> "tuple[RewardModel, Path] | None":
    """The newest reward model saved as a file in `reward_dir` (before the registry held them), or None."""
    versions = reward_versions(reward_dir)
    if not versions:
        return None
    path = versions[-1][1]
    return load_reward_file(path, text_model), path


def user_features(catalog: Catalog, user_id: str, profile: "UserProfile | None" = None) -> "UserFeatures":
    """What the reward model knows of a user: their profile's genres and liked titles, and liked item texts.
    Training (`train_reward`) and best-of-N build them the same way."""
    from generation.reward import UserFeatures

    profile = profile if profile is not None else catalog.profile(user_id)
    texts = [str(catalog.item(i).get("text") or catalog.item(i)["title"])
             for i in catalog.liked_ids(user_id)[:LIKED_TEXTS_MAX]]
    return UserFeatures.from_profile(profile, texts)


def _atomic_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class Learner:
    """The policy, the reward model and the queue rules of one app process; see the module docstring.

    n: candidates per slate item (1 = no choice). pairs_max: the most untouched asset pairs the queue may hold
    before no more are added (0: the queue is never filled automatically).
    """

    def __init__(self, catalog: Catalog, events: EventLog, policy: "PromptPolicy", policy_path: Path | None, *,
                 n: int = 2, pairs_max: int = 200, reward: "RewardModel | None" = None) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 16:
            raise ValueError(f"n must be an int between 1 and 16, got {n!r}")
        if isinstance(pairs_max, bool) or not isinstance(pairs_max, int) or pairs_max < 0:
            raise ValueError(f"pairs_max must be an int >= 0, got {pairs_max!r}")
        self.catalog = catalog
        self.events = events
        self.policy = policy
        self.policy_path = policy_path
        self.n = n
        self.pairs_max = pairs_max
        self.read_bytes: Callable[[str], bytes] | None = None  # how a reward model reads a cover (`use_store`)
        self.reward = reward
        self._lock = threading.Lock()  # the policy (its counts and its random state)
        self._prompts: OrderedDict[str, list[str]] = OrderedDict()  # user -> picked prompts
        self._prompts_lock = threading.Lock()
        self.updates = 0  # policy updates since start
        self._dirty = False  # learned since the last save

    @property
    def reward(self) -> "RewardModel | None":
        """The reward model ranking best-of-N candidates (None: the first candidate is shown)."""
        return self._reward

    @reward.setter
    def reward(self, model: "RewardModel | None") -> None:
        if model is not None and self.read_bytes is not None:
            model.read_bytes = self.read_bytes  # recorded covers are blob keys, not file paths
        self._reward = model

    def use_store(self, read_bytes: Callable[[str], bytes]) -> None:
        """Read cover images through `read_bytes` (blob key -> bytes) when a reward model scores them."""
        self.read_bytes = read_bytes
        self.reward = self._reward

    @classmethod
    def start(cls, data_dir: Path, catalog: Catalog, events: EventLog, *, n: int, pairs_max: int,
              text_model: str | None = None, notes: list[str] | None = None) -> "Learner":
        """The policy saved under `data_dir` (a new one when none is, or it is unreadable). The reward model is the
        registry's promoted one, set by the app (`Services.reward_watcher`); until then the newest file a former
        version left under `data_dir/reward`, else None (best-of-N shows the first candidate)."""
        from generation.policy import PromptPolicy

        notes = notes if notes is not None else []
        path = data_dir / POLICY_FILE
        policy = PromptPolicy(seed=0)
        if path.is_file():
            try:
                policy = PromptPolicy.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                notes.append(f"prompt policy: {path} unreadable ({exc}); starting a new one")
        reward = None
        try:
            loaded = load_reward(data_dir / REWARD_DIR, text_model)
            if loaded is not None:
                reward, where = loaded
                notes.append(f"reward model {where.name} ({reward.version}) ranks best-of-{n} candidates")
        except Exception as exc:  # noqa: BLE001 - the app works without a reward model: say why it is not used
            notes.append(f"reward model not loaded ({type(exc).__name__}: {exc}); best-of-N shows the first")
        return cls(catalog, events, policy, path, n=n, pairs_max=pairs_max, reward=reward)

    # -- the policy ------------------------------------------------------------------------------------------
    def choose_arms(self, profile: "UserProfile", n: int | None = None) -> "list[Arm]":
        """`n` (default `self.n`) Thompson draws for the profile's segment, one per cover candidate."""
        from generation.policy import segment_of

        segment = segment_of(profile)
        with self._lock:
            return [self.policy.choose(segment) for _ in range(n or self.n)]

    def flush(self) -> bool:
        """Save the policy when it learned something since the last save (the app's upkeep thread calls this
        every VITRINE_MODEL_POLL_S, and `close` once more); True when it wrote."""
        if not self._dirty:
            return False
        self._dirty = False
        self._save()
        return True

    def _save(self) -> None:
        if self.policy_path is None:
            return
        with self._lock:
            state = self.policy.to_dict()
        try:
            _atomic_json(self.policy_path, state)
        except OSError as exc:  # the in-memory policy still learns; the next update tries again
            log.warning("prompt policy not saved to %s: %s", self.policy_path, exc)

    def _segment(self, user_id: str | None, *params: Mapping[str, Any] | None) -> str:
        from generation.policy import segment_of

        for p in params:
            chosen = (p or {}).get("policy") if isinstance(p, Mapping) else None
            if isinstance(chosen, Mapping) and isinstance(chosen.get("segment"), str) and chosen["segment"]:
                return chosen["segment"]
        return segment_of(self.catalog.profile(user_id)) if user_id else segment_of(None)

    def learn_from_label(self, user_id: str | None, params_a: Mapping[str, Any] | None,
                         params_b: Mapping[str, Any] | None, choice: str) -> bool:
        """An A/B label on two covers: updates the policy when both name arms (`PromptPolicy.update_from_label`)."""
        segment = self._segment(user_id, params_a, params_b)
        with self._lock:
            done = self.policy.update_from_label(segment, params_a, params_b, choice)
            self.updates += done
        if done:
            self._dirty = True  # saved by `flush` (the upkeep thread), never in the request that taught it
        return done

    def learn_from_pick(self, user_id: str, picked: Mapping[str, Any] | None,
                        others: Sequence[Mapping[str, Any] | None]) -> int:
        """A Create-tab pick: the picked cover beat each other one; returns the policy updates made."""
        segment = self._segment(user_id, picked)
        done = 0
        with self._lock:
            for other in others:
                done += self.policy.update_from_label(segment, picked, other, "A")
            self.updates += done
        if done:
            self._dirty = True  # saved by `flush` (the upkeep thread), never in the request that taught it
        return done

    def learn_from_like(self, user_id: str, params: Mapping[str, Any] | None, liked: bool) -> bool:
        """A like (or dislike) on a card whose cover had `params`: weak evidence for its arm."""
        arm = self.policy.arm_from_params(params)
        if arm is None:
            return False
        segment = self._segment(user_id, params)
        with self._lock:
            self.policy.update_like(segment, arm, liked=liked)
            self.updates += 1
        self._dirty = True  # saved by `flush` (the upkeep thread), never in the request that taught it
        return True

    # -- best-of-N -------------------------------------------------------------------------------------------
    def _order(self, profile: "UserProfile", assets: Sequence[Any]) -> tuple[list[int], list[float | None], str | None]:
        """(indices best first, scores, reward version) of the candidates for the profile's user; without a
        reward model (or when scoring fails) the given order, no scores."""
        from generation.bestofn import pick_best

        model = self.reward
        if model is None or len(assets) < 2:
            return list(range(len(assets))), [None] * len(assets), None
        try:
            pick = pick_best(model, user_features(self.catalog, profile.user_id, profile), assets)
        except Exception:  # noqa: BLE001 - a candidate the model cannot score must not lose the slate its cover
            log.exception("reward model failed to score candidates of user %s; showing the first", profile.user_id)
            return list(range(len(assets))), [None] * len(assets), None
        return list(pick.order), list(pick.scores), pick.version

    def rank_covers(self, profile: "UserProfile", covers: Sequence[Any]) -> list[dict[str, Any]]:
        """params["best_of_n"] per cover candidate: {"n", "rank", "score", "version"}; rank 0 is shown."""
        order, scores, version = self._order(profile, covers)
        return [{"best_of_n": {"n": len(covers), "rank": order.index(i), "score": scores[i], "version": version}}
                for i in range(len(covers))]

    def rank_captions(self, profile: "UserProfile", captions: Sequence[Any], item: "ItemInfo") -> list[dict[str, Any]]:
        """As `rank_covers`, after the grounding check: a caption that names a fact absent from the item and the
        profile gets rank None (never shown) and its problems; the others are ranked among themselves."""
        from generation.grounding import check_caption

        checks = [check_caption(c.text or "", item, profile) for c in captions]
        grounded = [i for i, r in enumerate(checks) if r.grounded]
        order, scores, version = self._order(profile, [captions[i] for i in grounded])
        out = []
        for i, result in enumerate(checks):
            if i in grounded:
                j = grounded.index(i)
                out.append({"best_of_n": {"n": len(captions), "rank": order.index(j), "score": scores[j],
                                          "version": version}})
            else:
                out.append({"best_of_n": {"n": len(captions), "rank": None, "score": None, "version": version},
                            "grounding": {"grounded": False, "problems": list(result.problems)[:5]}})
        return out

    # -- the labeling queue ----------------------------------------------------------------------------------
    def _room(self, user_id: str, item_ids: Sequence[str]) -> tuple[int, set[tuple[str, str]]]:
        """(pairs the queue may still take, the (item_id, kind) already paired for `user_id` among `item_ids`)."""
        from annotation import reads

        with self.events.ReadSession() as s:
            room = self.pairs_max - reads.untouched_pairs(s)
            return room, (reads.paired_items(s, user_id, list(item_ids)) if room > 0 else set())

    def takes_pair(self, user_id: str, item_id: str, kind: str = "cover") -> bool:
        """Whether `queue_pairs` would take a `kind` pair of (user, item) now (read only): the queue has room and
        holds none for that item and user yet."""
        if self.pairs_max == 0:
            return False
        room, have = self._room(user_id, [item_id])
        return room > 0 and (item_id, kind) not in have

    def queue_pairs(self, user_id: str, pairs: Sequence[tuple[str, int, int, str]]) -> int:
        """Add label pairs (kind, shown asset id, other asset id, item id) made for `user_id`, sides in a random
        order seeded by (user, item, kind). At most one pair per (user, item, kind), and none once `pairs_max`
        untouched pairs wait. Returns how many were created."""
        from annotation import queue

        if not pairs or self.pairs_max == 0:
            return 0
        room, have = self._room(user_id, [p[3] for p in pairs])  # read first: a full queue costs no write
        todo = [p for p in pairs if (p[3], p[0]) not in have and p[1] != p[2]]
        if room <= 0 or not todo:
            return 0
        created = 0
        with self.events.Session() as s, s.begin():
            for kind, shown, other, item_id in todo:
                if room <= 0:
                    break
                if (item_id, kind) in have or shown == other:
                    continue
                rng = random.Random(f"{user_id}:{item_id}:{kind}")
                a, b = (shown, other) if rng.random() < 0.5 else (other, shown)
                queue.create_pair(s, a, b, target_user_id=user_id, kind=kind)
                have.add((item_id, kind))
                room -= 1
                created += 1
        return created

    # -- Create picks -> the profile -------------------------------------------------------------------------
    def preferred_prompts(self, user_id: str) -> tuple[str, ...]:
        """The prompts of the user's Create-tab picks, newest first (read once per user, then cached)."""
        from annotation import reads

        with self._prompts_lock:
            cached = self._prompts.get(user_id)
            if cached is not None:
                self._prompts.move_to_end(user_id)
                return tuple(cached)
        with self.events.ReadSession() as s:
            prompts = reads.picked_prompts(s, f"{PICK_PREFIX}{user_id}", PREFERRED_PROMPTS_MAX)
        self._remember_prompts(user_id, prompts)
        return tuple(prompts)

    def _remember_prompts(self, user_id: str, prompts: list[str]) -> None:
        with self._prompts_lock:
            self._prompts[user_id] = prompts
            self._prompts.move_to_end(user_id)
            while len(self._prompts) > PREFERRED_CACHE:
                self._prompts.popitem(last=False)

    def picked(self, user_id: str, prompt: str) -> None:
        """A pick made in this process: its prompt leads the user's preferred prompts from now on."""
        current = list(self.preferred_prompts(user_id))
        self._remember_prompts(user_id, list(dict.fromkeys([prompt, *current]))[:PREFERRED_PROMPTS_MAX])


# ------------------------------------------------------------------------------------------------------------
# training


def reward_gate(candidate: float, served: float | None, n_fresh: int, served_version: int | None,
                tolerance: float = 0.0) -> tuple[bool, str]:
    """(promote?, reason) for a candidate reward model with held-out pair accuracy `candidate`.

    Nothing served yet: promoted when not worse than chance (showing the first candidate) by more than
    `tolerance`. Else compared with the served version's accuracy (`served`) on the `n_fresh` held-out pairs
    newer than the data it was trained on (it never saw them); with none, there is nothing to compare on and
    the served version stays."""
    if not tolerance >= 0:
        raise ValueError(f"tolerance: expected a number >= 0, got {tolerance!r}")
    if served_version is None:
        if candidate >= CHANCE - tolerance:
            return True, (f"held-out pair accuracy {candidate:.3f} is not worse than chance "
                          f"({CHANCE}: showing the first candidate, what is served without a reward model)")
        return False, f"worse than chance: held-out pair accuracy {candidate:.3f} < {CHANCE} - {tolerance}"
    if n_fresh == 0 or served is None:
        return False, (f"no held-out pair is newer than the data version {served_version} was trained on: nothing "
                       "to compare on, the served version stays")
    if candidate >= served - tolerance:
        return True, (f"not worse than the served version {served_version}: held-out pair accuracy {candidate:.3f} vs "
                      f"{served:.3f} on the {n_fresh} held-out pairs it never trained on (tolerance {tolerance})")
    return False, (f"worse than the served version {served_version}: held-out pair accuracy {candidate:.3f} vs "
                   f"{served:.3f} on the {n_fresh} held-out pairs it never trained on (tolerance {tolerance})")


def train_reward(Session: Any, catalog: Catalog, artifacts: "ModelArtifacts | Path | str",
                 encoder: Callable[[list[str]], Any], *, tolerance: float = 0.0, text_model: str | None = None,
                 read_bytes: Callable[[str], bytes] | None = None,
                 say: Callable[[str], Any] = log.info) -> dict[str, Any]:
    """Fit a reward model on every A/B label and Create pick in the store, gate it, and register it.

    1. Pairs from the store; the model is fitted with its time split (the latest pairs held out:
       `metrics["heldout_accuracy"]`), then refitted on all of them (`generation.reward.RewardModel.fit`).
    2. The gate (`reward_gate`): next to the served version (the registry's promoted "reward", loaded with
       `text_model` for its encoder) on the held-out pairs newer than its `config["trained_until"]`, which
       neither it nor the candidate's split model (`RewardModel.heldout_accuracy`) was fitted on.
    3. The registry: the `.npz` saved in the blob store (`artifacts`), a row (name "reward", kind
       "preference") with the metrics (the candidate's, the served version's), the time of the newest pair trained
       on, and the decision with its reason; a promoted version is served by every replica at its next poll.
       An eval run ("reward", split "time") is recorded for the version.

    Returns {"version", "version_id", "model_version", "artifact", "promoted", "reason", "metrics", "seconds"}.
    Raises ValueError (from `RewardModel.fit`) when the store has too few usable pairs."""
    from annotation import registry, store
    from app.learning.artifacts import ModelArtifacts
    from app.learning.retrain import _json_safe
    from generation.reward import RewardModel, read_file_bytes, records_from_frames

    start = time.perf_counter()
    artifacts = ModelArtifacts.at(artifacts)
    with Session() as s:
        preferences, assets = store.preferences_frame(s), store.assets_frame(s)
    pairs, candidates = records_from_frames(preferences, assets)
    say(f"reward: {len(pairs)} pairs from {len(preferences)} labels over {len(candidates)} assets")
    users = {u: user_features(catalog, u) for u in dict.fromkeys(p.user_id for p in pairs)}
    # covers are recorded by blob key: `read_bytes` (the app's `Assets.read_cover`) reads them; a file path else
    model = RewardModel(encoder, read_bytes=read_bytes or read_file_bytes).fit(pairs, users, candidates)
    metrics = {k: float(v) for k, v in model.metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
    held_out = [p for p in pairs if p.at >= model.metrics["split_at"]]  # the time split never cuts an instant
    trained_until = max(p.at for p in pairs)
    # 2. the gate, next to the served version on the held-out pairs it never saw
    with Session() as s:
        served = registry.promoted_version(s, REWARD_NAME, REWARD_KIND)
        if served is not None:
            s.expunge(served)
    served_accuracy, candidate_accuracy, n_fresh, missing = None, metrics["heldout_accuracy"], 0, None
    if served is not None:
        until = (served.config or {}).get("trained_until")
        fresh = [p for p in held_out if until is None or p.at > until]
        n_fresh = len(fresh)
        if fresh:
            try:
                served_model = load_reward_artifact(artifacts, served.artifact, text_model)
            except LookupError as exc:  # its artifact is gone (e.g. a lost local blob store): nothing serves it
                missing = f"the served version {served.version} cannot be loaded ({exc}); compared with chance: "
            else:
                if read_bytes is not None:
                    served_model.read_bytes = read_bytes
                served_accuracy = served_model.pair_accuracy(fresh, users, candidates)
                # both on the same pairs: the candidate's split model never saw them either
                candidate_accuracy = model.heldout_accuracy(fresh)
    promote, reason = reward_gate(candidate_accuracy, served_accuracy, n_fresh,
                                  None if served is None or missing else served.version, tolerance)
    reason = (missing or ("first version: " if served is None else "")) + reason
    # 3. the registry
    encoder_name = getattr(encoder, "name", type(encoder).__name__)
    gate_metrics = {"candidate": metrics, "served": {"heldout_accuracy": served_accuracy, "n_fresh": n_fresh},
                    "candidate_on_fresh": None if served_accuracy is None else candidate_accuracy,
                    "served_version": None if served is None else served.version, "tolerance": tolerance,
                    "chance": CHANCE}
    with Session() as s, s.begin():
        row = registry.register(s, REWARD_NAME, "pending", kind=REWARD_KIND, metrics=_json_safe(gate_metrics),
                                config={"model_version": model.version, "encoder": encoder_name,
                                        "trained_until": trained_until, "n_pairs": len(pairs)})
        row.artifact = artifacts.save_file(REWARD_KIND, REWARD_NAME, row.version, ".npz", model.save)
        registry.record_version_eval(s, row.id, catalog.name, "time", metrics,
                                     config={"version": model.version, "artifact": row.artifact,
                                             "encoder": encoder_name})
        registry.decide(s, row.id, "promoted" if promote else "rejected", reason)
        version, version_id, artifact = row.version, row.id, row.artifact
    seconds = time.perf_counter() - start
    say(f"reward v{version} ({model.version}) {'PROMOTED' if promote else 'REJECTED'}: held-out pair accuracy "
        f"{metrics.get('heldout_accuracy', float('nan')):.3f} on {metrics.get('n_test', 0):.0f} pairs, "
        f"{seconds:.1f} s, saved as {artifact}: {reason}")
    return {"version": version, "version_id": version_id, "model_version": model.version, "artifact": artifact,
            "promoted": promote, "reason": reason, "metrics": metrics, "seconds": round(seconds, 2)}
