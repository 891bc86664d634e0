"""A dataset written as a bring-your-own folder, for the tests that load one the way a user's folder is loaded
(a module of its own in tests/, on sys.path for every test folder)."""

from __future__ import annotations

from pathlib import Path


def write_folder(dataset, folder: Path) -> Path:
    """`folder` with `dataset`'s items (ids and titles only) and interactions as CSV; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    dataset.items[["item_id", "title"]].to_csv(folder / "items.csv", index=False)
    dataset.interactions.to_csv(folder / "interactions.csv", index=False)
    return folder
