"""Exports: feedback, preference pairs, generated assets and training interactions as JSONL or Parquet.

    python -m annotation export --what preferences --format parquet --out prefs.parquet
    datasets.load_dataset("parquet", data_files="prefs.parquet")

Preferences come out in a Pick-a-Pic-like shape, one row per current A/B/tie label on a pair of generated
assets (skips, cleared labels and slate pairs are left out): prompt, image_0, image_1, label_0, label_1,
annotator, annotator_reliability, study, time_spent_ms, ... where image_i is the cover's file path (covers) or
the caption text (captions), label_0/label_1 is 1/0, 0/1 or 0.5/0.5 for a tie; annotator_reliability is the
annotator's estimated reliability (`annotation.quality`), study the key of the study the label was given in. Files are written to a temporary name and renamed, so a crash never leaves a
half-written export under the final name.

Training-ready datasets (`export_dataset`, `python -m annotation export --to DIR | hf://datasets/ORG/NAME`):
a folder with `covers/` in Pick-a-Pic's layout (`caption`, `jpg_0`/`jpg_1` as picture bytes, `label_0`/`label_1`,
`best_image_uid`, plus the target user's profile columns), `captions/` (caption pairs, text columns) and a
dataset card `README.md` with both configs, the schema and how the labels were collected. Pictures are read
through a `read_bytes` callable (default: the asset's file path), so a blob store can stand in.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from annotation import frames
from annotation.errors import InvalidInputError

__all__ = ["export", "preference_pairs", "export_dataset", "dataset_card", "push_to_hub", "read_file_bytes", "WHAT",
           "FORMATS", "COVER_COLUMNS", "CAPTION_COLUMNS"]

WHAT = ("feedback", "preferences", "assets", "interactions")
FORMATS = ("jsonl", "parquet")

PAIR_COLUMNS = [
    "pair_id", "label_id", "event_id", "kind", "prompt", "prompt_0", "prompt_1", "image_0", "image_1",
    "image_0_uid", "image_1_uid", "model_0", "model_1", "fallback_0", "fallback_1", "personalized_0",
    "personalized_1", "label_0", "label_1", "choice", "best_image_uid", "are_different", "has_label", "annotator",
    "annotator_id", "annotator_reliability", "study", "user_id", "item_id", "time_spent_ms", "guideline_version",
    "created_at",
]
_LABELS = {"A": (1.0, 0.0), "B": (0.0, 1.0), "tie": (0.5, 0.5)}


def preference_pairs(session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None
                     ) -> pd.DataFrame:
    """Current A/B/tie labels on asset pairs, in the Pick-a-Pic-like shape described above (PAIR_COLUMNS)."""
    prefs = frames.preferences_frame(session, since=since, until=until)
    prefs = prefs[prefs["choice"].isin(list(_LABELS)) & prefs["asset_a_id"].notna()]
    out = pd.DataFrame(index=prefs.index)
    out["pair_id"] = prefs["pair_id"].astype("int64")
    out["label_id"] = prefs["label_id"].astype("int64")
    out["event_id"] = prefs["event_id"]
    out["kind"] = prefs["kind"]
    out["prompt"] = prefs["prompt_a"]
    out["prompt_0"], out["prompt_1"] = prefs["prompt_a"], prefs["prompt_b"]
    is_cover = prefs["kind"] == "cover"
    out["image_0"] = prefs["path_a"].where(is_cover, prefs["text_a"])
    out["image_1"] = prefs["path_b"].where(is_cover, prefs["text_b"])
    out["image_0_uid"] = prefs["asset_a_id"].astype("int64").astype(str)
    out["image_1_uid"] = prefs["asset_b_id"].astype("int64").astype(str)
    out["model_0"], out["model_1"] = prefs["generator_a"], prefs["generator_b"]
    out["fallback_0"], out["fallback_1"] = prefs["fallback_a"].astype(bool), prefs["fallback_b"].astype(bool)
    out["personalized_0"] = prefs["personalized_a"].astype(bool)
    out["personalized_1"] = prefs["personalized_b"].astype(bool)
    out["label_0"] = prefs["choice"].map(lambda c: _LABELS[c][0]).astype("float64")
    out["label_1"] = prefs["choice"].map(lambda c: _LABELS[c][1]).astype("float64")
    out["choice"] = prefs["choice"]
    out["best_image_uid"] = out["image_0_uid"].where(prefs["choice"] == "A", out["image_1_uid"])
    out.loc[prefs["choice"] == "tie", "best_image_uid"] = ""
    out["are_different"] = True  # create_pair refuses a pair of one asset with itself
    out["has_label"] = True
    out["annotator"] = prefs["annotator"]
    out["annotator_id"] = prefs["annotator_id"].astype("int64")
    reliability, studies = _annotator_reliability(session), _study_keys(session)
    out["annotator_reliability"] = prefs["annotator_id"].astype("int64").map(reliability).astype("float64")
    out["study"] = prefs["study_id"].map(lambda sid: None if pd.isna(sid) else studies.get(int(sid))).astype(object)
    out["user_id"] = prefs["target_user_id"]
    out["item_id"] = prefs["item_id_a"]
    out["time_spent_ms"] = prefs["time_spent_ms"].astype("Int64")
    out["guideline_version"] = prefs["guideline_version"]
    out["created_at"] = prefs["created_at"]
    return out[PAIR_COLUMNS].reset_index(drop=True)


def _annotator_reliability(session: Session) -> dict[int, float]:
    """annotator_id -> reliability as last estimated (`annotation.quality`), for the annotators that have one."""
    from sqlalchemy import select

    from annotation.models import Annotator

    return {int(i): float(r) for i, r in session.execute(select(Annotator.id, Annotator.reliability)
                                                        .where(Annotator.reliability.is_not(None)))}


def _study_keys(session: Session) -> dict[int, str]:
    from sqlalchemy import select

    from annotation.models import Study

    return {int(i): k for i, k in session.execute(select(Study.id, Study.key))}


def _table(session: Session, what: str, since, until) -> pd.DataFrame:
    if what == "feedback":
        frame = frames.feedback_frame(session, since=since, until=until)
        for column in ("impression_id", "position"):
            frame[column] = frame[column].astype("Int64")
        return frame
    if what == "preferences":
        return preference_pairs(session, since=since, until=until)
    if what == "assets":
        frame = frames.assets_frame(session, since=since, until=until)
        frame["params"] = frame["params"].map(lambda p: json.dumps(p, sort_keys=True))  # one string column
        frame["seed"] = frame["seed"].astype("Int64")
        return frame
    return frames.interactions_frame(session, since=since, until=until)


def export(session: Session, what: str, fmt: str, out: str | os.PathLike, since: dt.datetime | None = None,
           until: dt.datetime | None = None) -> int:
    """Write the `what` table ("feedback" | "preferences" | "assets" | "interactions") to `out` as `fmt`
    ("jsonl" | "parquet"); returns the number of rows. Parent folders are created."""
    if what not in WHAT:
        raise InvalidInputError(f"what must be one of {', '.join(WHAT)}, got {what!r}")
    if fmt not in FORMATS:
        raise InvalidInputError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.is_dir():
        raise InvalidInputError(f"out must be a file path, got the folder {str(out)!r}")
    frame = _table(session, what, since, until)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if fmt == "jsonl":
            text = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="us")
            tmp.write_text(text if text.endswith("\n") or not text else text + "\n", encoding="utf-8")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return len(frame)


# --------------------------------------------------------------------------------------------------------------
# training-ready datasets: cover preferences in Pick-a-Pic's shape, caption preferences, a dataset card

COVER_COLUMNS = [
    "caption", "jpg_0", "jpg_1", "label_0", "label_1", "best_image_uid", "image_0_uid", "image_1_uid",
    "are_different", "has_label", "model_0", "model_1", "prompt_0", "prompt_1", "keywords_0", "keywords_1",
    "alpha_0", "alpha_1", "style_0", "style_1", "fallback_0", "fallback_1", "personalized_0", "personalized_1",
    "user_id", "user_top_genres", "user_liked_item_ids", "item_id", "item_title", "item_genres", "annotator",
    "annotator_id", "annotator_reliability", "study", "pair_id", "label_id", "choice", "time_spent_ms",
    "guideline_version", "created_at",
]
CAPTION_COLUMNS = [
    "prompt", "text_0", "text_1", "label_0", "label_1", "best_text_uid", "text_0_uid", "text_1_uid", "model_0",
    "model_1", "fallback_0", "fallback_1", "personalized_0", "personalized_1", "user_id", "user_top_genres",
    "user_liked_item_ids", "item_id", "item_title", "item_genres", "annotator", "annotator_id",
    "annotator_reliability", "study", "pair_id", "label_id", "choice", "time_spent_ms", "guideline_version",
    "created_at",
]
SHARD = "train-00000-of-00001.parquet"
MAX_LIKED_IDS = 50  # the user's most recent liked items kept in each row


def read_file_bytes(ref: str) -> bytes:
    """The default image reader: an asset's reference is a file path (the blob store swaps in its own)."""
    return Path(ref).read_bytes()


