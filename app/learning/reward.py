"""The preference (reward) model, app side: training from the store, the gate, versions in the registry, loading.

    python -m app.train --reward               # `train_reward`: labels + Create picks -> gate -> registry
    python -m app.train --reward --rollback    # serve the previous promoted reward model again
    model = load_reward_artifact(artifacts, row.artifact, text_model)   # a registry row's model, as replicas load it

The reward model is versioned like the recommenders: each `train_reward` registers a row (name "reward", kind
"preference") in the model registry with its metrics and the gate's decision (`reward_gate`), its `.npz` saved in
the blob store (`app.learning.artifacts`); every replica serves the promoted row (`Services.reward_watcher`,
polled every VITRINE_MODEL_POLL_S) and swaps `Learner.reward` (`app.learning.learner`) without a restart.
Training and best-of-N describe a user the same way (`user_features`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.serving.catalog import Catalog

if TYPE_CHECKING:  # pragma: no cover - types only
    from app.learning.artifacts import ModelArtifacts
    from generation.profile import UserProfile
    from generation.reward import RewardModel, UserFeatures

log = logging.getLogger("vitrine")

REWARD_DIR = "reward"  # under the data dir: v1.npz, ... as saved before the registry held reward models (read only)
REWARD_NAME = "reward"  # its name in the model registry (and in eval_runs)
REWARD_KIND = "preference"  # its kind in the model registry
CHANCE = 0.5  # held-out pair accuracy of showing the first candidate (what is served without a reward model)
LIKED_TEXTS_MAX = 20  # liked item texts in a user's reward features
_VERSION_FILE = re.compile(r"^v(\d+)\.npz$")


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
                 say: Callable[[str], Any] = log.info,
                 annotator_weights: "Mapping[str, float] | None" = None) -> dict[str, Any]:
    """Fit a reward model on every A/B label and Create pick in the store, gate it, and register it.

    1. Pairs from the store, each label weighted by its annotator's reliability when `annotator_weights` is given
       (`app.learning.quality.weights_for`; a label of weight 0 is left out); the model is fitted with its time split (the latest pairs held out:
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
    from app.learning.retrain import json_safe
    from generation.reward import RewardModel, read_file_bytes, records_from_frames

    start = time.perf_counter()
    artifacts = ModelArtifacts.at(artifacts)
    with Session() as s:
        preferences, assets = store.preferences_frame(s), store.assets_frame(s)
    pairs, candidates = records_from_frames(preferences, assets, annotator_weights=annotator_weights)
    say(f"reward: {len(pairs)} pairs from {len(preferences)} labels over {len(candidates)} assets"
        + ("" if annotator_weights is None else ", weighted by each annotator's reliability"))
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
        row = registry.register(s, REWARD_NAME, "pending", kind=REWARD_KIND, metrics=json_safe(gate_metrics),
                                config={"model_version": model.version, "encoder": encoder_name,
                                        "trained_until": trained_until, "n_pairs": len(pairs),
                                        "weighted": annotator_weights is not None})
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
