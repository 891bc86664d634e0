"""Helpers of the app tests (imported by conftest.py and test modules): a tiny synthetic catalog, fast models (ease, pop), fallback generators, SQLite.

No ml-100k, no MiniLM: `tiny_dataset` has 24 items in four genres and 16 users who each like one genre, and
the "text" features are one-hot genre vectors plus a little seeded noise, so the content "why" is predictable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from app.settings import Settings
from serve_helpers import free_port  # noqa: F401 - re-exported for the app tests

GENRES = ["Comedy", "Drama", "Horror", "Sci-Fi"]
N_ITEMS = 24
N_USERS = 16


def make_tiny_dataset():
    from recommenders.data import Dataset

    items = pd.DataFrame(
        {
            "item_id": [str(i) for i in range(1, N_ITEMS + 1)],
            "title": [f"{GENRES[i % 4]} Film {i}" for i in range(1, N_ITEMS + 1)],
            "text": [f"A {GENRES[i % 4].lower()} story number {i}." for i in range(1, N_ITEMS + 1)],
            "genres": [[GENRES[i % 4]] for i in range(1, N_ITEMS + 1)],
            "year": pd.array([1990 + i for i in range(1, N_ITEMS + 1)], dtype="Int64"),
            "image": [None] * N_ITEMS,
        }
    )
    users = pd.DataFrame(
        {
            "user_id": [str(u) for u in range(1, N_USERS + 1)],
            "age": [20 + u for u in range(1, N_USERS + 1)],
            "gender": ["F" if u % 2 else "M" for u in range(1, N_USERS + 1)],
            "occupation": ["writer"] * N_USERS,
        }
    )
    rows = []
    rng = np.random.default_rng(0)
    for u in range(1, N_USERS + 1):
        genre = u % 4
        mine = [i for i in range(1, N_ITEMS + 1) if i % 4 == genre]
        # each user rated all but two of "their" genre's items highly, plus one other item lowly
        liked = [i for i in mine if (i + u) % 6 not in (0, 1)]
        for t, i in enumerate(liked):
            rows.append((str(u), str(i), 5.0, 1_000_000 + 100 * u + t))
        other = int(rng.integers(1, N_ITEMS + 1))
        if other not in mine:
            rows.append((str(u), str(other), 2.0, 1_000_000 + 100 * u + 50))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Dataset("tiny", items, users, interactions)


def write_tiny_folder(folder: Path) -> Path:
    """The tiny catalog as a bring-your-own folder (items.csv, interactions.csv), for a real `python -m app`
    (VITRINE_DATASET=folder) started as a process."""
    ds = make_tiny_dataset()
    folder.mkdir(parents=True)
    ds.items.assign(genres=ds.items["genres"].map("|".join))[["item_id", "title", "genres", "year"]].to_csv(
        folder / "items.csv", index=False)
    ds.interactions.to_csv(folder / "interactions.csv", index=False)
    return folder


def make_tiny_features(dataset) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    onehot = np.array([[1.0 if g in genres else 0.0 for g in GENRES] for genres in dataset.items["genres"]])
    text = np.hstack([onehot, 0.05 * rng.standard_normal((len(onehot), 12))]).astype(np.float32)
    return {"text": text / np.linalg.norm(text, axis=1, keepdims=True)}


def make_settings(data_dir: Path, **overrides) -> Settings:
    values = dict(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'vitrine.db'}",
        dataset="tiny",
        model="ease",
        cover_model=None,
        caption_model=None,
        image_model=None,
        extra_models=("pop",),
        label_overlap=2,
        admin_open=True,  # as `make demo` sets it; the fail-closed tests turn it off
        rate_slate="100000/minute",  # the rate tests set their own limits
        rate_generate="100000/minute",
        rate_join="100000/minute",
        rate_feedback="100000/minute",
        rate_onboard="100000/minute",
        rate_password_client="100000/minute",
        rate_password_target="100000/minute",
    )
    values.update(overrides)
    return Settings(**values)


def make_services(data_dir: Path, **overrides):
    from app.serving.services import build_services

    dataset = make_tiny_dataset()
    return build_services(make_settings(data_dir, **overrides), dataset=dataset, features=make_tiny_features(dataset),
                          say=lambda msg: None)
