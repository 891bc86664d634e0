"""A small world with a known truth for the reward-model and policy tests: two kinds of users who prefer two
different cover styles, labelled with some noise."""

from __future__ import annotations

import random

from generation.reward import Candidate, PreferencePair, UserFeatures

NEON = ("futuristic neon", "cosmic vistas")
GOLDEN = ("soft golden light", "tender pastel tones")
GRITTY = ("gritty city at night", "hard shadows")
STYLES = {"neon": NEON, "golden": GOLDEN, "gritty": GRITTY}
# which style each kind of user truly prefers, best first
TASTE = {"scifi": ["neon", "gritty", "golden"], "romance": ["golden", "gritty", "neon"]}


def make_users(n_per_kind: int = 12) -> dict[str, UserFeatures]:
    users = {}
    for kind, genres, texts in (
        ("scifi", ("Sci-Fi", "Action"), ("Rebels fight a galactic empire among the stars.",
                                          "A crew in deep space meets a deadly creature.")),
        ("romance", ("Romance", "Drama"), ("A widower finds love on the radio.",
                                            "A matchmaker meddles in love affairs.")),
    ):
        for i in range(n_per_kind):
            uid = f"{kind}-{i}"
            users[uid] = UserFeatures(uid, genres, texts, ("Star Wars (1977)",) if kind == "scifi" else ("Emma (1996)",))
    return users


def truth_rank(user_id: str, style: str) -> int:
    return TASTE[user_id.split("-")[0]].index(style)


def make_world(n_pairs: int = 400, noise: float = 0.1, seed: int = 0, n_per_kind: int = 12
               ) -> tuple[list[PreferencePair], dict[str, UserFeatures], dict[str, Candidate]]:
    rng = random.Random(seed)
    users = make_users(n_per_kind)
    candidates: dict[str, Candidate] = {}
    pairs = []
    titles = ["Alien", "Emma", "Heat", "Fargo", "Babe", "Casino", "Clueless", "Twister"]
    for k in range(n_pairs):
        uid = rng.choice(sorted(users))
        title = rng.choice(titles)
        a_style, b_style = rng.sample(sorted(STYLES), 2)
        ids = []
        for side, style in (("a", a_style), ("b", b_style)):
            alpha = rng.choice((0.3, 0.6, 0.9))
            aid = f"{k}{side}"
            candidates[aid] = Candidate(aid, "cover", f'poster art for the film "{title}", '
                                        f"{', '.join(STYLES[style])}, cinematic composition",
                                        STYLES[style], alpha, rng.choice(("fallback", "tiny-sd")), item_id=title)
            ids.append((aid, style))
        (a, sa), (b, sb) = ids
        better, worse = (a, b) if truth_rank(uid, sa) < truth_rank(uid, sb) else (b, a)
        if rng.random() < noise:
            better, worse = worse, better
        pairs.append(PreferencePair(uid, better, worse, at=1000.0 + k))
    return pairs, users, candidates
