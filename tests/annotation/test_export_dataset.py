"""Training-ready exports: cover pairs in Pick-a-Pic's layout with picture bytes, caption pairs, a dataset card.

The database is filled by the generation loop's simulator (`app.simulate.reward`, cheap hashing encoder), so the
covers are real JPEG files referenced by the store, as in the app.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from annotation.__main__ import main
from annotation.db import make_engine, make_session_factory, upgrade
from annotation.errors import InvalidInputError
from annotation.export import CAPTION_COLUMNS, COVER_COLUMNS, export_dataset

NOW = dt.datetime(2026, 11, 20, 12, 0)


@pytest.fixture(scope="module")
def sim_db(tmp_path_factory):
    from app.simulate.reward import RewardSimConfig, simulate_reward
    from recommenders.data import load_dataset

    root = tmp_path_factory.mktemp("sim-reward")
    url = f"sqlite:///{root / 'vitrine.db'}"
    upgrade(url)
    dataset = load_dataset("ml-100k", root / "data")
    config = RewardSimConfig(labels=40, checkpoints=(40,), holdout=10, users=8, trials=5, eval_pairs=10,
                             encoder="hashing", seed=3, now=NOW)
    engine = make_engine(url)
    report = simulate_reward(make_session_factory(engine), dataset, root / "assets", config, log=lambda m: None)
    engine.dispose()
    return url, report


def _session(url):
    return make_session_factory(make_engine(url), read_only=True)()


def test_export_loads_with_datasets_and_decodes_pictures(sim_db, tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    from PIL import Image as PILImage

    url, report = sim_db
    with _session(url) as s:
        result = export_dataset(s, tmp_path / "export")
    assert result["covers"] + result["captions"] == report.labels == 50
    assert result["covers"] > 5 and result["captions"] > 2 and result["skipped_covers"] == 0
    covers = datasets.load_dataset("parquet", data_files=str(tmp_path / "export" / "covers" / "*.parquet"),
                                   cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert covers.column_names == COVER_COLUMNS and len(covers) == result["covers"]
    covers = covers.cast_column("jpg_0", datasets.Image()).cast_column("jpg_1", datasets.Image())
    row = covers[0]
    assert isinstance(row["jpg_0"], PILImage.Image) and row["jpg_0"].size == (48, 72)
    assert row["jpg_0"].tobytes() != row["jpg_1"].tobytes()
    for row in covers.select_columns(["label_0", "label_1", "best_image_uid", "image_0_uid", "image_1_uid",
                                      "caption", "prompt_0", "user_id", "user_top_genres", "style_0", "alpha_0"]):
        assert {row["label_0"], row["label_1"]} == {0.0, 1.0}
        assert row["best_image_uid"] == (row["image_0_uid"] if row["label_0"] == 1.0 else row["image_1_uid"])
        assert row["caption"] == row["prompt_0"] and row["caption"].startswith("poster art")
        assert row["user_id"] and row["style_0"] and 0 < row["alpha_0"] <= 1
    # profile columns: the target users' likes in the store (the simulator stores the likes on cards)
    assert any(covers["user_top_genres"]) and any(covers["user_liked_item_ids"])
    captions = datasets.load_dataset("parquet", data_files=str(tmp_path / "export" / "captions" / "*.parquet"),
                                     cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert captions.column_names == CAPTION_COLUMNS and len(captions) == result["captions"]
    assert all(isinstance(t, str) and t for t in captions["text_0"])
    card = (tmp_path / "export" / "README.md").read_text()
    assert card.startswith("---\n") and "config_name: covers" in card and "config_name: captions" in card
    assert f"{result['covers']} cover pairs" in card and "| jpg_0, jpg_1 | binary |" in card


def test_pictures_are_read_through_the_given_reader_and_unreadable_ones_are_counted(sim_db, tmp_path) -> None:
    url, _ = sim_db
    reads: list[str] = []
    with _session(url) as s:
        full = export_dataset(s, tmp_path / "a")
        first = None

        def reader(ref: str) -> bytes:
            nonlocal first
            reads.append(ref)
            first = first or ref
            if ref == first:
                raise FileNotFoundError(ref)  # one picture lost: every pair showing it is left out
            return Path(ref).read_bytes()

        partial = export_dataset(s, tmp_path / "b", read_bytes=reader)
    assert reads and partial["skipped_covers"] >= 1
    assert partial["covers"] + partial["skipped_covers"] == full["covers"]
    assert "could not be read" in (tmp_path / "b" / "README.md").read_text()
    with _session(url) as s, pytest.raises(InvalidInputError, match="read_bytes"):
        export_dataset(s, tmp_path / "c", read_bytes="not callable")


def test_profiles_given_by_the_caller_replace_the_stores(sim_db, tmp_path) -> None:
    import pyarrow.parquet as pq

    url, _ = sim_db
    with _session(url) as s:
        export_dataset(s, tmp_path / "a")
        users = set(pq.read_table(tmp_path / "a" / "covers" / "train-00000-of-00001.parquet")["user_id"].to_pylist())
        user = sorted(users)[0]
        export_dataset(s, tmp_path / "b", profiles={user: (["Film-Noir", "Western"], ["7", "8"])})
    table = pq.read_table(tmp_path / "b" / "covers" / "train-00000-of-00001.parquet").to_pylist()
    mine = [r for r in table if r["user_id"] == user]
    assert mine and all(r["user_top_genres"] == ["Film-Noir", "Western"] and r["user_liked_item_ids"] == ["7", "8"]
                        for r in mine)


def test_cli_export_to_a_folder_and_to_the_hub_without_a_token(sim_db, tmp_path, capsys, monkeypatch) -> None:
    url, _ = sim_db
    assert main(["--url", url, "export", "--to", str(tmp_path / "out")]) == 0
    assert "cover pairs" in capsys.readouterr().out
    assert (tmp_path / "out" / "covers" / "train-00000-of-00001.parquet").is_file()
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))  # no saved token either
    assert main(["--url", url, "export", "--to", "hf://datasets/org/prefs"]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
    assert main(["--url", url, "export", "--to", "hf://models/org/x"]) == 2
    assert main(["--url", url, "export", "--what", "feedback"]) == 2
    assert "--format" in capsys.readouterr().err


def test_cli_pushes_through_huggingface_hub_when_a_token_is_present(sim_db, capsys, monkeypatch) -> None:
    """The push runs through huggingface_hub's own client, against a local stand-in of the Hub's HTTP API (the
    Hub is unreachable here): a private dataset repo with the card and both splits, in one commit."""
    import pyarrow.parquet as pq

    from hub_stand_in import HubStandIn

    url, _ = sim_db
    with HubStandIn() as hub:
        hub.use(monkeypatch)
        assert main(["--url", url, "export", "--to", "hf://datasets/org/prefs"]) == 0
        assert f"{hub.endpoint}/datasets/org/prefs" in capsys.readouterr().out
        files = hub.repos["org/prefs"]
        assert sorted(files) == ["README.md", "captions/train-00000-of-00001.parquet",
                                 "covers/train-00000-of-00001.parquet"]
        assert len(hub.commits["org/prefs"]) == 1 and hub.visibility["org/prefs"] == "private"
        covers = pq.read_table(io.BytesIO(files["covers/train-00000-of-00001.parquet"]))
        assert covers.num_rows > 0 and set(COVER_COLUMNS) <= set(covers.column_names)
        assert files["README.md"].startswith(b"---")
