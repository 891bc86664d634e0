"""The generation learning loop, app side: the prompt policy, best-of-N and the self-filling labeling queue.

    learner = Learner.start(data_dir, catalog, events, ...)  # policy from <data>/policy.json
    arms = learner.choose_arms(profile, n)                   # Thompson draws, one per cover candidate
    params = learner.rank_covers(profile, covers)            # best_of_n params per candidate; rank 0 is shown
    learner.queue_pairs(user_id, [(kind, shown_id, other_id, item_id)])  # the labeling queue fills itself
    learner.learn_from_label(...) / learn_from_pick(...) / learn_from_like(...)   # the policy learns
    learner.preferred_prompts(user_id)                       # Create picks -> the user's profile

The reward model that ranks the candidates is trained, gated and versioned in `app.learning.reward`; every
replica swaps `learner.reward` when the registry promotes a new version (`Services.reward_watcher`).

The background worker (`app.serving.assets`) makes `n` cover and caption candidates per slate item and records
them all; the one this learner ranks first for the visitor is the one `Assets.known` returns
(`annotation.reads.shown_assets`: params["best_of_n"]["rank"] == 0). Without a trained reward model the first
candidate is shown. Captions that invent a fact (`generation.grounding`) get rank None and are never shown.
Nothing here runs on the /recommend path except `preferred_prompts`, which reads the store once per user per
process (then it is cached, and a pick made in this process updates it).

The policy state is one JSON file under the data dir, written (atomically) after each update and read at start-up;
each replica keeps its own (a shared policy would live in the store: not built).
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.learning.reward import REWARD_DIR, load_reward, user_features
from app.serving.catalog import Catalog
from app.serving.events import EventLog

if TYPE_CHECKING:  # pragma: no cover - types only
    from generation.policy import Arm, PromptPolicy
    from generation.profile import UserProfile
    from generation.prompts import ItemInfo
    from generation.reward import RewardModel

log = logging.getLogger("vitrine")

POLICY_FILE = "policy.json"  # under the data dir
PICK_PREFIX = "user:"  # the Create-tab picker of user u is the annotator "user:u" (as app.serving.labeling.PICK_PREFIX)
PREFERRED_PROMPTS_MAX = 10  # picked prompts passed to a profile (newest first)
PREFERRED_CACHE = 4096  # users whose picked prompts are kept in memory


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
    def _choose(self, profile: "UserProfile", choose: Callable[[Any, Any], Any]) -> Any:
        """`choose(reward model, the profile's user features)`; `choose(None, None)` (the given order, unscored)
        without a reward model or when it fails to score."""
        model = self.reward
        if model is not None:
            try:
                return choose(model, user_features(self.catalog, profile.user_id, profile))
            except Exception:  # noqa: BLE001 - a candidate the model cannot score must not lose the slate its cover
                log.exception("reward model failed to score candidates of user %s; showing the first",
                              profile.user_id)
        return choose(None, None)

    def rank_covers(self, profile: "UserProfile", covers: Sequence[Any]) -> list[dict[str, Any]]:
        """params["best_of_n"] per cover candidate (`generation.reward.BestOfN.params_for`); rank 0 is shown."""
        from generation.bestofn import pick_best, pick_first

        if not covers:
            return []
        pick = self._choose(profile, lambda model, user: pick_first(covers) if model is None else
                            pick_best(model, user, covers))
        return [pick.params_for(i) for i in range(len(covers))]

    def rank_captions(self, profile: "UserProfile", captions: Sequence[Any], item: "ItemInfo") -> list[dict[str, Any]]:
        """As `rank_covers`, after the grounding check (`generation.bestofn.pick_best_caption`): a caption that names
        a fact absent from the item and the profile gets rank None (never shown) and its problems."""
        from generation.bestofn import pick_best_caption

        pick, dropped = self._choose(profile, lambda model, user: pick_best_caption(model, user, captions, item,
                                                                                     profile))
        if pick is None:  # every caption invents a fact: none is shown, none is scored
            out = [{"best_of_n": {"n": len(captions), "rank": None, "score": None, "version": None}} for _ in captions]
        else:
            out = [pick.params_for(i) for i in range(len(captions))]
        unranked = [params for params in out if params["best_of_n"]["rank"] is None]
        for params, result in zip(unranked, dropped):  # the dropped captions, in their order
            params["grounding"] = {"grounded": False, "problems": list(result.problems)[:5]}
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
