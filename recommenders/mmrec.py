"""MMRec's dataset folder as a source (https://github.com/enoche/MMRec, `data/` and `preprocessing/`).

    NAME.inter          tab-separated, header `userID itemID rating timestamp x_label` (rating, timestamp
                        optional); 0-based integer ids; x_label 0 train, 1 valid, 2 test
    text_feat.npy       optional, (n_items, d) float32 (float64 accepted), row = itemID: used as given
    image_feat.npy      optional, likewise (MMRec's are 4096-d CNN features)
    i_id_mapping.csv    optional, tab-separated `asin itemID` (preprocessing/0rating2inter.ipynb): the original
                        item id of each itemID; then item ids are those, and the catalogue has len(mapping) items
    u_id_mapping.csv    optional, tab-separated `user_id userID`, likewise for users
    items.csv           optional, item_id,title[,text][,image][,genres]: cards. item_id is the dataset's item id (the
                        mapping's original id when i_id_mapping.csv exists, else the itemID). Items without a row
                        or a title get a generic label ("Product 17", the domain's noun)
    dataset.yaml        optional: `domain: product` and which encoder made each feature file
                        (`features: {text: all-MiniLM-L6-v2}`; MMRec's own text features are that model's)

Without i_id_mapping.csv the catalogue is itemIDs 0..max (over NAME.inter and items.csv); a feature file must
have exactly one row per item. Every malformed input raises `DatasetError` naming the file, row and column.

Loading is vectorised (pyarrow's CSV reader, int32 codes, no per-row Python loop on the good path). With a
`cache_dir`, the parsed and validated dataset is kept as Arrow IPC files (read back memory-mapped: no parse, no
copy) under a key made of the folder's path and each
source file's name, size and modification time: a restart on unchanged files reads the cache instead of
parsing and validating again. Size and mtime, not a content hash: hashing the feature files (3.5 GB at a
million items) would cost more than the parse it saves, and any rewrite of a file changes its mtime.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from recommenders.data import (
    DATASET_SPEC, FEATURE_MODALITIES, Dataset, _images, item_label, read_domain, read_feature_models,
)
from recommenders.errors import DatasetError

INTER_COLUMNS = ("userID", "itemID", "rating", "timestamp", "x_label")
REQUIRED = ("userID", "itemID")
ITEM_MAP, USER_MAP, ITEMS_TABLE = "i_id_mapping.csv", "u_id_mapping.csv", "items.csv"
CACHE_FORMAT = 1
MMREC_TEXT_MODEL = "all-MiniLM-L6-v2"  # what MMRec's preprocessing/3feat-encoder.ipynb encodes text with


def _quiet(message: str) -> None:
    return None


def inter_file(folder: Path) -> Path:
    found = sorted(Path(folder).glob("*.inter"))
    if len(found) != 1:
        raise DatasetError(f"{folder}: expected exactly one NAME.inter file, found "
                           f"{[p.name for p in found] or 'none'}")
    return found[0]


def feature_paths(folder: Path) -> dict[str, Path]:
    """{modality: path} of the precomputed feature files present ({modality}_feat.npy)."""
    return {m: Path(folder) / f"{m}_feat.npy" for m in FEATURE_MODALITIES if (Path(folder) / f"{m}_feat.npy").is_file()}


def signature(folder: Path) -> str:
    """The cache key of a folder: its resolved path and each source file's name, size and mtime (ns)."""
    folder = Path(folder)
    h = hashlib.sha256(f"mmrec-cache-v{CACHE_FORMAT}\x1f{folder.resolve()}".encode())
    names = [inter_file(folder).name, ITEM_MAP, USER_MAP, ITEMS_TABLE, DATASET_SPEC,
             *(f"{m}_feat.npy" for m in FEATURE_MODALITIES)]
    for name in names:
        path = folder / name
        stat = path.stat() if path.is_file() else None
        h.update(f"{name}\x1f{stat.st_size if stat else '-'}\x1f{stat.st_mtime_ns if stat else '-'}\x1e".encode())
    return h.hexdigest()[:20]


