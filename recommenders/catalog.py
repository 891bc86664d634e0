"""A catalog that grows while the app runs, and small generated catalogs for tests and demos.

    grown = append_items(dataset_folder, new_folder)            # items table appended, images copied in
    feats = grow_features(before, before_feats, grown, cache)   # only the new rows are encoded
    extend_model(model, grown.item_ids, feats.arrays)           # content models rank the new items at once

`python -m recommenders add-items NEW_FOLDER --dataset DATASET_FOLDER [--models-dir DIR]` runs the three
steps and re-saves every content model found in `--models-dir`.

What ranks a new item at once, and what waits:

- `ease-text`, `sparse-ease-text`: refitted in closed form over the grown catalogue on the model's own interactions (its
  positives and dislikes), the new items' columns empty: they are scored through their text alone. Exact:
  the same as fitting `ease-text` on those interactions with the new items in the catalogue.
- `text`, `vbpr` (factor models over content): a new item's vector and bias come from a least-squares map
  from the content features to the fitted item vectors and biases (an attribute-to-feature mapping,
  Gantner et al., ICDM 2010), fitted on the catalogue's existing items. For `text`, whose item vectors are
  linear in the content, the map recovers the model's own projection when the items span the content space
  (n_items >= feature dimension and full rank); otherwise it is the minimum-norm estimate.
- ID models (`pop`, `itemknn`, `bpr`, `lightgcn`, `ease`) know nothing of an item without interactions:
  they pick the new items up at the next retrain.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from recommenders.data import Dataset, _find_table, load_dataset, read_items
from recommenders.errors import DatasetError, ModelFitError

CONTENT_MODELS = ("ease-text", "sparse-ease-text", "text", "vbpr")  # extend_model ranks new items for these at once


# ---------------------------------------------------------------------------------------------------------
# appending items to a bring-your-own folder
# ---------------------------------------------------------------------------------------------------------
def _genres_cell(genres: Sequence[str]) -> str:
    return "|".join(genres)


def check_growable(dataset_folder: Path, new_folder: Path) -> tuple[Path, Path]:
    """Both folders exist and the dataset is a bring-your-own folder (DatasetError otherwise)."""
    dataset_folder, new_folder = Path(dataset_folder), Path(new_folder)
    if not dataset_folder.is_dir():
        raise DatasetError(f"dataset: expected a bring-your-own folder with items.csv|parquet, got {str(dataset_folder)!r} "
                           "(the built-in ml-100k cannot grow: copy it into a folder first)")
    if not new_folder.is_dir():
        raise DatasetError(f"folder: expected a folder with items.csv|parquet, got {str(new_folder)!r}")
    return dataset_folder, new_folder


def append_items(dataset_folder: Path, new_folder: Path) -> Dataset:
    """Append the items of `new_folder` (`items.csv|parquet`, optional `images/`) to the bring-your-own
    dataset in `dataset_folder` and return the grown dataset.

    The new items are validated first (every problem names file, row and column), ids already in the catalogue
    are refused, their images are copied to `dataset_folder/images/<item_id><suffix>`, and the items table is
    rewritten through a temporary file and a rename: a failure leaves the catalogue as it was.
    """
    dataset_folder, new_folder = check_growable(dataset_folder, new_folder)
    before = load_dataset(dataset_folder, dataset_folder)
    new_path = _find_table(new_folder, "items", required=True)
    new = read_items(new_folder, new_path)
    known = set(before.item_ids)
    clash = new["item_id"].isin(known).to_numpy()
    if clash.any():
        i = int(np.flatnonzero(clash)[0])
        raise DatasetError(f"{new_path}: row {i + 1}, column 'item_id': {new['item_id'].iloc[i]!r} is already in the "
                           f"catalogue {dataset_folder}; expected new ids ({int(clash.sum())} such rows)")

    items_path = _find_table(dataset_folder, "items", required=True)
    table = pd.read_csv(items_path, dtype=str, keep_default_na=False) if items_path.suffix == ".csv" \
        else pd.read_parquet(items_path)
    image_dir = dataset_folder / "images"
    copies: list[tuple[Path, Path]] = []
    image_cells: list[str] = []
    for item_id, image in zip(new["item_id"], new["image"]):
        if not image:
            image_cells.append("")
            continue
        target = image_dir / f"{item_id}{Path(image).suffix.lower()}"
        if target.exists():
            raise DatasetError(f"{target}: exists already; expected no image file for the new item {item_id!r}")
        copies.append((Path(image), target))
        image_cells.append(f"images/{target.name}")
    rows = pd.DataFrame({
        "item_id": new["item_id"],
        "title": new["title"],
        "text": new["text"],
        "genres": [_genres_cell(g) for g in new["genres"]],
        "year": [("" if pd.isna(y) else str(int(y))) for y in new["year"]],
    })
    if "image" in table.columns or any(image_cells):
        if "image" not in table.columns:
            # the old rows were found by images/<item_id>.*: keep finding them, now through the column
            table = table.assign(image=[_relative_image(p, dataset_folder) for p in before.items["image"]])
        rows["image"] = image_cells
    for column, value in (("domain", before.kind), ("item_noun", before.domain.get("noun", ""))):
        if column in table.columns:
            rows[column] = value
    if items_path.suffix != ".csv":
        rows["genres"] = list(new["genres"])
        rows["year"] = list(new["year"])
    grown = pd.concat([table, rows], ignore_index=True)
    grown = grown[[*table.columns, *[c for c in rows.columns if c not in table.columns]]]
    if items_path.suffix == ".csv":
        grown = grown.fillna("")

    image_dir.mkdir(exist_ok=True)
    original = items_path.read_bytes()
    tmp = items_path.with_name(f".{items_path.name}.tmp")
    done: list[Path] = []
    try:
        for source, target in copies:
            shutil.copyfile(source, target)
            done.append(target)
        if items_path.suffix == ".csv":
            grown.to_csv(tmp, index=False)
        else:
            grown.to_parquet(tmp, index=False)
        os.replace(tmp, items_path)
        return load_dataset(dataset_folder, dataset_folder)  # validates the grown catalogue as a whole
    except BaseException:
        tmp.write_bytes(original)
        os.replace(tmp, items_path)
        for target in done:
            target.unlink(missing_ok=True)
        raise


def _relative_image(path: str | None, folder: Path) -> str:
    return str(Path(path).resolve().relative_to(folder.resolve())) if path else ""


# ---------------------------------------------------------------------------------------------------------
# features of the grown catalogue: only the new rows are encoded
# ---------------------------------------------------------------------------------------------------------
def grow_features(
    before: Dataset,
    before_features: Mapping[str, np.ndarray],
    after: Dataset,
    cache_dir: Path,
    text_model: str | None = None,
    image_model: str | None = None,
    allow_network: bool = False,
):
    """`recommenders.features.FeatureSet` of `after`, encoding only the rows `before` did not have.

    When `after` starts with exactly `before`'s items (ids, text, image), each modality of `before_features`
    is reused for those rows and the new rows are encoded and appended; the result is written to `after`'s
    cache entry, so a later `compute_features(after, ...)` reads it. Otherwise everything is computed anew.
    """
    from recommenders import features as F

    n = len(before.items)
    cols = ["item_id", "text", "image"]
    same_prefix = len(after.items) >= n and after.items[cols].iloc[:n].reset_index(drop=True).equals(
        before.items[cols].reset_index(drop=True))
    if not same_prefix:
        return F.compute_features(after, cache_dir, text_model, image_model, allow_network)
    tail = after.items.iloc[n:]
    out = F.FeatureSet()
    cache_dir = Path(cache_dir)
    if "text" in before_features:
        path = F.text_cache_path(after, cache_dir, text_model)
        out.arrays["text"] = F._cached(path, lambda: np.concatenate(
            [before_features["text"], F.encode_texts(tail["text"].tolist(), text_model)]) if len(tail)
            else before_features["text"])
    if after.has_images and image_model:
        path = F.image_cache_path(after, cache_dir, image_model)
        try:
            if "image" in before_features:
                out.arrays["image"] = F._cached(path, lambda: np.concatenate(
                    [before_features["image"], F.encode_images(tail["image"].tolist(), image_model, allow_network)]))
            else:
                out.arrays["image"] = F._image(after, cache_dir, image_model, allow_network)
        except F._MODEL_ERRORS as exc:
            out.missing["image"] = f"image model {image_model!r} could not be loaded ({type(exc).__name__}: {exc})"
    elif after.has_images:
        out.missing["image"] = "the dataset has images but no image model is configured"
    if "text" not in out.arrays:
        grown = F.compute_features(after, cache_dir, text_model, None, allow_network)
        out.arrays.update({k: v for k, v in grown.arrays.items() if k == "text"})
        out.missing.update({k: v for k, v in grown.missing.items() if k == "text"})
    return out


# ---------------------------------------------------------------------------------------------------------
# content models rank new items at once
# ---------------------------------------------------------------------------------------------------------
def _interactions_of(model: Any) -> pd.DataFrame:
    """The interactions a fitted model was given, as it keeps them: its positives (weight 1) and the items it
    saw without a positive (weight -1: disliked; never recommended to that user again)."""
    seen = model._seen.tocoo()
    train = getattr(model, "_train", None)
    positive = set(zip(*train.nonzero())) if train is not None else None
    users = np.asarray(model.user_ids, dtype=object)[seen.row]
    items = np.asarray(model.item_ids, dtype=object)[seen.col]
    weight = np.ones(len(seen.row)) if positive is None else np.array(
        [1.0 if (u, i) in positive else -1.0 for u, i in zip(seen.row, seen.col)])
    return pd.DataFrame({"user_id": users, "item_id": items, "weight": weight})


def extend_model(model: Any, item_ids: Sequence[str], features: Mapping[str, np.ndarray]) -> Any:
    """A fitted content model over the grown catalogue `item_ids` (the model's items first, in order, then
    the new ones), with `features` aligned with `item_ids`. Returns the extended model (for `ease-text` a new
    instance, otherwise `model` itself, changed in place); see the module docstring for how each ranks the
    new items. Raises ModelFitError for a model that cannot rank an item without interactions."""
    from recommenders.models import create_model

    item_ids = [str(i) for i in item_ids]
    n_old = len(model.item_ids)
    if item_ids[:n_old] != list(model.item_ids):
        raise ModelFitError(f"item_ids: expected the model's {n_old} items first, in the model's order, then the new ones")
    new_ids = item_ids[n_old:]
    if len(set(new_ids)) != len(new_ids) or set(new_ids) & set(model.item_ids):
        raise ModelFitError("item_ids: expected new, unique ids after the model's items")
    for key, value in features.items():
        if np.asarray(value).shape[0] != len(item_ids):
            raise ModelFitError(f"features[{key!r}]: expected {len(item_ids)} rows aligned with item_ids, "
                                f"got {np.asarray(value).shape}")
    if model.name not in CONTENT_MODELS:
        raise ModelFitError(f"model {model.name!r} ranks items by their interactions only: it picks new items up "
                            f"at the next retrain (content models that rank them at once: {list(CONTENT_MODELS)})")
    if not new_ids:
        return model
    if model.name in ("ease-text", "sparse-ease-text"):
        return create_model(model.name, **model.params).fit(_interactions_of(model), item_ids, features)

    from recommenders.models.vbpr import content_matrix

    modalities = getattr(model, "modalities", None)
    needed = sorted(features) if modalities is None else list(modalities)
    missing = [m for m in needed if m not in features]
    if missing:
        raise ModelFitError(f"features: model {model.name!r} needs modalities {needed}, missing {missing}")
    content = content_matrix({k: features[k] for k in needed}).astype(np.float64)  # (n_items, d)
    targets = np.concatenate([model.V, model.b[:, None]], axis=1)  # (n_old, k + 1)
    mapping, *_ = np.linalg.lstsq(content[:n_old], targets, rcond=None)  # (d, k + 1), minimum-norm
    grown = content[n_old:] @ mapping
    model._set_factors(model.U, np.concatenate([model.V, grown[:, :-1]]), np.concatenate([model.b, grown[:, -1]]))
    _grow_catalogue(model, new_ids)
    return model


def _grow_catalogue(model: Any, new_ids: list[str]) -> None:
    import scipy.sparse as sp

    n_users, n_old = model._seen.shape
    model.item_ids = [*model.item_ids, *new_ids]
    model._item_index = {iid: n for n, iid in enumerate(model.item_ids)}
    model._seen = sp.csr_matrix((model._seen.data, model._seen.indices, model._seen.indptr),
                                shape=(n_users, n_old + len(new_ids)))


# ---------------------------------------------------------------------------------------------------------
# small generated catalogues (tests, demos, screenshots)
# ---------------------------------------------------------------------------------------------------------
_POOLS: dict[str, dict[str, Any]] = {
    "book": {
        "noun": "book",
        "genres": {
            "Fantasy": ["dragons", "wizards", "enchanted forests", "ancient prophecy", "sword and sorcery"],
            "Mystery": ["detective", "locked room", "poisoned heiress", "missing diaries", "village secrets"],
            "Romance": ["letters", "summer wedding", "second chances", "seaside cottage", "rival bakers"],
            "Science": ["black holes", "evolution", "the brain", "quantum physics", "climate history"],
        },
        "title": ["The {a} of {b}", "{a} and {b}", "A {a} Chronicle"],
    },
    "product": {
        "noun": "product",
        "genres": {
            "Kitchen": ["stainless steel", "nonstick pan", "chef knife", "espresso grinder", "cast iron"],
            "Outdoor": ["waterproof shell", "trekking poles", "down sleeping bag", "camping stove", "trail map"],
            "Audio": ["noise cancelling", "wireless earbuds", "studio monitor", "vinyl turntable", "bass response"],
            "Office": ["ergonomic chair", "standing desk", "mechanical keyboard", "desk lamp", "cable tidy"],
        },
        "title": ["{a} {b} Pro", "Classic {a} {b}", "{a} {b} Set"],
    },
    "music": {
        "noun": "song",
        "genres": {
            "Jazz": ["saxophone", "swing rhythm", "smoky club", "brushed drums", "blue notes"],
            "Electronic": ["synthesizer", "drum machine", "pulsing bass", "neon nights", "club remix"],
            "Folk": ["acoustic guitar", "harmonica", "mountain ballad", "fiddle", "campfire chorus"],
            "Classical": ["string quartet", "piano sonata", "symphony hall", "violin solo", "baroque fugue"],
        },
        "title": ["{a} {b}", "Song of {a}", "{a} in {b}"],
    },
}
_TITLE_WORDS = ["Harbour", "Lantern", "Orchard", "Meridian", "Atlas", "Compass", "Juniper", "Beacon", "Quarry",
                "Willow", "Falcon", "Ember", "Cobalt", "Tundra"]
_PALETTE = [(200, 60, 60), (60, 140, 200), (80, 170, 90), (210, 170, 50), (150, 90, 180), (40, 40, 40)]


def write_synthetic_catalog(
    folder: Path,
    domain: str,
    n_items: int = 24,
    n_users: int = 12,
    seed: int = 0,
    images: bool = True,
    declare: str = "yaml",
    start: int = 0,
    interactions: bool = True,
) -> Path:
    """Write a small bring-your-own catalogue of `domain` ("book", "product" or "music") into `folder`.

    Items cycle through four genres, each with its own vocabulary (so text encoders and keyphrases separate
    them) and its own image colour; user u likes the items of genre u % 4 (rating 5) and dislikes one item of
    the next genre (rating 1). `declare`: "yaml" writes dataset.yaml, "column" a `domain` column, "none"
    nothing (a generic catalogue). `start` offsets the item ids (for a second batch to add with add-items);
    `interactions=False` writes only items (and images), the shape `add-items` reads.
    """
    if domain not in _POOLS:
        raise ValueError(f"domain: expected one of {sorted(_POOLS)}, got {domain!r}")
    if declare not in ("yaml", "column", "none"):
        raise ValueError(f"declare: expected 'yaml', 'column' or 'none', got {declare!r}")
    pool = _POOLS[domain]
    genres = list(pool["genres"])
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(start, start + n_items):
        genre = genres[k % len(genres)]
        words = pool["genres"][genre]
        picks = rng.choice(len(words), size=3, replace=False)
        a, b, c = (words[int(i)] for i in picks)
        # titles from a neutral vocabulary: the genre's words are in the text, as in a real catalogue
        t1, t2 = _TITLE_WORDS[k % len(_TITLE_WORDS)], _TITLE_WORDS[(k * 7 + 3) % len(_TITLE_WORDS)]
        title = pool["title"][k % len(pool["title"])].format(a=t1, b=t2) + f" {k}"
        text = f"{title}: {a}, {b} and {c}. A {genre.lower()} {pool['noun']} about {a} and {c}."
        rows.append({"item_id": f"{domain[0]}{k}", "title": title, "text": text, "genres": genre,
                     "year": 1990 + k % 30, "image": f"images/{domain[0]}{k}.png" if images else ""})
        if images:
            from PIL import Image, ImageDraw

            (folder / "images").mkdir(exist_ok=True)
            im = Image.new("RGB", (64, 96), _PALETTE[k % len(genres)])
            ImageDraw.Draw(im).rectangle([8, 8 + k % 40, 56, 40 + k % 40], fill=_PALETTE[-1])
            im.save(folder / "images" / f"{domain[0]}{k}.png")
    items = pd.DataFrame(rows)
    if not images:
        items = items.drop(columns="image")
    if declare == "column":
        items["domain"] = domain
    items.to_csv(folder / "items.csv", index=False)
    if declare == "yaml":
        (folder / "dataset.yaml").write_text(f"domain: {domain}\nnoun: {pool['noun']}\n")
    if interactions:
        inter = []
        for u in range(n_users):
            liked = [r for j, r in enumerate(rows) if j % len(genres) == u % len(genres)]
            for t, r in enumerate(liked):
                if rng.random() < 0.8:
                    inter.append({"user_id": f"u{u}", "item_id": r["item_id"], "rating": 5, "timestamp": 1000 + t})
            other = [r for j, r in enumerate(rows) if j % len(genres) == (u + 1) % len(genres)]
            inter.append({"user_id": f"u{u}", "item_id": other[u % len(other)]["item_id"], "rating": 1,
                          "timestamp": 999})
        pd.DataFrame(inter).to_csv(folder / "interactions.csv", index=False)
    return folder
