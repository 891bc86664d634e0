"""A prompt policy that learns: Thompson sampling over style keyword sets and alpha, per user segment.

    policy = PromptPolicy(seed=0)
    arm = policy.choose(segment_of(profile))                 # Arm(style=Style("scifi", (...)), alpha=0.6)
    prompt = build_prompt(item, styled_profile(profile, arm), alpha=arm.alpha)
    policy.update_pair(segment, winner=arm_a, loser=arm_b)   # an A/B label, or one pair of a Create pick
    policy.update_pick(segment, picked=arm_c, shown=[arm_a, arm_b, arm_c])
    policy.update_like(segment, arm)                         # a like on a card: weak evidence for its cover
    policy.update_from_label(segment, asset_a.params, asset_b.params, "A")  # a stored label, arms from params
    state = policy.to_dict(); PromptPolicy.from_dict(state)  # JSON-able, the random state included

It replaces the fixed genre -> style table (`generation.profile.GENRE_STYLES`) as the source of a prompt's
style: the table only supplies the candidate styles. Two independent Beta-Bernoulli bandits per segment, one
over styles and one over alphas (factorised, so evidence about a style is not split over every alpha):
each arm's Beta posterior is the chance that it wins a comparison. A label or a pick is a comparison: when
the two styles differ the winner's style gets a success and the loser's a failure; when they share a style
and differ in alpha, the alphas do (crediting an alpha in a comparison that two styles decided would reward
whichever alpha happened to ride with the better style; `partner` proposes comparisons that teach both).
A like on a card counts
`like_weight` of a success for the shown cover's arm, a dislike as much of a failure. To choose, one draw
from every posterior, and the highest draw wins: arms that look good are shown more, uncertain ones still
get tried. Segments are a user's strongest genre (`segment_of`), "cold" for a user without one.
Everything random goes through one seeded numpy Generator, whose state is part of `to_dict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from numbers import Real
from typing import Any

import numpy as np

from generation.errors import invalid
from generation.profile import GENRE_STYLES, UserProfile, genre_key

DEFAULT_ALPHAS = (0.3, 0.6, 0.9)  # alpha 0 is the generic prompt (no style): not an arm
LIKE_WEIGHT = 0.25  # a like on a card says less than a head-to-head choice: the cover was one reason of many
COLD = "cold"


@dataclass(frozen=True)
class Style:
    """A named set of style keywords a prompt can carry (e.g. the scifi set: futuristic neon, cosmic vistas)."""

    name: str
    keywords: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise invalid("Style.name", "a non-empty string", self.name)
        if isinstance(self.keywords, str) or not self.keywords or not all(isinstance(k, str) and k
                                                                          for k in self.keywords):
            raise invalid("Style.keywords", "a non-empty sequence of non-empty strings", self.keywords)
        object.__setattr__(self, "keywords", tuple(self.keywords))


DEFAULT_STYLES: tuple[Style, ...] = tuple(Style(name, words) for name, words in GENRE_STYLES.items())


@dataclass(frozen=True)
class Arm:
    """What the policy chooses: a style and an alpha."""

    style: Style
    alpha: float

    @property
    def key(self) -> str:
        return f"{self.style.name}@{self.alpha:g}"

    def as_params(self, segment: str) -> dict[str, Any]:
        """What to store in the asset's params so the label on it can update the policy later."""
        return {"policy": {"style": self.style.name, "keywords": list(self.style.keywords), "alpha": self.alpha,
                           "segment": segment}}


def segment_of(profile: UserProfile | Sequence[str] | None) -> str:
    """A user's segment: the key of their strongest genre ('scifi', 'drama', ...), or "cold" without any."""
    genres = profile.top_genres if isinstance(profile, UserProfile) else list(profile or [])
    for genre in genres:
        key = genre_key(genre)
        if key and key != "unknown":
            return key
    return COLD