# ---------------------------------------------------------------------------------------------------------
# reading the tables
# ---------------------------------------------------------------------------------------------------------
def _read_tsv(path: Path, int_columns: tuple[str, ...], float_columns: tuple[str, ...] = (),
              delimiter: str = "\t"):
    """A pyarrow table; on any parse/convert failure, a DatasetError naming the first bad row and column."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {c: pa.int64() for c in int_columns} | {c: pa.float64() for c in float_columns}
    try:
        return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                              convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        _raise_row_error(path, delimiter, int_columns, float_columns, exc)
        raise  # pragma: no cover - _raise_row_error always raises


def _raise_row_error(path: Path, delimiter: str, int_columns, float_columns, exc: Exception) -> None:
    """Find the first malformed row by reading the file line by line (the error path only)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().rstrip("\r\n").split(delimiter)
        if not header or header == [""]:
            raise DatasetError(f"{path}: the file is empty; expected a header line") from None
        for row, line in enumerate(fh, start=1):
            fields = line.rstrip("\r\n").split(delimiter)
            if fields == [""]:
                continue
            if len(fields) != len(header):
                raise DatasetError(f"{path}: row {row}: expected {len(header)} columns ({', '.join(header)}), "
                                   f"got {len(fields)}: {line.strip()[:80]!r}") from None
            for name, value in zip(header, fields):
                if name in int_columns:
                    try:
                        int(value)
                    except ValueError:
                        raise DatasetError(f"{path}: row {row}, column {name!r}: expected an integer, got "
                                           f"{value!r}") from None
                elif name in float_columns:
                    try:
                        float(value)
                    except ValueError:
                        raise DatasetError(f"{path}: row {row}, column {name!r}: expected a number, got "
                                           f"{value!r}") from None
    raise DatasetError(f"{path}: cannot be read as tab-separated values: {exc}") from exc


def _column(table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def _first_bad(path: Path, name: str, bad: np.ndarray, values: np.ndarray, expected: str) -> None:
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = values[row].item() if isinstance(values[row], np.generic) else values[row]
        raise DatasetError(f"{path}: row {row + 1}, column {name!r}: expected {expected}, got {value!r} "
                           f"({int(bad.sum())} such rows)")


def read_inter(path: Path) -> dict[str, np.ndarray]:
    """NAME.inter as arrays: user, item (int32), rating (float32), timestamp (int64), x_label (int8 or None)."""
    import pyarrow.csv as pacsv

    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing} in the header {header}; expected a tab-separated "
                           f"header {' '.join(INTER_COLUMNS)} (rating, timestamp, x_label optional)")
    ints = tuple(c for c in ("userID", "itemID", "x_label") if c in header)
    floats = tuple(c for c in ("rating", "timestamp") if c in header)
    table = _read_tsv(path, ints, floats)
    del pacsv
    if table.num_rows == 0:
        raise DatasetError(f"{path}: has a header but no rows; expected at least one interaction")
    out: dict[str, np.ndarray] = {}
    for name in ("userID", "itemID"):
        values = _column(table, name)
        _first_bad(path, name, values < 0, values, "a 0-based id (>= 0)")
        _first_bad(path, name, values > np.iinfo(np.int32).max, values, "an id below 2^31")
        out[name] = values.astype(np.int32)
    out["rating"] = _column(table, "rating").astype(np.float32) if "rating" in header \
        else np.ones(table.num_rows, dtype=np.float32)
    if "timestamp" in header:
        ts = _column(table, "timestamp")
        _first_bad(path, "timestamp", ~np.isfinite(ts), ts, "a finite number")
        out["timestamp"] = ts.astype(np.int64)
    else:
        out["timestamp"] = np.zeros(table.num_rows, dtype=np.int64)
    if "rating" in header:
        _first_bad(path, "rating", ~np.isfinite(out["rating"]), out["rating"], "a finite number")
    if "x_label" in header:
        labels = _column(table, "x_label")
        _first_bad(path, "x_label", (labels < 0) | (labels > 2), labels, "0 (train), 1 (valid) or 2 (test)")
        out["x_label"] = labels.astype(np.int8)
    return out


