"""Loaders: ml-100k from the recbole wheel, bring-your-own folders, and their error cases."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recommenders.__main__ import main as cli
from recommenders.data import clean_title, clean_year, fetch_ml100k, load_dataset
from recommenders.errors import DatasetError


def test_fetch_is_idempotent_and_ml100k_loads_clean(tmp_path: Path) -> None:
    folder = fetch_ml100k(tmp_path)
    stamp = (folder / "ml-100k.inter").stat().st_mtime_ns
    assert fetch_ml100k(tmp_path) == folder
    assert (folder / "ml-100k.inter").stat().st_mtime_ns == stamp
    ds = load_dataset("ml-100k", tmp_path)
    assert (len(ds.items), len(ds.users), len(ds.interactions)) == (1682, 943, 100000)
    assert ds.interactions["user_id"].map(type).eq(str).all()
    assert set(ds.users.columns) >= {"user_id", "age", "gender", "occupation", "zip_code"}
    toy = ds.items.set_index("item_id").loc["1"]
    assert toy["title"] == "Toy Story" and toy["year"] == 1995 and "Animation" in toy["genres"]
    assert "Toy Story" in toy["text"] and "Comedy" in toy["text"]
    # the raw file has "unkonwn" and "V" in its year column: never a bogus year
    years = ds.items["year"].dropna()
    assert years.between(1900, 2000).all()
    assert ds.items.set_index("item_id").loc["1412", "year"] == 1995  # year recovered from the title
    assert pd.isna(ds.items.set_index("item_id").loc["267", "year"])
    assert ds.items.set_index("item_id").loc["12", "title"] == "The Usual Suspects"


def test_cli_fetch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["fetch", "--dataset", "ml-100k", "--data-dir", str(tmp_path)]) == 0
    assert '"interactions": 100000' in capsys.readouterr().out


def test_fetch_without_any_source_says_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import recommenders.data as data

    monkeypatch.setattr(data, "_recbole_example_dir", lambda: None)
    with pytest.raises(DatasetError, match="recbole==1.2.1.*allow network"):
        fetch_ml100k(tmp_path)
    assert not (tmp_path / "ml-100k").exists()


def test_clean_helpers() -> None:
    assert clean_year("unkonwn", "Foo (1971)") == 1971
    assert clean_year("V", "") is None
    assert clean_year("1995") == 1995
    assert clean_title("Birdcage, The (1996)") == "The Birdcage"


def _write(folder: Path, items: str, inter: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "items.csv").write_text(items)
    (folder / "interactions.csv").write_text(inter)
    return folder


ITEMS = "item_id,title,genres,year\na,Alpha,Drama|War,1999\nb,Beta,,\nc,Gamma (2001),Comedy,\n"
INTER = "user_id,item_id,rating,timestamp\nu1,a,5,10\nu1,b,3,11\nu2,c,4,12\n"


def test_bring_your_own_folder(tmp_path: Path) -> None:
    folder = _write(tmp_path / "shop", ITEMS, INTER)
    (folder / "images").mkdir()
    (folder / "images" / "b.png").write_bytes(b"\x89PNG")
    ds = load_dataset(folder, tmp_path)
    assert ds.name == "shop" and ds.item_ids == ["a", "b", "c"]
    assert ds.items["genres"].tolist() == [["Drama", "War"], [], ["Comedy"]]
    assert ds.items["year"].tolist()[0] == 1999 and ds.items["year"].tolist()[2] == 2001
    assert ds.items["image"].tolist()[0] is None and ds.items["image"].tolist()[1].endswith("b.png")
    assert ds.has_images
    assert ds.users["user_id"].tolist() == ["u1", "u2"]
    assert ds.interactions["rating"].tolist() == [5.0, 3.0, 4.0]


def test_bring_your_own_parquet_defaults(tmp_path: Path) -> None:
    folder = tmp_path / "pq"
    folder.mkdir()
    pd.DataFrame({"item_id": [1, 2], "title": ["x", "y"]}).to_parquet(folder / "items.parquet")
    pd.DataFrame({"user_id": [7, 7], "item_id": [1, 2]}).to_parquet(folder / "interactions.parquet")
    ds = load_dataset(folder, tmp_path)
    assert ds.item_ids == ["1", "2"]
    assert ds.interactions["rating"].tolist() == [1.0, 1.0]
    assert not ds.has_images


@pytest.mark.parametrize(
    ("items", "inter", "pattern"),
    [
        ("item_id,name\na,x\n", INTER, r"items.csv: missing column\(s\) \['title'\]"),
        ("item_id,title\na,x\nb,y\na,z\n", INTER, r"items.csv: row 3, column 'item_id': duplicate id 'a'"),
        (ITEMS, "user_id,item_id\nu1,a\nu1,zz\n", r"interactions.csv: row 2, column 'item_id': unknown item 'zz'"),
        (ITEMS, "", r"interactions.csv: the file is empty"),
        (ITEMS, "user_id,item_id\n", r"interactions.csv: has a header but no rows"),
        (ITEMS, "user_id,item_id,rating\nu1,a,good\n", r"interactions.csv: row 1, column 'rating': expected a number"),
        ("item_id,title,year\na,x,soon\n", INTER, r"items.csv: row 1, column 'year'"),
        ("item_id,title,image\na,x,nope.jpg\n", "user_id,item_id\nu,a\n", r"items.csv: row 1, column 'image'"),
    ],
)
def test_malformed_folder_is_rejected(tmp_path: Path, items: str, inter: str, pattern: str) -> None:
    folder = _write(tmp_path / "bad", items, inter)
    with pytest.raises(DatasetError, match=pattern):
        load_dataset(folder, tmp_path)


def test_unknown_dataset_name(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="expected 'ml-100k' or a folder"):
        load_dataset(tmp_path / "nope", tmp_path)


def test_grouplens_raw_files_load(tmp_path: Path) -> None:
    """The layout of GroupLens' ml-100k.zip (what a download with network allowed unpacks)."""
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("1\t10\t4\t881250949\n2\t20\t5\t881250950\n")
    flags_drama = "|".join("1" if g == "Drama" else "0" for g in (
        "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
        "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"))
    flags_none = "|".join(["1"] + ["0"] * 18)
    (folder / "u.item").write_bytes(
        f"10|Birdcage, The (1996)|08-Mar-1996||http://x|{flags_drama}\n"
        f"20|Caf\xe9 (1990)|||http://y|{flags_none}\n".encode("latin-1"))
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    ds = load_dataset("ml-100k", tmp_path)
    items = ds.items.set_index("item_id")
    assert items.loc["10", "title"] == "The Birdcage" and items.loc["10", "year"] == 1996
    assert items.loc["10", "genres"] == ["Drama"] and items.loc["20", "genres"] == []
    assert items.loc["20", "title"] == "Café" and items.loc["20", "year"] == 1990  # year from the title
    assert ds.interactions["timestamp"].tolist() == [881250949, 881250950]
    assert ds.users["occupation"].tolist() == ["technician", "other"]
