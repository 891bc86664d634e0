"""How soon an open Discover page shows real captions: the page's first answer (template captions) and then,
card by card, the time until the background worker's caption arrives, as Discover's `fill_assets` sees it.

    .venv/bin/python -m bench.bench_card_captions --data-dir DIR --visitors 4

The app's own services run in this process on a copy of DIR (a warm ml-100k data dir: `python -m app --prepare`
made it, or a data dir of raw data: the models are then fitted at start), with the default caption model (`VITRINE_CAPTION_MODEL`, the packaged SmolLM2 on a fresh machine) on
the app's runtime (`--runtime`, default the app's `auto`) and the typographic cover fallback (no diffusion
weights reach this machine; covers take milliseconds). One visitor at a time, each a dataset user with
likes: the page of PAGE_SIZE cards is asked for as Discover asks (`Slates.page`, then `Slates.prefetch` of
the next page), then the made assets are polled every `--poll-s` as `fill_assets` polls them. Reported: the
first page's latency, and per card the seconds from the page's request to its caption, and whether the model
wrote it (the rest are the labelled template after every candidate failed the checks).

The visitors come one right after another (the next asks for a page as soon as the previous one's cards all
have captions), so each page's cards share the worker with the previous visitors' prefetched next pages.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(round(q * (len(values) - 1))))], 3)


def _services(data_dir: Path, runtime: str):
    os.environ.update(VITRINE_DATA_DIR=str(data_dir), VITRINE_COVER_MODEL="none", VITRINE_CAPTION_RUNTIME=runtime)
    import torch

    torch.set_num_threads(1)
    from app.serving.services import build_services
    from app.settings import load_settings

    return build_services(load_settings(), say=lambda m: None)


def run(data_dir: Path, visitors: int, runtime: str, poll_s: float, max_s: float) -> dict:
    from app.web.state import PAGE_SIZE

    start = time.perf_counter()
    svc = _services(data_dir, runtime)
    try:
        startup_s = time.perf_counter() - start
        captions = svc.assets.captions
        users = [u for u in svc.catalog.dataset.interactions["user_id"].astype(str).unique()[:200]]
        choice = svc.ranking.parse("")
        page_ms, card_s, model_cards, template_cards, missing = [], [], 0, 0, 0
        per_visitor = []
        for user_id in users[::max(1, len(users) // visitors)][:visitors]:
            visit = svc.events.visitor(user_id)
            t0 = time.perf_counter()
            page = svc.slates.page(visit, choice, PAGE_SIZE, seed=0, tab="bench")
            page_ms.append(1000 * (time.perf_counter() - t0))
            svc.slates.prefetch(visit, page, PAGE_SIZE)
            pending, arrived = list(page.pending), {}
            while pending and time.perf_counter() - t0 < max_s:
                _, made, still = svc.assets.made(user_id, pending)
                for item_id, asset in made.items():
                    if item_id not in arrived:
                        arrived[item_id] = (time.perf_counter() - t0, not asset["fallback"])
                pending = [i for i in pending if i not in arrived]
                if pending:
                    time.sleep(poll_s)
            times = sorted(t for t, _ in arrived.values())
            model_cards += sum(1 for _, m in arrived.values() if m)
            template_cards += sum(1 for _, m in arrived.values() if not m)
            missing += len(pending)
            card_s += times
            per_visitor.append({"user_id": user_id, "page_ms": round(page_ms[-1], 1), "cards": len(page.rows),
                                "pending_at_first_answer":
                                len(page.pending), "first_caption_s": _pct(times, 0.0), "last_caption_s":
                                _pct(times, 1.0), "from_model": sum(1 for _, m in arrived.values() if m)})
        return {"bench": "card_captions", "runtime": captions.runtime_used, "model": captions.model,
                "fallback_generator": captions.uses_fallback, "page_size": PAGE_SIZE, "visitors": per_visitor,
                "startup_s": round(startup_s, 1), "first_page_ms": {"p50": _pct(page_ms, 0.5),
                                                                   "p95": _pct(page_ms, 0.95)},
                "card_caption_s": {"p50": _pct(card_s, 0.5), "p95": _pct(card_s, 0.95), "max": _pct(card_s, 1.0)},
                "cards_within_30s": sum(1 for t in card_s if t <= 30.0), "cards_by_model": model_cards, "cards_by_template": template_cards, "cards_missing": missing,
                "max_s": max_s, "load_avg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    finally:
        svc.close()
        svc.assets.worker.close(wait_s=120)  # the item under way is finished before the data dir goes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("VITRINE_DATA_DIR", ".vitrine"),
                        help="a warm data dir (copied: the run never writes to it)")
    parser.add_argument("--visitors", type=int, default=4)
    parser.add_argument("--runtime", default="auto", choices=["auto", "onnx", "transformers"])
    parser.add_argument("--poll-s", type=float, default=0.25, help="how often the page looks (as Discover does)")
    parser.add_argument("--max-s", type=float, default=300.0, help="give up on a card after this long")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:  # the worker may still be writing
        copy = Path(tmp) / "data"
        shutil.copytree(args.data_dir, copy, ignore=shutil.ignore_patterns("assets", "blobs", "*.db-wal", "*.db-shm"))
        print(json.dumps(run(copy, args.visitors, args.runtime, args.poll_s, args.max_s)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