def _profiles(session: Session) -> dict[str, tuple[list[str], list[str]]]:
    """user_id -> (top 3 genres of the items they liked, their liked item ids, newest first), from the store."""
    from sqlalchemy import select

    from annotation.models import Item

    liked = frames.interactions_frame(session)
    liked = liked[liked["weight"] > 0].sort_values(["user_id", "timestamp"], ascending=[True, False], kind="stable")
    genres = dict(session.execute(select(Item.item_id, Item.genres)).all())
    out: dict[str, tuple[list[str], list[str]]] = {}
    for user_id, rows in liked.groupby("user_id", sort=False):
        ids = rows["item_id"].tolist()
        counts: dict[str, int] = {}
        for item_id in ids:
            for genre in genres.get(item_id) or []:
                if genre.lower() != "unknown":
                    counts[genre] = counts.get(genre, 0) + 1
        top = sorted(counts, key=lambda g: (-counts[g], g))[:3]
        out[str(user_id)] = (top, ids[:MAX_LIKED_IDS])
    return out


def _items(session: Session) -> dict[str, tuple[str, list[str]]]:
    from sqlalchemy import select

    from annotation.models import Item

    return {i: (t, list(g or [])) for i, t, g in session.execute(select(Item.item_id, Item.title, Item.genres)).all()}


