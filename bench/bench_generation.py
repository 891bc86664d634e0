"""Generation benchmarks: pipeline overhead over a bare diffusers call, cache hits, fallback, captions.

    .venv/bin/python -m bench.bench_generation                 # tiny models, CPU, 64x64 art
    .venv/bin/python -m bench.bench_generation --size 512      # tiny models at 512x512 (poster 512x768)
    .venv/bin/python -m bench.bench_generation --device cuda --size 512   # on a GPU

All figures use the tiny random models of generation.testing (built into a temp dir, loaded by path).
The overhead is measured interleaved (bare call, pipeline call, bare call, ...) so that load from other
jobs on a shared machine hits both sides alike; medians are reported, in wall time and in this process's
CPU time (which leaves out waiting for a core; only meaningful on CPU), and from the parts timed alone. Each pipeline call uses a fresh
seed, so every one is a cache miss that runs the model, composes the poster and writes PNG + JSON.
Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000.0, 3)


def _emit(name: str, **fields) -> None:
    print(json.dumps({"bench": f"generation.{name}", **fields}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_generation", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per figure (default 30)")
    parser.add_argument("--size", type=int, default=64, help="art size in pixels (default 64; poster is 1.5x tall)")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from diffusers import AutoPipelineForText2Image

    from generation.assets import Asset, asset_key
    from generation.captions import CaptionGenerator
    from generation.compose import compose_poster, render_fallback_cover
    from generation.covers import CoverGenerator
    from generation.loading import select_device
    from generation.profile import UserProfile
    from generation.prompts import ItemInfo, build_prompt
    from generation.testing import build_tiny_lm, build_tiny_sd

    device, dtype = select_device(args.device)
    item = ItemInfo("1", "Toy Story", 1995, ["Animation", "Children's", "Comedy"], "Toys come alive.")
    profile = UserProfile("u1", ["Star Wars", "Alien"], ["Sci-Fi", "Action"], ["cosmic vistas", "futuristic neon"])
    env = {
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "loadavg_1min_at_start": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        sd_dir = build_tiny_sd(tmp_path / "sd")
        lm_dir = build_tiny_lm(tmp_path / "lm")

        # 1. overhead of CoverGenerator.generate over a bare diffusers call on the same model
        covers = CoverGenerator(
            str(sd_dir), tmp_path / "assets", device=device, steps=args.steps, size=args.size, fallback_on_error=False
        ).load()
        bare = AutoPipelineForText2Image.from_pretrained(str(sd_dir), dtype=dtype).to(device)
        bare.set_progress_bar_config(disable=True)
        prompt = build_prompt(item, profile, 0.5).text

        def bare_call(seed: int) -> None:
            bare(prompt, num_inference_steps=args.steps, guidance_scale=0.0, height=args.size, width=args.size,
                 generator=torch.Generator().manual_seed(seed)).images[0]

        def sync() -> None:
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        for seed in range(3):  # warm-up both
            bare_call(seed)
            covers.generate(item, profile, seed=10_000 + seed)
        bare_t, pipe_t, bare_cpu, pipe_cpu = [], [], [], []
        for i in range(args.repeats):
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            bare_call(i)
            sync()
            t1, c1 = time.perf_counter(), time.process_time()
            assets = covers.generate(item, profile, seed=20_000 + i)
            sync()
            t2, c2 = time.perf_counter(), time.process_time()
            assert not assets[0].cache_hit
            bare_t.append(t1 - t0)
            pipe_t.append(t2 - t1)
            bare_cpu.append(c1 - c0)
            pipe_cpu.append(c2 - c1)
        bare_ms, pipe_ms = _median_ms(bare_t), _median_ms(pipe_t)
        bare_cpu_ms, pipe_cpu_ms = _median_ms(bare_cpu), _median_ms(pipe_cpu)
        _emit(
            "cover_overhead",
            size=args.size,
            steps=args.steps,
            repeats=args.repeats,
            bare_diffusers_ms=bare_ms,
            cover_generate_ms=pipe_ms,
            overhead_ms=round(pipe_ms - bare_ms, 3),
            overhead_pct=round(100.0 * (pipe_ms - bare_ms) / bare_ms, 2),
            # CPU time of this process: on a shared machine, time spent waiting for a core is left out
            bare_diffusers_cpu_ms=bare_cpu_ms,
            cover_generate_cpu_ms=pipe_cpu_ms,
            overhead_cpu_pct=round(100.0 * (pipe_cpu_ms - bare_cpu_ms) / bare_cpu_ms, 2),
            **env,
        )

        # 1b. the same overhead from its parts, timed alone (less exposed to noise from other jobs):
        # prompt + key + store lookup, poster composition, encoding + writing image and provenance
        art = bare(prompt, num_inference_steps=args.steps, guidance_scale=0.0, height=args.size, width=args.size,
                   generator=torch.Generator().manual_seed(0)).images[0]
        lookup_t, compose_t, store_t = [], [], []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            p = build_prompt(item, profile, 0.5)
            key = asset_key("cover", covers.key_payload(item, p, 30_000 + i))
            covers.store.get("cover", key, profile.user_id)
            t1 = time.perf_counter()
            poster = compose_poster(art, item.title, item.year)
            t2 = time.perf_counter()
            covers.store.put(Asset("cover", item.item_id, profile.user_id, "bench", False, p.text, "", i,
                                   {"image_format": covers.image_format}, content_hash=key), poster)
            t3 = time.perf_counter()
            lookup_t.append(t1 - t0)
            compose_t.append(t2 - t1)
            store_t.append(t3 - t2)
        parts = _median_ms(lookup_t) + _median_ms(compose_t) + _median_ms(store_t)
        _emit(
            "cover_overhead_parts",
            size=args.size,
            lookup_ms=_median_ms(lookup_t),
            compose_ms=_median_ms(compose_t),
            store_ms=_median_ms(store_t),
            sum_ms=round(parts, 3),
            pct_of_bare=round(100.0 * parts / bare_ms, 2),
            image_format=covers.image_format,
        )

        # 2. a cache hit: same request again
        covers.generate(item, profile, seed=7)
        hits = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            asset = covers.generate(item, profile, seed=7)[0]
            hits.append(time.perf_counter() - t0)
            assert asset.cache_hit
        _emit("cover_cache_hit", median_ms=_median_ms(hits), repeats=args.repeats, **env)

        # 3. the typographic fallback: render alone, and the whole generate (render + PNG + JSON)
        fallback = CoverGenerator(None, tmp_path / "fallback-assets", size=max(args.size, 512))
        render, full = [], []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            render_fallback_cover(item.title, item.year, item.genres, seed=i, width=fallback.width)
            t1 = time.perf_counter()
            fallback.generate(item, profile, seed=i)
            t2 = time.perf_counter()
            render.append(t1 - t0)
            full.append(t2 - t1)
        _emit("fallback_cover", width=fallback.width, render_ms=_median_ms(render),
              generate_ms=_median_ms(full), repeats=args.repeats)

        # 4. captions on the tiny LM (fresh seeds: every call runs the model), and the template alone
        captions = CaptionGenerator(str(lm_dir), tmp_path / "assets", device=device, fallback_on_error=False).load()
        captions.generate(item, profile, seed=0)
        lm_t = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            captions.generate(item, profile, seed=1 + i)
            lm_t.append(time.perf_counter() - t0)
        template = CaptionGenerator(None, tmp_path / "assets")
        tpl_t = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            template.generate(item, profile, seed=1 + i)
            tpl_t.append(time.perf_counter() - t0)
        _emit("caption", tiny_lm_ms=_median_ms(lm_t), max_new_tokens=captions.max_new_tokens,
              template_ms=_median_ms(tpl_t), repeats=args.repeats, **env)
    _emit("done", loadavg_1min_at_end=round(os.getloadavg()[0], 2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