def read_mapping(path: Path, id_column: str):
    """An MMRec mapping file (tab-separated `original <id_column>`) -> pyarrow string array: original id by index."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
    if len(header) != 2 or id_column not in header:
        raise DatasetError(f"{path}: expected a tab-separated header of two columns, the original id and "
                           f"{id_column!r} (MMRec writes e.g. 'asin\\titemID'), got {header}")
    original = header[1 - header.index(id_column)]
    try:
        table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter="\t"),
                               convert_options=pacsv.ConvertOptions(
                                   column_types={id_column: pa.int64(), original: pa.string()},
                                   strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        _raise_row_error(path, "\t", (id_column,), (), exc)
    index = _column(table, id_column)
    n = len(index)
    if n == 0:
        raise DatasetError(f"{path}: has a header but no rows")
    _first_bad(path, id_column, (index < 0) | (index >= n), index, f"a 0-based index below {n} (the row count)")
    seen = np.bincount(index, minlength=n)
    if (seen != 1).any():
        dup = int(np.flatnonzero(seen > 1)[0])
        row = int(np.flatnonzero(index == dup)[1])
        raise DatasetError(f"{path}: row {row + 1}, column {id_column!r}: duplicate index {dup}; expected each of "
                           f"0..{n - 1} once")
    ids = pc.utf8_trim_whitespace(table.column(original).combine_chunks())
    empty = pc.equal(pc.utf8_length(ids), 0).to_numpy(zero_copy_only=False)
    _first_bad(path, original, empty, ids.to_numpy(zero_copy_only=False), "a non-empty id")
    if pc.count_distinct(ids).as_py() != n:
        dup = ids.to_pandas().duplicated().to_numpy()
        _first_bad(path, original, dup, ids.to_numpy(zero_copy_only=False), "unique ids")
    if not np.array_equal(index, np.arange(n)):
        ids = ids.take(pa.array(np.argsort(index)))
    return ids


def _feature_rows(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header (nothing else is read)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DatasetError(f"{path}: cannot be read as a .npy array: {exc}") from exc
    return array.shape, array.dtype


# ---------------------------------------------------------------------------------------------------------
# the items table (cards)
# ---------------------------------------------------------------------------------------------------------
def _items_raw(path: Path):
    """items.csv as a pyarrow table (item_id, title, text, image, genres as strings) with a non-empty item_id."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    names = ("item_id", "title", "text", "image", "genres", "domain", "item_noun")
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in names}))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DatasetError(f"{path}: cannot be read as csv: {exc}") from exc
    if "item_id" not in table.column_names:
        raise DatasetError(f"{path}: missing column 'item_id'; expected item_id,title[,text][,image][,genres], "
                           f"found {table.column_names}")
    ids = pc.utf8_trim_whitespace(table.column("item_id").combine_chunks())
    bad = pc.fill_null(pc.equal(pc.utf8_length(ids), 0), True).to_numpy(zero_copy_only=False)
    _first_bad(path, "item_id", bad, ids.to_numpy(zero_copy_only=False), "a non-empty id")
    return table.set_column(table.column_names.index("item_id"), "item_id", ids)


def _max_listed_index(table) -> int:
    """The largest integer item_id of an items table (-1 when none is an integer)."""
    as_int = pd.to_numeric(table.column("item_id").to_pandas(), errors="coerce")
    return int(as_int.max()) if as_int.notna().any() else -1


