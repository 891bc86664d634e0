"""The drivers: `make_assets` and `make_features` run the per-batch work (`app.batch.workers`) over a work list on
a Ray actor pool (or in this process), and `main` is `python -m app.batch`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from app.batch.pairs import DEFAULT_TOP_N, file_pairs, generic_pairs, missing_pairs, segment_pairs
from app.batch.workers import AssetMaker, MakerConfig, TextEncoder
from app.settings import REPO_ROOT, Settings, load_settings

if TYPE_CHECKING:  # pragma: no cover - types only
    from recommenders.data import Dataset

__all__ = ["RayOptions", "main", "make_assets", "make_features"]

log = logging.getLogger("vitrine.batch")

KINDS = ("covers", "captions")
DEFAULT_BATCH = {"covers": 16, "captions": 16, "features": 256}  # rows per actor call and per transaction


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
                 if pairs == "generic" else file_pairs(Path(pairs), dataset))
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
        init_strength=settings.init_strength if dataset.has_images else None, cover_size=cover_size,
        caption_runtime=settings.caption_runtime)
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
    parser = argparse.ArgumentParser(prog="python -m app.batch", description=(
        "Batch work on Ray: covers and captions ahead of traffic, and the catalogue's text features (see app.batch)."))
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