def _labelled_pairs(session: Session, since, until) -> pd.DataFrame:
    """Current A/B/tie labels on cover and caption pairs, with both assets' params."""
    prefs = frames.preferences_frame(session, since=since, until=until)
    prefs = prefs[prefs["choice"].isin(list(_LABELS)) & prefs["kind"].isin(["cover", "caption"])]
    assets = frames.assets_frame(session)
    params = dict(zip(assets["asset_id"].astype("int64"), assets["params"]))
    prefs = prefs.copy()
    for side in ("a", "b"):
        prefs[f"params_{side}"] = prefs[f"asset_{side}_id"].astype("int64").map(params)
    return prefs


def _common(row, profiles, items, reliability: dict[int, float], studies: dict[int, str]) -> dict:
    user = row.target_user_id if isinstance(row.target_user_id, str) else None
    top, liked = profiles.get(user, ([], [])) if user else ([], [])
    title, genres = items.get(row.item_id_a, ("", []))
    label_0, label_1 = _LABELS[row.choice]
    return {
        "label_0": label_0, "label_1": label_1, "model_0": row.generator_a, "model_1": row.generator_b,
        "fallback_0": bool(row.fallback_a), "fallback_1": bool(row.fallback_b),
        "personalized_0": bool(row.personalized_a), "personalized_1": bool(row.personalized_b),
        "user_id": user, "user_top_genres": top, "user_liked_item_ids": liked, "item_id": row.item_id_a,
        "item_title": title, "item_genres": genres, "annotator": row.annotator, "annotator_id": int(row.annotator_id),
        "annotator_reliability": reliability.get(int(row.annotator_id)),
        "study": None if pd.isna(row.study_id) else studies.get(int(row.study_id)),
        "pair_id": int(row.pair_id), "label_id": int(row.label_id), "choice": row.choice,
        "time_spent_ms": None if pd.isna(row.time_spent_ms) else int(row.time_spent_ms),
        "guideline_version": row.guideline_version, "created_at": row.created_at.to_pydatetime(),
    }


def _best(choice: str, uid_0: str, uid_1: str) -> str:
    return uid_0 if choice == "A" else uid_1 if choice == "B" else ""