def _match_items(folder: Path, path: Path, table, item_ids, by_index: bool) -> dict:
    """items.csv matched onto the catalogue's ids: {column: array of n_items, null where an item has no row}.

    A row whose id is not in the catalogue, or a repeated id, is an error naming the row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(item_ids)
    raw_ids = table.column("item_id").combine_chunks()
    if by_index:  # no mapping: ids are itemIDs
        rows = pd.to_numeric(raw_ids.to_pandas(), errors="coerce")
        bad = (rows.isna() | (rows < 0) | (rows >= n) | (rows % 1 != 0)).to_numpy()
        _first_bad(path, "item_id", bad, raw_ids.to_numpy(zero_copy_only=False),
                   f"an itemID in 0..{n - 1} (there is no {ITEM_MAP})")
        rows = rows.to_numpy(dtype=np.int64)
    else:
        found = pc.index_in(raw_ids, value_set=item_ids)
        missing = found.is_null().to_numpy(zero_copy_only=False)
        _first_bad(path, "item_id", missing, raw_ids.to_numpy(zero_copy_only=False),
                   f"an item id listed in {ITEM_MAP}")
        rows = found.to_numpy(zero_copy_only=False).astype(np.int64)
    counts = np.bincount(rows, minlength=n)
    if (counts > 1).any():
        row = int(np.flatnonzero(counts[rows] > 1)[1])
        raise DatasetError(f"{path}: row {row + 1}, column 'item_id': duplicate id {raw_ids[row].as_py()!r}")
    aligned = len(rows) == n and np.array_equal(rows, np.arange(n))
    if not aligned:  # reorder onto the catalogue; items without a row get null
        where = np.full(n, -1, dtype=np.int64)
        where[rows] = np.arange(len(rows))
        take = pa.array(where, mask=where < 0)
    out: dict = {}
    for name in ("title", "text", "image", "genres"):
        if name in table.column_names:
            column = table.column(name).combine_chunks()
            out[name] = column if aligned else column.take(take)
    if "image" in out:  # paths must resolve inside the folder (checked row by row: only rows with an image)
        image = out["image"].to_numpy(zero_copy_only=False)
        present = np.flatnonzero(pd.notna(image) & (image != ""))
        resolved = np.full(n, None, dtype=object)
        resolved[present] = _images(folder, path, pd.DataFrame({"image": image[present]}),
                                    pd.Series(np.asarray(item_ids.take(pa.array(present)).to_pylist(), dtype=object)))
        out["image"] = resolved
    return out


def _titles(columns: dict, item_ids, by_index: bool, domain: dict) -> tuple:
    """(title, text) arrow arrays: the table's, else a generic "Product 17" (the domain's noun and the itemID);
    text falls back to the table's title, else "" (nothing to encode: features.compute_features says so)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(item_ids)
    title = columns.get("title")
    title = pc.utf8_trim_whitespace(title) if title is not None else pa.nulls(n, pa.string())
    missing = pc.fill_null(pc.equal(pc.utf8_length(title), 0), True)
    if pc.any(missing).as_py():
        noun = item_label(domain, 0)[:-2]
        generic = pc.binary_join_element_wise(noun, pa.array(np.arange(n).astype(str)), " ")
        title = pc.if_else(missing, generic, title)
    given = columns.get("title")  # text falls back to the table's own title, never to a generic label
    given = pc.fill_null(given, "") if given is not None else pa.array([""] * n, pa.string())
    text = columns.get("text")
    if text is None:
        text = given
    else:
        empty = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0), True)
        text = pc.if_else(empty, given, text)
    return title, text


# ---------------------------------------------------------------------------------------------------------
# the dataset
# ---------------------------------------------------------------------------------------------------------
def _str_series(values) -> pd.Series:
    """A pandas string column from a pyarrow string array (zero-copy)."""
    return pd.Series(pd.array(values, dtype="str"))


