"""Best-of-N covers and captions: make N candidates, keep the one the reward model scores highest for a visitor.

    arms = [policy.choose(segment) for _ in range(4)]                      # or one arm and n seeds
    covers = cover_candidates(cover_generator, item, profile, arms, seed=0) # list[Asset], one per arm
    pick = pick_best(model, user, covers)                                   # BestOfN over the assets
    shown = covers[pick.index]; others stay stored for labeling

    captions = caption_candidates(caption_generator, item, profile, n=4, seed=0)
    pick, dropped = pick_best_caption(model, user, captions, item, profile)  # ungrounded captions never win

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


def pick_best(model: RewardModel, user: UserFeatures, assets: Sequence[Any]) -> BestOfN:
    """The best of `assets` (generation Assets or Candidates) for `user` under `model`."""
    if not isinstance(model, RewardModel):
        raise invalid("model", "a fitted generation.reward.RewardModel", model)
    if not assets:
        raise invalid("assets", "at least one candidate", assets)
    return best_of_n(model, user, _candidates(assets))


def pick_best_caption(model: RewardModel, user: UserFeatures, assets: Sequence[Any], item: ItemInfo,
                      profile: UserProfile | None) -> tuple[BestOfN | None, list[GroundingResult]]:
    """The best grounded caption (None when every one invents a fact) and the grounding results of the dropped.

    `BestOfN.index` counts among the grounded captions; `BestOfN.chosen.asset_id` names the asset.
    """
    grounded, dropped = [], []
    for asset in assets:
        result = check_caption(asset.text or "", item, profile)
        if result.grounded:
            grounded.append(asset)
        else:
            dropped.append(result)
    if not grounded:
        return None, dropped
    return pick_best(model, user, grounded), dropped
