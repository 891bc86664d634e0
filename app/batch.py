"""Batch work on Ray: covers and captions ahead of traffic, and the catalogue's text features.

    python -m app.batch covers   [--dataset ml-100k] [--pairs segments|generic|PAIRS.csv] [--top-n 8] [--limit N]
                                 [--ray-address auto] [--actors N] [--batch-size 16]
    python -m app.batch captions ...                            (the same options)
    python -m app.batch features [--dataset ml-100k] [--ray-address auto] [--actors N] [--batch-size 256]
    python -m app.batch covers --in-process ...                 (no Ray: the same per-batch code in this process)

Settings (database, blob store, models, device, data dir) are the app's own (`app.settings`: the environment);
--dataset overrides VITRINE_DATASET. Without --ray-address a local Ray starts on this machine (all its CPUs, or
--num-cpus) and stops at the end; `--ray-address auto` joins the cluster this machine belongs to (`ray start
--head`, a KubeRay cluster). On a cluster of several machines the database must be PostgreSQL (DATABASE_URL) and
the blob store a shared URL (VITRINE_BLOB_URL), and every node needs the project at the same path with its
environment (the actors import `app.batch`; PYTHONPATH is set to this checkout for them).

How (Ray Data, after Ray's batch Stable Diffusion example): the work list becomes a `ray.data.Dataset` and
`map_batches(AssetMaker | TextEncoder, compute=ray.data.ActorPoolStrategy(size=N), batch_size=B, ...)` runs it on
a pool of N actors (`concurrency=` is deprecated in Ray 2.60; `compute=` names the pool). Each actor loads its model
once, in `__init__`, then calls the libraries per batch: `CoverGenerator.generate`, `CaptionGenerator.generate`,
`recommenders.features.encode_texts`. On a cluster with GPUs each actor holds one (`num_gpus=1`; N defaults to the
number of GPUs); otherwise the actors are CPU actors (`num_cpus=1`; N defaults to the cluster's CPUs).

Exactly once, and resumable:
- covers and captions are content-addressed: the generator files each one in the blob store under its content key
  (`generation.assets`) before its row is written; a file already there costs no model call (a cache hit).
- an actor records its batch's rows in one transaction, each with an event id derived from (kind, content key,
  user): recording one again is a replay (`annotation.store.record_asset`), never a second row.
- before starting, the driver drops the (user, item, kind) jobs that already have a row made with the slate seed
  (what the app's slates serve, `annotation.reads.shown_assets`): a rerun does only what is missing. A killed
  actor or driver loses nothing that was written; at worst a file is in the store without its row, and the rerun
  records it from a cache hit.
- features: the matrix goes to the app's own feature cache (`recommenders.features.text_cache_path` under
  `<data_dir>/features`, the file `compute_features` reads at start) in one atomic write at the end; when that
  file is there the job is done. A killed run leaves no file and is done again whole.

Which (user, item) pairs get a cover or a caption (`--pairs`):
- `segments` (the default): each user's preference segment is their strongest genre (the genre most frequent among
  the items they rated >= LIKE_RATING, ties by name); a segment's top-N items are the N its users liked most;
  every user of a segment gets the segment's top-N items they have not rated. Each is personalized for the user's
  own profile (`Catalog.profile`, from the dataset history) with the slate seed, so the app serves it the moment
  that user's slate shows one of those items, without the background worker. Users with no liked genre get none.
  (The app adds LLM keywords to a profile when its caption model is loaded; the batch does not, so a batch cover's
  prompt may differ from the one the app would write. It is still the one served: the app serves what is recorded.)
- `generic`: one generic cover or caption per item (no user), what a slate without a profile shows.
- a CSV file with columns user_id,item_id (an empty user_id: a generic one).
--limit keeps the first N pairs (users in id order, a user's items by segment rank).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from app.serving.assets import SLATE_SEED
from app.serving.catalog import LIKE_RATING
from app.settings import REPO_ROOT, Settings, load_settings

if TYPE_CHECKING:  # pragma: no cover - types only
    from recommenders.data import Dataset

log = logging.getLogger("vitrine.batch")

__all__ = ["segment_pairs", "generic_pairs", "asset_event_id", "missing_pairs", "AssetMaker", "TextEncoder",
           "make_assets", "make_features", "main"]

KINDS = ("covers", "captions")
DEFAULT_TOP_N = 8  # a slate's length: the segment's first page
DEFAULT_BATCH = {"covers": 16, "captions": 16, "features": 256}  # rows per actor call and per transaction
_EVENT_NAMESPACE = uuid.UUID("0c7a1d3e-6b52-4f0e-9a51-7d2b8e4c1f60")


# -- which pairs --------------------------------------------------------------------------------------------------


def segment_pairs(dataset: "Dataset", top_n: int = DEFAULT_TOP_N, like_rating: float = LIKE_RATING
                  ) -> list[tuple[str, str]]:
    """(user_id, item_id): each user with the top-N items of their preference segment they have not rated (see the
    module docstring). Users in id order, a user's items by the segment's rank."""
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise ValueError(f"top_n must be an int >= 1, got {top_n!r}")
    inter = dataset.interactions.assign(user_id=lambda d: d["user_id"].astype(str),
                                        item_id=lambda d: d["item_id"].astype(str))
    genres = dict(zip(dataset.items["item_id"].astype(str), dataset.items["genres"]))
    liked = inter[inter["rating"] >= like_rating]
    by_user: dict[str, Counter] = {}
    for user_id, item_id in zip(liked["user_id"], liked["item_id"]):
        by_user.setdefault(user_id, Counter()).update(genres.get(item_id) or [])
    segment = {u: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for u, c in by_user.items() if c}
    liked = liked[liked["user_id"].isin(segment)]
    top: dict[str, list[str]] = {}
    for name, group in liked.assign(segment=liked["user_id"].map(segment)).groupby("segment"):
        counts = group.groupby("item_id").size().reset_index(name="likes")
        counts = counts.sort_values(["likes", "item_id"], ascending=[False, True], kind="stable")
        top[name] = counts["item_id"].tolist()  # every liked item, most liked first; unrated ones are cut below
    rated = inter.groupby("user_id")["item_id"].agg(set).to_dict()
    out = []
    for user_id in sorted(segment, key=_id_order):
        seen = rated.get(user_id, set())
        out.extend((user_id, item_id) for item_id in [i for i in top[segment[user_id]] if i not in seen][:top_n])
    return out


def generic_pairs(dataset: "Dataset") -> list[tuple[None, str]]:
    """(None, item_id) for every item, in catalogue order: the generic cover or caption of each."""
    return [(None, str(item_id)) for item_id in dataset.items["item_id"]]


def _id_order(user_id: str) -> tuple:
    return (0, int(user_id), "") if user_id.isdigit() else (1, 0, user_id)


def _file_pairs(path: Path, dataset: "Dataset") -> list[tuple[str | None, str]]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frame.columns[:2]) != ["user_id", "item_id"]:
        raise ValueError(f"--pairs {path}: expected a CSV with columns user_id,item_id, got {list(frame.columns)}")
    items = set(dataset.items["item_id"].astype(str))
    users = set(dataset.users["user_id"].astype(str)) | set(dataset.interactions["user_id"].astype(str))
    unknown_items = sorted(set(frame["item_id"]) - items)
    unknown_users = sorted(set(frame["user_id"]) - users - {""})
    if unknown_items or unknown_users:
        raise ValueError(f"--pairs {path}: unknown items {unknown_items[:5]} / users {unknown_users[:5]} "
                         f"(users and items must be the dataset's)")
    return [(u or None, i) for u, i in zip(frame["user_id"], frame["item_id"])]


# -- exactly once ----------------------------------------------------------------------------------------------


def asset_event_id(kind: str, content_hash: str, user_id: str | None) -> str:
    """The event id of a batch-made asset's row: the same asset for the same user is always the same event."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{kind}:{content_hash}:{user_id or ''}"))