def _empty_lists(n: int) -> pd.Series:
    """n distinct empty lists (the genres of items that have none), made with the collector paused."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        out = np.empty(n, dtype=object)
        out[:] = [[] for _ in range(n)]
    finally:
        if enabled:
            gc.enable()
    return pd.Series(out, dtype=object)


def _genres(values, n: int) -> pd.Series:
    if values is None or values.null_count == len(values):
        return _empty_lists(n)
    import pyarrow.compute as pc

    parts = pc.split_pattern_regex(pc.fill_null(values, ""), r"\s*[|;]\s*")
    return pd.Series([[g.strip() for g in row if g.strip()] for row in parts.to_pylist()], dtype=object)


def _build(folder: Path, say: Callable[[str], None]) -> tuple[dict, dict, dict]:
    """Parse and validate: (interaction arrays, item columns, meta) - arrays and arrow columns only."""
    import pyarrow as pa

    path = inter_file(folder)
    t0 = time.perf_counter()
    inter = read_inter(path)
    say(f"read {path.name}: {len(inter['userID'])} interactions in {time.perf_counter() - t0:.1f}s")
    table_path = folder / ITEMS_TABLE
    raw_items = _items_raw(table_path) if table_path.is_file() else None
    with_column = raw_items is not None and "domain" in raw_items.column_names
    # dataset.yaml, else a domain column of items.csv, else generic
    domain = read_domain(folder, table_path) if (folder / DATASET_SPEC).is_file() or with_column \
        else {"domain": "generic"}
    models = read_feature_models(folder)

    item_map = read_mapping(folder / ITEM_MAP, "itemID") if (folder / ITEM_MAP).is_file() else None
    user_map = read_mapping(folder / USER_MAP, "userID") if (folder / USER_MAP).is_file() else None
    if item_map is not None:
        n_items = len(item_map)
        _first_bad(path, "itemID", inter["itemID"] >= n_items, inter["itemID"],
                   f"an itemID below {n_items} (the rows of {ITEM_MAP})")
        item_ids = item_map
    else:
        n_items = int(inter["itemID"].max()) + 1
        if raw_items is not None:  # items without interactions may be listed in items.csv
            n_items = max(n_items, _max_listed_index(raw_items) + 1)
        item_ids = pa.array(np.arange(n_items).astype(str))
    if user_map is not None:
        n_users = len(user_map)
        _first_bad(path, "userID", inter["userID"] >= n_users, inter["userID"],
                   f"a userID below {n_users} (the rows of {USER_MAP})")
        user_ids = user_map
    else:
        user_ids = pa.array(np.arange(int(inter["userID"].max()) + 1).astype(str))

    feature_files: dict[str, str] = {}
    for modality, fpath in feature_paths(folder).items():
        shape, dtype = _feature_rows(fpath)
        if len(shape) != 2 or shape[1] < 1:
            raise DatasetError(f"{fpath}: expected a 2-D array (one row per item), got shape {shape}")
        if shape[0] != n_items:
            how = (f"the {n_items} rows of {ITEM_MAP}" if item_map is not None else
                   f"itemIDs 0..{n_items - 1} of {path.name}" + (f"/{ITEMS_TABLE}" if table_path.is_file() else ""))
            raise DatasetError(f"{fpath}: has {shape[0]} rows, expected one per item: {n_items} ({how}); row i must "
                               "be itemID i" + ("" if item_map is not None else
                                                f" (list items without interactions in {ITEM_MAP} or {ITEMS_TABLE})"))
        if dtype not in (np.float32, np.float64, np.float16):
            raise DatasetError(f"{fpath}: expected float32 values, got {dtype}")
        feature_files[modality] = str(fpath.resolve())
        if modality not in models:
            # MMRec's own text features are all-MiniLM-L6-v2 (384-d); an undeclared 384-d text file is taken as such
            models[modality] = MMREC_TEXT_MODEL if (modality == "text" and shape[1] == 384) else "unknown"

    columns: dict = {}
    if raw_items is not None:
        t0 = time.perf_counter()
        columns = _match_items(folder, table_path, raw_items, item_ids, item_map is None)
        say(f"read {ITEMS_TABLE}: {raw_items.num_rows} rows for {n_items} items in {time.perf_counter() - t0:.1f}s")
    title, text = _titles(columns, item_ids, item_map is None, domain)
    image = columns.get("image")
    items = {"item_id": item_ids, "title": title, "text": text,
             "image": pa.array(image, pa.string()) if image is not None else pa.nulls(n_items, pa.string()),
             "genres": columns.get("genres", pa.nulls(n_items, pa.string()))}
    meta = {"name": path.stem, "domain": domain, "feature_files": feature_files, "feature_models": models,
            "users": user_ids}
    return inter, items, meta


def _dataset(folder: Path, inter: dict, items: dict, meta: dict) -> Dataset:
    import pyarrow as pa

    n = len(items["item_id"])
    image = items["image"].to_numpy(zero_copy_only=False)
    frame = pd.DataFrame({
        "item_id": _str_series(items["item_id"]),
        "title": _str_series(items["title"]),
        "text": _str_series(items["text"]),
        "genres": _genres(items.get("genres"), n),
        "year": pd.Series(pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))),
        "image": pd.Series(image, dtype=object).where(pd.notna(image), None),
    })
    users = pd.DataFrame({"user_id": _str_series(meta["users"])})
    interactions = pd.DataFrame({
        "user_id": _str_series(meta["users"].take(pa.array(inter["userID"]))),
        "item_id": _str_series(items["item_id"].take(pa.array(inter["itemID"]))),
        "rating": inter["rating"].astype(np.float64),
        "timestamp": inter["timestamp"],
    })
    return Dataset(meta["name"], frame, users, interactions, domain=meta["domain"], folder=str(folder.resolve()),
                   feature_files=dict(meta["feature_files"]), feature_models=dict(meta["feature_models"]),
                   split_labels=inter.get("x_label"))


# ---------------------------------------------------------------------------------------------------------
# the cache
# ---------------------------------------------------------------------------------------------------------
def _write_arrow(table, path: Path) -> None:
    import pyarrow as pa

    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _read_arrow(path: Path):
    """An Arrow IPC file, memory-mapped: no copy, pages read (and shared) as they are touched."""
    import pyarrow as pa

    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).read_all()


def _cache_write(entry: Path, inter: dict, items: dict, meta: dict) -> None:
    import pyarrow as pa

    tmp = entry.with_name(entry.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_arrow(pa.table(inter), tmp / "interactions.arrow")
    _write_arrow(pa.table({k: v.cast(pa.string()) if v.type == pa.null() else v for k, v in items.items()}),
                 tmp / "items.arrow")
    _write_arrow(pa.table({"user_id": meta["users"]}), tmp / "users.arrow")
    (tmp / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "users"}), encoding="utf-8")
    shutil.rmtree(entry, ignore_errors=True)
    tmp.rename(entry)


def _cache_read(entry: Path) -> tuple[dict, dict, dict]:
    table = _read_arrow(entry / "interactions.arrow")
    inter = {name: table.column(name).combine_chunks().to_numpy() for name in table.column_names}
    items_table = _read_arrow(entry / "items.arrow")
    items = {name: items_table.column(name).combine_chunks() for name in items_table.column_names}
    meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
    meta["users"] = _read_arrow(entry / "users.arrow").column("user_id").combine_chunks()
    return inter, items, meta


def load_mmrec(folder: Path, cache_dir: Path | None = None, say: Callable[[str], None] | None = None) -> Dataset:
    """The `Dataset` of an MMRec folder (see the module docstring); `cache_dir` keeps the parsed form."""
    folder = Path(folder)
    say = say or _quiet
    entry = Path(cache_dir) / f"mmrec-{folder.name}-{signature(folder)}" if cache_dir is not None else None
    if entry is not None and (entry / "meta.json").is_file():
        t0 = time.perf_counter()
        parts = _cache_read(entry)
        say(f"{folder.name}: parsed dataset read from the cache in {time.perf_counter() - t0:.1f}s")
    else:
        parts = _build(folder, say)
        if entry is not None:
            for stale in Path(cache_dir).glob(f"mmrec-{folder.name}-*"):  # older versions of these files
                if stale != entry:
                    shutil.rmtree(stale, ignore_errors=True)
            _cache_write(entry, *parts)
            say(f"{folder.name}: parsed dataset cached in {entry}")
    return _dataset(folder, *parts)
