"""Fixtures for generation tests: tiny models built once per session, saved to disk and loaded by path."""

from __future__ import annotations

from pathlib import Path

import pytest

from generation.profile import build_profile
from generation.prompts import ItemInfo


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from generation.testing import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "model")


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from generation.testing import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm") / "model")


@pytest.fixture
def toy_story() -> ItemInfo:
    return ItemInfo(
        "1", "Toy Story", 1995, ["Animation", "Children's", "Comedy"], "Toys come alive when their owner leaves the room."
    )


def _row(item_id: str, title: str, genres: list[str], rating: float | None, ts: int | None, text: str = "") -> dict:
    return {
        "item_id": item_id,
        "title": title,
        "text": text or title,
        "genres": genres,
        "year": 1990,
        "rating": rating,
        "timestamp": ts,
    }


@pytest.fixture
def scifi_history() -> list[dict]:
    return [
        _row("50", "Star Wars", ["Action", "Sci-Fi"], 5.0, 100, "Rebels fight a galactic empire among the stars."),
        _row("82", "Alien", ["Horror", "Sci-Fi"], 4.0, 200, "A crew in deep space meets a deadly creature."),
        _row("181", "Return of the Jedi", ["Action", "Sci-Fi"], 5.0, 300, "Rebels face the galactic empire again."),
        _row("88", "Sleepless in Seattle", ["Comedy", "Romance"], 1.0, 400, "A widower finds love on the radio."),
    ]


@pytest.fixture
def romance_history() -> list[dict]:
    return [
        _row("88", "Sleepless in Seattle", ["Comedy", "Romance"], 5.0, 100, "A widower finds love on the radio."),
        _row("97", "Dances with Wolves", ["Adventure", "Drama", "Western"], 2.0, 150),
        _row("283", "Emma", ["Romance", "Drama"], 4.0, 200, "A matchmaker meddles in love affairs."),
        _row("50", "Star Wars", ["Action", "Sci-Fi"], 1.0, 300),
    ]


@pytest.fixture
def scifi_fan(scifi_history):
    return build_profile("u-scifi", scifi_history)


@pytest.fixture
def romance_fan(romance_history):
    return build_profile("u-romance", romance_history)