def missing_pairs(Session, pairs: Sequence[tuple[str | None, str]], kind: str) -> list[tuple[str | None, str]]:
    """The pairs that have no `kind` ("cover"/"caption") row made with the slate seed yet, in their order."""
    from sqlalchemy import select

    from annotation.models import GeneratedAsset

    done: set[tuple[str | None, str]] = set()
    items = sorted({item_id for _, item_id in pairs})
    with Session() as s:
        for start in range(0, len(items), 500):
            chunk = items[start : start + 500]
            done.update((user_id, item_id) for user_id, item_id in s.execute(
                select(GeneratedAsset.user_id, GeneratedAsset.item_id)
                .where(GeneratedAsset.kind == kind, GeneratedAsset.seed == SLATE_SEED,
                       GeneratedAsset.item_id.in_(chunk))))
    return [pair for pair in pairs if pair not in done]


# -- the per-batch work (a Ray actor, or a plain object in process) ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MakerConfig:
    """What an actor needs to build its generator and open the database: plain data, shipped to every actor."""

    kind: str  # "cover" | "caption"
    model: str | None
    database_url: str
    blob_location: str
    blob_cache_dir: str | None
    device: str
    allow_network: bool
    domain: Any  # the dataset's domain spec (generation.domain.Domain.from_spec)
    init_strength: float | None
    cover_size: int | None = None  # None: the generator's default (512, what the app makes)


