"""Best-of-N covers and captions: make N candidates, keep the one the reward model scores highest for a visitor.

    arms = [policy.choose(segment) for _ in range(4)]                      # or one arm and n seeds
    covers = cover_candidates(cover_generator, item, profile, arms, seed=0) # list[Asset], one per arm
    pick = pick_best(model, user, covers)                                   # BestOfN over the assets
    shown = covers[pick.index]; others stay stored for labeling

    captions = caption_candidates(caption_generator, item, profile, n=4, seed=0)
    pick, dropped = pick_best_caption(model, user, captions, item, profile)  # ungrounded captions never win
    params = [pick.params_for(i) for i in range(len(captions))]            # what to store with each candidate

Without a reward model (`model=None` for captions, `pick_first` for anything) the given order stands: the first
candidate is the pick, nothing is scored. One candidate is never scored: there is nothing to choose.

The generators are duck-typed: anything with `CoverGenerator.generate(item, profile, n, seed, alpha)` or
`CaptionGenerator.generate(item, profile, seed)` works, so the fallback renderers, the tiny test models and
the real ones go through the same code. Nothing here is slow by itself: the cost is the generators'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from generation.errors import invalid
from generation.grounding import GroundingResult, check_caption
from generation.policy import Arm, styled_profile
from generation.profile import UserProfile
from generation.prompts import ItemInfo
from generation.reward import BestOfN, Candidate, RewardModel, UserFeatures, best_of_n

MAX_N = 16


def cover_candidates(generator: Any, item: ItemInfo, profile: UserProfile | None, arms: Sequence[Arm],
                     seed: int = 0) -> list[Any]:
    """One cover per arm (its style first in the profile, its alpha), candidate i with seed `seed + i`.

    Each asset's params get the arm ({"policy": {"style", "alpha", "segment"}}), so a later label on it can
    update the policy. A repeated arm still gives a distinct candidate (another seed).
    """
    arms = list(arms)
    if not 1 <= len(arms) <= MAX_N or not all(isinstance(a, Arm) for a in arms):
        raise invalid("arms", f"1 to {MAX_N} generation.policy.Arm", arms)
    from generation.policy import segment_of

    segment = segment_of(profile)
    out = []
    for i, arm in enumerate(arms):
        user_id = profile.user_id if profile is not None else "anonymous"
        asset = generator.generate(item, styled_profile(profile, arm, user_id), n=1, seed=int(seed) + i,
                                   alpha=arm.alpha)[0]
        asset.params = {**asset.params, **arm.as_params(segment)}
        out.append(asset)
    return out


def caption_candidates(generator: Any, item: ItemInfo, profile: UserProfile | None, n: int, seed: int = 0
                       ) -> list[Any]:
    """`n` captions with seeds `seed` .. `seed + n - 1` (they differ when the generator samples or templates
    vary by seed; identical texts are kept once)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise invalid("n", f"an int between 1 and {MAX_N}", n)
    out, seen = [], set()
    for i in range(n):
        asset = generator.generate(item, profile, seed=int(seed) + i)
        if asset.text not in seen:
            seen.add(asset.text)
            out.append(asset)
    return out


def _candidates(assets: Sequence[Any]) -> list[Candidate]:
    return [Candidate.from_asset(a, asset_id=getattr(a, "content_hash", "") or f"candidate-{i}")
            if not isinstance(a, Candidate) else a for i, a in enumerate(assets)]


def pick_first(assets: Sequence[Any]) -> BestOfN:
    """`assets` (generation Assets or Candidates) in the given order, unscored: the choice without a reward model."""
    if not assets:
        raise invalid("assets", "at least one candidate", assets)
    candidates = _candidates(assets)
    return BestOfN(0, candidates[0], (None,) * len(candidates), tuple(range(len(candidates))), None)


def pick_best(model: RewardModel, user: UserFeatures, assets: Sequence[Any]) -> BestOfN:
    """The best of `assets` (generation Assets or Candidates) for `user` under `model` (one asset: itself,
    unscored)."""
    if not isinstance(model, RewardModel):
        raise invalid("model", "a fitted generation.reward.RewardModel", model)
    if not assets:
        raise invalid("assets", "at least one candidate", assets)
    if len(assets) == 1:
        return pick_first(assets)
    return best_of_n(model, user, _candidates(assets))


def pick_best_caption(model: RewardModel | None, user: UserFeatures | None, assets: Sequence[Any], item: ItemInfo,
                      profile: UserProfile | None) -> tuple[BestOfN | None, list[GroundingResult]]:
    """The best grounded caption (None when every one invents a fact) and the grounding results of the dropped,
    in their order. `model` None: the grounded captions in the given order, unscored.

    `BestOfN` counts every caption given: a dropped one has no rank and no score (`BestOfN.params_for` says so);
    `BestOfN.chosen.asset_id` names the asset.
    """
    checks = [check_caption(asset.text or "", item, profile) for asset in assets]
    grounded = [i for i, result in enumerate(checks) if result.grounded]
    dropped = [result for result in checks if not result.grounded]
    if not grounded:
        return None, dropped
    among = [assets[i] for i in grounded]
    pick = pick_best(model, user, among) if model is not None else pick_first(among)
    scores: list[float | None] = [None] * len(assets)
    for j, i in enumerate(grounded):
        scores[i] = pick.scores[j]
    return BestOfN(grounded[pick.index], pick.chosen, tuple(scores), tuple(grounded[j] for j in pick.order),
                   pick.version), dropped