def styled_profile(profile: UserProfile | None, arm: Arm, user_id: str = "anonymous",
                   styles: Sequence[Style] = DEFAULT_STYLES) -> UserProfile:
    """`profile` with the arm's style keywords first, so `build_prompt` puts them in.

    The style words the fixed genre table gave the profile (any keyword of `styles` and of the arm's own
    style) are replaced by the arm's; the user's content words and preferred-prompt phrases stay after them.
    A cold user (None) gets a profile of the style's keywords only.
    """
    if not isinstance(arm, Arm):
        raise invalid("arm", "a generation.policy.Arm", arm)
    if profile is None:
        return UserProfile(user_id=user_id, keywords=list(arm.style.keywords))
    if not isinstance(profile, UserProfile):
        raise invalid("profile", "a generation.profile.UserProfile or None", profile)
    table = {k for s in styles for k in s.keywords} | set(arm.style.keywords)
    own = [k for k in profile.keywords if k not in table]
    return replace(profile, keywords=[*arm.style.keywords, *own])


class PromptPolicy:
    """Thompson sampling over (style, alpha) per segment; see the module docstring."""

    def __init__(self, styles: Sequence[Style] = DEFAULT_STYLES, alphas: Sequence[float] = DEFAULT_ALPHAS,
                 seed: int = 0, prior: tuple[float, float] = (1.0, 1.0), like_weight: float = LIKE_WEIGHT) -> None:
        styles = list(styles)
        if not styles or not all(isinstance(s, Style) for s in styles):
            raise invalid("styles", "a non-empty sequence of Style", styles)
        if len({s.name for s in styles}) != len(styles):
            raise invalid("styles", "styles with distinct names", [s.name for s in styles])
        alphas = [float(a) for a in alphas] if not isinstance(alphas, (str, bytes)) else []
        if not alphas or not all(0.0 < a <= 1.0 for a in alphas) or len(set(alphas)) != len(alphas):
            raise invalid("alphas", "distinct numbers in (0, 1]", alphas)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise invalid("seed", "an int >= 0", seed)
        if len(prior) != 2 or not all(isinstance(p, Real) and p > 0 for p in prior):
            raise invalid("prior", "two numbers > 0 (Beta a, b)", prior)
        if isinstance(like_weight, bool) or not isinstance(like_weight, Real) or not 0 <= like_weight <= 1:
            raise invalid("like_weight", "a number in [0, 1]", like_weight)
        self.styles = styles
        self.alphas = alphas
        self.seed = seed
        self.prior = (float(prior[0]), float(prior[1]))
        self.like_weight = float(like_weight)
        self.rng = np.random.default_rng(seed)
        # segment -> {"style": (n_styles, 2) [successes, failures], "alpha": (n_alphas, 2)}
        self.counts: dict[str, dict[str, np.ndarray]] = {}
        self.n_updates = 0

    # -- arms -------------------------------------------------------------------------------------------------
    @property
    def arms(self) -> list[Arm]:
        return [Arm(s, a) for s in self.styles for a in self.alphas]

    def _style_index(self, name: str) -> int:
        for i, s in enumerate(self.styles):
            if s.name == name:
                return i
        raise invalid("style", f"one of the policy's styles {[s.name for s in self.styles]}", name)

    def _alpha_index(self, alpha: float) -> int:
        return int(np.argmin([abs(a - float(alpha)) for a in self.alphas]))

    def arm(self, style: str, alpha: float) -> Arm:
        """The policy's arm for a style name and the grid alpha nearest `alpha`."""
        return Arm(self.styles[self._style_index(style)], self.alphas[self._alpha_index(alpha)])

    def arm_of(self, keywords: Iterable[str], alpha: float) -> Arm | None:
        """The arm an asset was made with, from its prompt keywords and alpha (asset params): the style sharing
        most keywords with it (None when it shares none, e.g. a generic prompt)."""
        words = set(keywords)
        overlap = [len(words & set(s.keywords)) for s in self.styles]
        best = int(np.argmax(overlap)) if overlap else 0
        if not overlap or overlap[best] == 0 or float(alpha) <= 0:
            return None
        return Arm(self.styles[best], self.alphas[self._alpha_index(alpha)])

    def arm_from_params(self, params: Mapping[str, Any] | None) -> Arm | None:
        """The arm a stored asset was made with, from its params: params["policy"] (`Arm.as_params`) when the
        policy chose it, else `arm_of(params["keywords"], params["alpha"])`; None when neither names one of the
        policy's arms (a caption, a generic cover, a style this policy does not have)."""
        params = params if isinstance(params, Mapping) else {}
        chosen = params.get("policy")
        if isinstance(chosen, Mapping) and chosen.get("style") in {s.name for s in self.styles}:
            alpha = chosen.get("alpha")
            if isinstance(alpha, Real) and not isinstance(alpha, bool) and alpha > 0:
                return self.arm(str(chosen["style"]), float(alpha))
        keywords, alpha = params.get("keywords") or [], params.get("alpha") or 0.0
        if isinstance(keywords, (list, tuple)) and isinstance(alpha, Real) and not isinstance(alpha, bool):
            return self.arm_of([str(k) for k in keywords], float(alpha))
        return None

    def update_from_label(self, segment: str, params_a: Mapping[str, Any] | None, params_b: Mapping[str, Any] | None,
                          choice: str) -> bool:
        """An A/B label on two stored covers (their params): updates the policy when both sides map to arms and
        the choice is "A" or "B". Returns whether it did."""
        if choice not in ("A", "B"):
            return False
        arm_a, arm_b = self.arm_from_params(params_a), self.arm_from_params(params_b)
        if arm_a is None or arm_b is None or arm_a == arm_b:
            return False
        winner, loser = (arm_a, arm_b) if choice == "A" else (arm_b, arm_a)
        self.update_pair(segment, winner, loser)
        return True

    def _segment(self, segment: str) -> dict[str, np.ndarray]:
        if not isinstance(segment, str) or not segment:
            raise invalid("segment", "a non-empty string (segment_of(profile))", segment)
        if segment not in self.counts:
            self.counts[segment] = {"style": np.zeros((len(self.styles), 2)), "alpha": np.zeros((len(self.alphas), 2))}
        return self.counts[segment]

    def _check_arm(self, arm: Any, name: str) -> Arm:
        if not isinstance(arm, Arm):
            raise invalid(name, "a generation.policy.Arm", arm)
        return self.arm(arm.style.name, arm.alpha)

    # -- choosing ---------------------------------------------------------------------------------------------
    def choose(self, segment: str) -> Arm:
        """One Thompson draw: sample every style's and every alpha's Beta posterior, take the highest of each."""
        counts = self._segment(segment)
        a0, b0 = self.prior
        style = self.rng.beta(a0 + counts["style"][:, 0], b0 + counts["style"][:, 1])
        alpha = self.rng.beta(a0 + counts["alpha"][:, 0], b0 + counts["alpha"][:, 1])
        return Arm(self.styles[int(np.argmax(style))], self.alphas[int(np.argmax(alpha))])

    def posterior_mean(self, segment: str) -> dict[str, dict[str, float]]:
        """{"style": {name: mean}, "alpha": {alpha: mean}}: each arm's posterior chance of winning a comparison."""
        counts = self._segment(segment)
        a0, b0 = self.prior

        def mean(c: np.ndarray) -> np.ndarray:
            return (a0 + c[:, 0]) / (a0 + b0 + c.sum(axis=1))

        return {"style": dict(zip((s.name for s in self.styles), mean(counts["style"]).tolist())),
                "alpha": dict(zip((f"{a:g}" for a in self.alphas), mean(counts["alpha"]).tolist()))}

    def best(self, segment: str) -> Arm:
        """The arm with the highest posterior means (no exploration), e.g. for reporting."""
        means = self.posterior_mean(segment)
        style = max(means["style"], key=lambda k: (means["style"][k], -self._style_index(k)))
        alpha = max(self.alphas, key=lambda a: means["alpha"][f"{a:g}"])
        return self.arm(style, alpha)

    def partner(self, arm: Arm, same_style_share: float = 0.5) -> Arm:
        """An arm to compare `arm` with in a label pair: with probability `same_style_share` the same style at
        another alpha (so the alphas learn), otherwise another style at the same alpha."""
        arm = self._check_arm(arm, "arm")
        others_alpha = [a for a in self.alphas if a != arm.alpha]
        others_style = [s for s in self.styles if s != arm.style]
        if others_alpha and (not others_style or self.rng.random() < same_style_share):
            return Arm(arm.style, others_alpha[int(self.rng.integers(len(others_alpha)))])
        if not others_style:
            raise invalid("policy", "two or more styles or alphas to compare", arm)
        return Arm(others_style[int(self.rng.integers(len(others_style)))], arm.alpha)

    # -- learning ---------------------------------------------------------------------------------------------
    def update_pair(self, segment: str, winner: Arm, loser: Arm, weight: float = 1.0) -> None:
        """A comparison (an A/B label, or one pair of a pick): `winner` beat `loser` for a user of `segment`."""
        winner, loser = self._check_arm(winner, "winner"), self._check_arm(loser, "loser")
        if isinstance(weight, bool) or not isinstance(weight, Real) or not weight > 0:
            raise invalid("weight", "a number > 0", weight)
        counts = self._segment(segment)
        ws, ls = self._style_index(winner.style.name), self._style_index(loser.style.name)
        wa, la = self._alpha_index(winner.alpha), self._alpha_index(loser.alpha)
        if ws != ls:  # the styles differ: credit the style (a different alpha too would confound the alphas)
            counts["style"][ws, 0] += weight
            counts["style"][ls, 1] += weight
        elif wa != la:  # one style, two alphas: a clean comparison of the alphas
            counts["alpha"][wa, 0] += weight
            counts["alpha"][la, 1] += weight
        self.n_updates += 1

    def update_pick(self, segment: str, picked: Arm, shown: Sequence[Arm], weight: float = 1.0) -> None:
        """A pick among the `shown` arms (Create tab): the pick beat each other one."""
        for other in shown:
            if other != picked:
                self.update_pair(segment, picked, other, weight)

    def update_like(self, segment: str, arm: Arm, liked: bool = True) -> None:
        """A like (or, liked=False, a dislike) on a card whose cover was made with `arm`: weak evidence."""
        arm = self._check_arm(arm, "arm")
        if self.like_weight == 0:
            return
        counts = self._segment(segment)
        column = 0 if liked else 1
        counts["style"][self._style_index(arm.style.name), column] += self.like_weight
        counts["alpha"][self._alpha_index(arm.alpha), column] += self.like_weight
        self.n_updates += 1

    # -- persistence ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-able: styles, alphas, prior, counts and the random generator's state."""
        return {
            "styles": [{"name": s.name, "keywords": list(s.keywords)} for s in self.styles],
            "alphas": list(self.alphas), "seed": self.seed, "prior": list(self.prior),
            "like_weight": self.like_weight, "n_updates": self.n_updates,
            "counts": {seg: {k: v.tolist() for k, v in c.items()} for seg, c in self.counts.items()},
            "rng": self.rng.bit_generator.state,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> "PromptPolicy":
        """A policy restored from `to_dict`: it continues exactly where the saved one would have."""
        if not isinstance(state, Mapping) or "styles" not in state or "counts" not in state:
            raise invalid("state", "a dict from PromptPolicy.to_dict()", state)
        policy = cls([Style(s["name"], tuple(s["keywords"])) for s in state["styles"]], state["alphas"],
                     int(state["seed"]), tuple(state["prior"]), float(state["like_weight"]))
        for seg, c in state["counts"].items():
            style, alpha = np.asarray(c["style"], dtype=float), np.asarray(c["alpha"], dtype=float)
            if style.shape != (len(policy.styles), 2) or alpha.shape != (len(policy.alphas), 2):
                raise invalid(f"state['counts'][{seg!r}]", "counts matching the styles and alphas", c)
            policy.counts[seg] = {"style": style, "alpha": alpha}
        policy.n_updates = int(state.get("n_updates", 0))
        policy.rng.bit_generator.state = state["rng"]
        return policy