class AssetMaker:
    """One cover or caption generator, loaded once; a call makes a batch's assets (files in the blob store by
    content key) and records them in one transaction. Input columns: user_id ("" for generic), item (ItemInfo as
    JSON), profile (UserProfile as JSON, "" for generic). Output: user_id, item_id, asset_id, cache_hit, fallback,
    latency_ms."""

    def __init__(self, config: MakerConfig) -> None:
        from annotation.db import make_engine, make_session_factory
        from generation.blobs import BlobStore
        from generation.domain import Domain

        self.config = config
        blobs = BlobStore(config.blob_location, cache_dir=config.blob_cache_dir)
        domain = Domain.from_spec(config.domain)
        if config.kind == "cover":
            from generation.covers import CoverGenerator

            size = {} if config.cover_size is None else {"size": config.cover_size}
            self.generator = CoverGenerator(config.model, blobs, device=config.device, domain=domain,
                                            allow_network=config.allow_network,
                                            init_strength=config.init_strength, **size).load()
        else:
            from generation.captions import CaptionGenerator

            self.generator = CaptionGenerator(config.model, blobs, device=config.device, domain=domain,
                                              allow_network=config.allow_network).load()
        self.engine = make_engine(config.database_url)
        self.Session = make_session_factory(self.engine)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from annotation import store
        from generation.profile import UserProfile
        from generation.prompts import ItemInfo

        made = []
        for item_json, profile_json in zip(batch["item"], batch["profile"]):
            item = ItemInfo(**json.loads(item_json))
            profile = UserProfile(**json.loads(profile_json)) if profile_json else None
            if self.config.kind == "cover":
                made.append(self.generator.generate(item, profile, n=1, seed=SLATE_SEED)[0])
            else:
                made.append(self.generator.generate(item, profile, seed=SLATE_SEED))
        with self.Session() as s, s.begin():
            for user_id in sorted({a.user_id for a in made if a.user_id is not None}):
                store.ensure_user(s, user_id)
            ids = [int(store.record_asset(s, a.to_dict(), event_id=asset_event_id(a.kind, a.content_hash, a.user_id)).id)
                   for a in made]
        return {"user_id": np.array([a.user_id or "" for a in made], dtype=object),
                "item_id": np.array([a.item_id for a in made], dtype=object),
                "asset_id": np.array(ids, dtype=np.int64),
                "cache_hit": np.array([a.cache_hit for a in made], dtype=bool),
                "fallback": np.array([a.fallback for a in made], dtype=bool),
                "latency_ms": np.array([a.latency_ms for a in made], dtype=np.float64)}