def _schema(columns: list[str], binary: tuple[str, ...] = ()):
    import pyarrow as pa

    lists = {"keywords_0", "keywords_1", "user_top_genres", "user_liked_item_ids", "item_genres"}
    floats = {"label_0", "label_1", "alpha_0", "alpha_1", "annotator_reliability"}
    bools = {"are_different", "has_label", "fallback_0", "fallback_1", "personalized_0", "personalized_1"}
    ints = {"annotator_id", "pair_id", "label_id", "time_spent_ms"}
    fields = []
    for name in columns:
        kind = (pa.binary() if name in binary else pa.list_(pa.string()) if name in lists else
                pa.float64() if name in floats else pa.bool_() if name in bools else pa.int64() if name in ints
                else pa.timestamp("us") if name == "created_at" else pa.string())
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def _write_parquet(rows: list[dict], columns: list[str], path: Path, binary: tuple[str, ...] = ()) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema(columns, binary)
    table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def export_dataset(session: Session, out_dir: str | os.PathLike, read_bytes=read_file_bytes,
                   since: dt.datetime | None = None, until: dt.datetime | None = None,
                   name: str = "vitrine-preferences", profiles: dict | None = None) -> dict:
    """Write a training-ready dataset folder: `covers/` (Pick-a-Pic's shape, pictures as JPEG/PNG bytes),
    `captions/` (caption pairs) and a dataset card `README.md`. Returns {"covers": n, "captions": m,
    "skipped_covers": k, "files": [...]}.

    `read_bytes(path_or_key) -> bytes` reads a cover's picture (default: the path on disk). A cover pair whose
    picture cannot be read is left out and counted in `skipped_covers` (and in the card), never half-written.
    The user profile columns come from the store's likes and ratings; `profiles` {user_id: (top_genres,
    liked_item_ids)} replaces them for the users it names (the app knows the dataset's history too).
    """
    if not callable(read_bytes):
        raise InvalidInputError(f"read_bytes must be a callable path_or_key -> bytes, got {read_bytes!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"out_dir must be a folder, got the file {str(out)!r}")
    prefs = _labelled_pairs(session, since, until)
    overrides = dict(profiles or {})
    profiles, items = _profiles(session), _items(session)
    reliability, studies = _annotator_reliability(session), _study_keys(session)
    for user_id, (top, liked) in overrides.items():
        profiles[str(user_id)] = ([str(g) for g in top][:3], [str(i) for i in liked][:MAX_LIKED_IDS])
    covers, captions, skipped = [], [], []
    for row in prefs.itertuples(index=False):
        uid_0, uid_1 = str(int(row.asset_a_id)), str(int(row.asset_b_id))
        common = _common(row, profiles, items, reliability, studies)
        if row.kind == "cover":
            try:
                jpg_0, jpg_1 = read_bytes(row.path_a), read_bytes(row.path_b)
            except (OSError, LookupError, ValueError, TypeError) as exc:
                skipped.append(f"pair {int(row.pair_id)}: {exc}")
                continue
            pa_, pb_ = row.params_a or {}, row.params_b or {}
            covers.append({
                **common, "caption": row.prompt_a, "jpg_0": jpg_0, "jpg_1": jpg_1,
                "best_image_uid": _best(row.choice, uid_0, uid_1), "image_0_uid": uid_0, "image_1_uid": uid_1,
                "are_different": True, "has_label": True, "prompt_0": row.prompt_a, "prompt_1": row.prompt_b,
                "keywords_0": [str(k) for k in pa_.get("keywords") or []],
                "keywords_1": [str(k) for k in pb_.get("keywords") or []],
                "alpha_0": float(pa_.get("alpha") or 0.0), "alpha_1": float(pb_.get("alpha") or 0.0),
                "style_0": (pa_.get("policy") or {}).get("style"), "style_1": (pb_.get("policy") or {}).get("style"),
            })
        else:
            captions.append({
                **common, "prompt": row.prompt_a, "text_0": row.text_a, "text_1": row.text_b,
                "best_text_uid": _best(row.choice, uid_0, uid_1), "text_0_uid": uid_0, "text_1_uid": uid_1,
            })
    files = [out / "covers" / SHARD, out / "captions" / SHARD, out / "README.md"]
    _write_parquet(covers, COVER_COLUMNS, files[0], binary=("jpg_0", "jpg_1"))
    _write_parquet(captions, CAPTION_COLUMNS, files[1])
    card = dataset_card(name, len(covers), len(captions), len(skipped), since, until)
    tmp = files[2].with_name(f".README.md.{os.getpid()}.tmp")
    tmp.write_text(card, encoding="utf-8")
    os.replace(tmp, files[2])
    return {"covers": len(covers), "captions": len(captions), "skipped_covers": len(skipped),
            "skipped": skipped[:20], "files": [str(f) for f in files]}


def dataset_card(name: str, n_covers: int, n_captions: int, n_skipped: int, since=None, until=None) -> str:
    """The README.md of an exported dataset: configs, schema and how the labels were collected."""
    window = (f"Labels created from {since or 'the start'} to {until or 'the export'} (UTC)."
              if since or until else "Every current label at the time of the export.")
    skipped = (f" {n_skipped} labelled cover pairs were left out because a picture could not be read."
               if n_skipped else "")
    return f"""---
pretty_name: {name}
tags:
- human-feedback
- preference
- text-to-image
- recommendation
configs:
- config_name: covers
  data_files:
  - split: train
    path: covers/*.parquet
  default: true
- config_name: captions
  data_files:
  - split: train
    path: captions/*.parquet
---
# {name}

Pairwise human preferences on personalized recommendation covers and captions, exported from a Vitrine
annotation store: {n_covers} cover pairs and {n_captions} caption pairs. {window}{skipped}

```python
from datasets import Image, load_dataset
covers = load_dataset("parquet", data_files="covers/*.parquet")["train"]
covers = covers.cast_column("jpg_0", Image()).cast_column("jpg_1", Image())
captions = load_dataset("parquet", data_files="captions/*.parquet")["train"]
```

## How it was collected
Vitrine recommends items to a user and shows each with a cover made for that user (a diffusion model
conditioned on the user's taste keywords, or a typographic fallback) and a caption (a small instruct LLM,
or a template). Annotators are handed pairs of covers (or captions) made for one target user and choose
the one that suits that user better (A, B or tie; skips are not exported). A label can be changed or undone:
only the current label counts. One row per (pair, annotator): a pair labelled by two annotators gives two rows.
Unlike Pick-a-Pic, the person who chooses (`annotator`) is not the person the pictures were made for
(`user_id`, the target user); the user's profile columns describe the target user from the store's feedback.

## covers (Pick-a-Pic's layout)
| column | type | meaning |
|---|---|---|
| caption | string | the prompt of image 0 (the two prompts may differ: see prompt_0 / prompt_1) |
| jpg_0, jpg_1 | binary | the two covers' encoded picture bytes (JPEG or PNG); cast to `datasets.Image()` |
| label_0, label_1 | float | 1/0 when image 0 won, 0/1 when image 1 won, 0.5/0.5 for a tie |
| best_image_uid | string | image_0_uid or image_1_uid of the winner, "" for a tie |
| image_0_uid, image_1_uid | string | the covers' asset ids in the store |
| are_different, has_label | bool | always true (a pair never shows one asset twice; unlabelled pairs are not exported) |
| model_0, model_1 | string | generator: model id, or "fallback" |
| prompt_0, prompt_1 | string | each cover's diffusion prompt |
| keywords_0, keywords_1 | list[string] | the user keywords each prompt carries |
| alpha_0, alpha_1 | float | personalization weight of each prompt (0 = generic) |
| style_0, style_1 | string | the prompt policy's style of each cover, when the policy chose it |
| fallback_0/1, personalized_0/1 | bool | typographic fallback; made from the user's preferences |
| user_id | string | the target user the covers were made for |
| user_top_genres | list[string] | the target user's three most liked genres (from the store's likes and ratings) |
| user_liked_item_ids | list[string] | up to {MAX_LIKED_IDS} items the target user liked, newest first |
| item_id, item_title, item_genres | string, string, list[string] | the recommended item |
| annotator, annotator_id | string, int | who chose |
| annotator_reliability | float | their estimated probability of choosing the better side (Dawid-Skene over gold pairs and overlaps; null before any estimate) |
| study | string | the key of the labeling study the label was given in (null: outside any study) |
| pair_id, label_id, choice | int, int, string | the store's ids and the raw choice (A, B, tie) |
| time_spent_ms, guideline_version, created_at | int, string, timestamp | the label's metadata: time on screen before the choice, guidelines, when (UTC) |

## captions
The same columns, with `prompt` (the request sent to the caption model), `text_0` / `text_1` (the two
captions) and `best_text_uid`, `text_0_uid`, `text_1_uid` in place of the image columns.
"""


def push_to_hub(folder: str | os.PathLike, repo_id: str, token: str, private: bool = True) -> str:
    """Upload an exported dataset folder to the Hugging Face Hub dataset `repo_id` (created when missing).
    Returns the dataset's URL. huggingface_hub is imported here, only when pushing."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise InvalidInputError(f"repo_id must be 'ORG/NAME', got {repo_id!r}")
    if not token:
        raise InvalidInputError("token must be a Hugging Face token with write access (HF_TOKEN)")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                      commit_message="Vitrine preference export")
    return f"{api.endpoint}/datasets/{repo_id}"
