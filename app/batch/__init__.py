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

from app.batch.pairs import asset_event_id, generic_pairs, missing_pairs, segment_pairs
from app.batch.run import RayOptions, main, make_assets, make_features
from app.batch.workers import AssetMaker, MakerConfig, TextEncoder

__all__ = ["segment_pairs", "generic_pairs", "asset_event_id", "missing_pairs", "AssetMaker", "MakerConfig",
           "TextEncoder", "RayOptions", "make_assets", "make_features", "main"]