class TextEncoder:
    """The sentence encoder, loaded once; a call embeds a batch. Input: row, text. Output: row, embedding."""

    def __init__(self, text_model: str | None, device: str = "cpu") -> None:
        from recommenders.features import load_text_encoder

        self.encoder = load_text_encoder(text_model, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from recommenders.features import encode_texts

        return {"row": batch["row"], "embedding": encode_texts(list(batch["text"]), encoder=self.encoder)}


# -- the drivers ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RayOptions:
    """Where and how wide: `address` None starts a local Ray (`num_cpus`, default all) for the run; `in_process`
    skips Ray (the same per-batch calls, one after another, in this process)."""

    address: str | None = None
    actors: int | None = None  # None: one per GPU on a GPU cluster, else one per CPU
    num_cpus: int | None = None  # local Ray only
    in_process: bool = False
    # filled in: ray_start_s (a local Ray's start), run_s (the whole run), first_batch_s (until the first batch came
    # back: actors started and their models loaded), actors
    timings: dict[str, float] = dataclasses.field(default_factory=dict)


def _chunks(frame: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [frame.iloc[start : start + size].reset_index(drop=True) for start in range(0, len(frame), size)]


def _run(frame: pd.DataFrame, fn_class: type, make_args: Callable[[bool], tuple], batch_size: int,
         options: RayOptions, use_gpu: bool) -> Iterator[dict[str, np.ndarray]]:
    """The batches of `fn_class(*make_args(gpu))` over `frame` (gpu: whether each actor holds a GPU): on a Ray
    actor pool, or in this process."""
    chunks = _chunks(frame, batch_size)
    if options.in_process:
        started = time.perf_counter()
        fn = fn_class(*make_args(False))
        for chunk in chunks:
            out = fn({c: chunk[c].to_numpy() for c in chunk.columns})
            options.timings.setdefault("first_batch_s", time.perf_counter() - started)
            yield out
        options.timings["run_s"] = time.perf_counter() - started
        return
    import ray

    started_here = False
    if not ray.is_initialized():
        t0 = time.perf_counter()
        # the actors import this project: they get this checkout on their path (a cluster's nodes need it there too)
        runtime_env = {"env_vars": {"PYTHONPATH": str(REPO_ROOT), "TOKENIZERS_PARALLELISM": "false"}}
        if options.address is None:
            ray.init(num_cpus=options.num_cpus, include_dashboard=False, runtime_env=runtime_env,
                     log_to_driver=False)
        else:
            ray.init(address=options.address, runtime_env=runtime_env, log_to_driver=False)
        options.timings["ray_start_s"] = time.perf_counter() - t0
        started_here = True
    try:
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if use_gpu else 0
        actors = min(options.actors or max(1, gpus or int(resources.get("CPU", 1))), len(chunks))
        per_actor = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        started = time.perf_counter()
        ds = ray.data.from_pandas(chunks).map_batches(
            fn_class, fn_constructor_args=make_args(bool(gpus)), batch_size=batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors), **per_actor)
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            options.timings.setdefault("first_batch_s", time.perf_counter() - started)  # actors up, models loaded
            yield out
        options.timings["run_s"] = time.perf_counter() - started
        options.timings["actors"] = actors
    finally:
        if started_here:
            ray.shutdown()


def _load(settings: Settings, dataset: "Dataset | None") -> "Dataset":
    if dataset is not None:
        return dataset
    from recommenders.data import load_dataset

    return load_dataset(settings.dataset, settings.data_dir)


def make_assets(settings: Settings, kind: str, pairs: str | Sequence[tuple[str | None, str]] = "segments", *,
                dataset: "Dataset | None" = None, top_n: int = DEFAULT_TOP_N, limit: int | None = None,
                batch_size: int | None = None, cover_size: int | None = None, options: RayOptions | None = None
                ) -> dict[str, Any]:
    """Make and record the covers or captions (`kind`) of `pairs` ("segments", "generic", a CSV path or a list of
    (user_id or None, item_id)) that are not recorded yet; returns a summary (counts and timings). cover_size: the
    covers' art in pixels (default: the generator's, as the app makes them)."""
    from annotation import store
    from annotation.db import make_engine, make_session_factory, upgrade
    from app.serving.catalog import Catalog
    from generation.domain import Domain

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    options = options or RayOptions()
    batch_size = batch_size or DEFAULT_BATCH[kind]
    dataset = _load(settings, dataset)
    if isinstance(pairs, str):
        pairs = (segment_pairs(dataset, top_n) if pairs == "segments" else generic_pairs(dataset)
                 if pairs == "generic" else _file_pairs(Path(pairs), dataset))
    pairs = list(pairs)[:limit] if limit is not None else list(pairs)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        Session = make_session_factory(engine)
        with Session() as s, s.begin():
            store.sync_items(s, dataset.items)
        todo = missing_pairs(Session, pairs, kind[:-1])
    finally:
        engine.dispose()
    summary: dict[str, Any] = {"kind": kind, "pairs": len(pairs), "already_recorded": len(pairs) - len(todo),
                               "made": 0, "cache_hits": 0, "fallback": 0}
    if not todo:
        return summary
    domain = Domain.from_spec(dataset.domain)
    catalog = Catalog(dataset, None, domain=domain)  # profiles from the dataset history (no database, no LLM)
    profiles: dict[str, str] = {}
    rows = []
    for user_id, item_id in todo:
        if user_id is not None and user_id not in profiles:
            profiles[user_id] = json.dumps(dataclasses.asdict(catalog.profile(user_id)))
        rows.append({"user_id": user_id or "", "item": json.dumps(dataclasses.asdict(catalog.item_info(item_id))),
                     "profile": profiles.get(user_id, "") if user_id else ""})
    config = MakerConfig(
        kind=kind[:-1], model=settings.cover_model if kind == "covers" else settings.caption_model,
        database_url=settings.database_url, blob_location=settings.blob_location,
        blob_cache_dir=str(settings.blob_cache_dir) if settings.blob_cache_dir else None, device=settings.device,
        allow_network=settings.allow_network, domain=dataset.domain,
        init_strength=settings.init_strength if dataset.has_images else None, cover_size=cover_size)
    for out in _run(pd.DataFrame(rows), AssetMaker, lambda gpu: (config,), batch_size, options,
                    use_gpu=settings.device != "cpu"):
        summary["made"] += len(out["asset_id"])
        summary["cache_hits"] += int(np.sum(out["cache_hit"]))
        summary["fallback"] += int(np.sum(out["fallback"]))
    summary.update({k: round(v, 3) for k, v in options.timings.items()})
    return summary


def make_features(settings: Settings, *, dataset: "Dataset | None" = None, batch_size: int | None = None,
                  options: RayOptions | None = None) -> dict[str, Any]:
    """The catalogue's text features, into the app's feature cache (see the module docstring); a summary."""
    from recommenders.features import save_features, text_cache_path

    options = options or RayOptions()
    dataset = _load(settings, dataset)
    path = text_cache_path(dataset, settings.data_dir / "features", settings.text_model)
    summary: dict[str, Any] = {"kind": "features", "items": len(dataset.items), "path": str(path)}
    if path.is_file():
        return summary | {"already_computed": True}
    frame = pd.DataFrame({"row": np.arange(len(dataset.items)), "text": dataset.items["text"].astype(str).tolist()})
    # a GPU actor (num_gpus=1) sees its one GPU as cuda:0; otherwise the encoder runs on the CPU
    make_args = lambda gpu: (settings.text_model, "cuda" if gpu else "cpu")  # noqa: E731
    out: np.ndarray | None = None
    for batch in _run(frame, TextEncoder, make_args, batch_size or DEFAULT_BATCH["features"], options,
                      use_gpu=settings.device != "cpu"):
        embedding = np.asarray(batch["embedding"], dtype=np.float32)
        if out is None:
            out = np.zeros((len(frame), embedding.shape[1]), dtype=np.float32)
        out[np.asarray(batch["row"], dtype=np.int64)] = embedding
    assert out is not None
    save_features(path, out)
    return summary | {"already_computed": False, "dim": int(out.shape[1])} | {
        k: round(v, 3) for k, v in options.timings.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("job", choices=("covers", "captions", "features"))
    parser.add_argument("--dataset", default=None, help="built-in name or folder (default: VITRINE_DATASET)")
    parser.add_argument("--pairs", default="segments", help="segments | generic | a CSV of user_id,item_id")
    parser.add_argument("--top-n", type=int, default=DEFAULT_TOP_N, help="items per segment (--pairs segments)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many pairs")
    parser.add_argument("--ray-address", default=None, help="a Ray cluster ('auto', 'ray://host:10001', ...)")
    parser.add_argument("--actors", type=int, default=None, help="actor pool size (default: GPUs, else CPUs)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per actor call")
    parser.add_argument("--cover-size", type=int, default=None, help="cover art pixels (default: the app's, 512)")
    parser.add_argument("--in-process", action="store_true", help="no Ray: the same per-batch calls, here")
    args = parser.parse_args(argv)
    for name in ("top_n", "limit", "actors", "num_cpus", "batch_size", "cover_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.in_process and (args.ray_address or args.actors):
        parser.error("--in-process runs without Ray: drop --ray-address/--actors")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings()
    if args.dataset:
        settings = dataclasses.replace(settings, dataset=args.dataset)
    options = RayOptions(address=args.ray_address, actors=args.actors, num_cpus=args.num_cpus,
                         in_process=args.in_process)
    started = time.perf_counter()
    if args.job == "features":
        summary = make_features(settings, batch_size=args.batch_size, options=options)
    else:
        summary = make_assets(settings, args.job, args.pairs, top_n=args.top_n, limit=args.limit,
                              batch_size=args.batch_size, cover_size=args.cover_size, options=options)
    summary["total_s"] = round(time.perf_counter() - started, 3)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
