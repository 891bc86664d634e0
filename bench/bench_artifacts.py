"""What the model registry's blob-store artifacts cost: saving a retrained EASE (ml-100k) as one tar blob, and
loading it on another replica (fetch into its cache, unpack, `load_model`), to a local directory store and to a
remote one (memory://, fsspec's in-process store: the cost of packing and the fsspec path, not of a network).

    .venv/bin/python -m bench.bench_artifacts             # 5 repeats, medians
    .venv/bin/python -m bench.bench_artifacts --repeats 3

Prints one JSON line: the artifact's size, and per store the median seconds of save, of a cold load (another
replica's empty cache) and of a warm load (already unpacked: `load_model` only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_artifacts")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=Path(".vitrine"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from app.learning.artifacts import ModelArtifacts
    from generation.blobs import BlobStore
    from recommenders.data import load_dataset
    from recommenders.models import load_model
    from recommenders.training import train_model

    model = train_model(load_dataset("ml-100k", args.data_dir), "ease")
    out: dict = {"model": "ease", "dataset": "ml-100k", "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for store in ("local", "memory"):
            save, cold, warm = [], [], []
            for i in range(args.repeats):
                url = str(root / f"blobs-{i}") if store == "local" else f"memory://bench-{uuid.uuid4().hex[:8]}"
                writer = ModelArtifacts(BlobStore(url, cache_dir=root / f"w-cache-{store}-{i}"), root / f"w-{store}-{i}")
                start = time.perf_counter()
                key = writer.save_dir("recommender", "ease", 1, model.save)
                save.append(time.perf_counter() - start)
                reader = ModelArtifacts(BlobStore(url, cache_dir=root / f"r-cache-{store}-{i}"), root / f"r-{store}-{i}")
                start = time.perf_counter()
                loaded = load_model(reader.directory(key))
                cold.append(time.perf_counter() - start)
                start = time.perf_counter()
                load_model(reader.directory(key))
                warm.append(time.perf_counter() - start)
                assert loaded.recommend("1", 10)[0] == model.recommend("1", 10)[0]
            out["artifact_mb"] = round(writer.blobs.local_path(key).stat().st_size / 2**20, 1)
            out[store] = {"save_s": round(statistics.median(save), 3), "cold_load_s": round(statistics.median(cold), 3),
                          "warm_load_s": round(statistics.median(warm), 3)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
