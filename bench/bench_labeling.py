"""Labeling speed (issue 26): a study participant labels pairs in a real browser with the keyboard only.

    PYTHONPATH=. .venv/bin/python -m bench.bench_labeling [--labels 30] [--repeat 1]

The app is served in-process (tiny test dataset of tests/app, fallback covers and captions, SQLite, as the browser
tests), a study is created with `--labels` pairs made for it, and Debian's Chromium (Playwright) opens its link
with a participant id and presses 1 / 2 by turns until the completion code (`tests/app/label_timing.py`, shared
with the browser test). Two figures per label:

- server: the time the app spends on a key press, from the handler's start to its return
  (`label_tab.label_key`: the label recorded, the next pair chosen and rendered), measured in the server;
- shown: in the page, from the key press to the next pair being on screen (a MutationObserver on the Label
  tab): the server time plus Gradio's queue round trip and the browser's render.

The first label of each run is kept (nothing is warmed up besides the page load). Prints one JSON line per run and
a summary with p50 / p95 of both; "ok" says whether the server p95 is within the target (150 ms, "next pair
shown <= 150 ms p95 after a label, server side"). Exits 1 when Chromium is missing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.bench_app import _percentile

ROOT = Path(__file__).resolve().parents[1]
TARGET_SERVER_P95_MS = 150.0
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [  # as tests/conftest.py: without the background-networking flags Chromium keeps dialing out
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _stats(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(_percentile(values, 50), 1), "p95_ms": round(_percentile(values, 95), 1),
            "max_ms": round(max(values), 1) if values else float("nan")}


class _HandlerTimer:
    """Wraps `label_tab.label_key` (the UI looks it up at each key press) and keeps each call's duration."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "_HandlerTimer":
        from app.web import label_tab

        self._original = original = label_tab.label_key

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                with self._lock:
                    self.ms.append(1000 * (time.perf_counter() - start))

        label_tab.label_key = timed
        return self

    def __exit__(self, *exc) -> None:
        from app.web import label_tab

        label_tab.label_key = self._original


def _run(browser, url: str, svc, labels: int, run: int) -> dict:
    from label_timing import install_timer, label_with_keys

    study = svc.labeling.create_study(f"Bench study {run}", "Press 1 or 2.", "own", labels, 0.0)
    made, seed = 0, 100 * run
    while made < labels:
        made += svc.labeling.make_pairs(12, seed=seed, study=study)
        seed += 1
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{url}?study={study.key}&PROLIFIC_PID=bench-{run}")
        page.wait_for_selector("#vt-side-a .vt-pair")
        install_timer(page)
        with _HandlerTimer() as server:
            start = time.perf_counter()
            shown = label_with_keys(page, labels, labels)
            wall_s = time.perf_counter() - start
            page.wait_for_selector("#vt-completion-code")
        code_ok = page.inner_text("#vt-completion-code") == study.completion_code
    finally:
        context.close()
    if len(server.ms) != labels:
        raise RuntimeError(f"expected {labels} key presses to reach the server, timed {len(server.ms)}")
    return {"bench": "labeling", "run": run, "labels": labels, "wall_s": round(wall_s, 2),
            "completion_code_shown": code_ok, "server": _stats(server.ms), "shown": _stats(shown),
            "server_ms": [round(x, 1) for x in server.ms], "shown_ms": [round(x, 1) for x in shown]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=30, help="labels per run (a study's quota), at least 20")
    parser.add_argument("--repeat", type=int, default=1, help="runs, each a new study and participant")
    args = parser.parse_args(argv)
    if args.labels < 20 or args.repeat < 1:
        parser.error("--labels must be at least 20 and --repeat at least 1")
    if not CHROMIUM.exists():
        print(json.dumps({"bench": "labeling", "error": f"Chromium not found at {CHROMIUM}"}))
        return 1
    for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}.items():
        os.environ.setdefault(key, value)
    sys.path[:0] = [str(ROOT / "tests" / "app"), str(ROOT / "tests")]  # the app tests' fixtures and their helpers
    import torch
    from playwright.sync_api import sync_playwright
    from vitrine_app_fixtures import free_port, make_services

    from app.web.launch import enable_queue, launch_kwargs
    from app.web.ui import build_demo

    torch.set_num_threads(1)
    svc = make_services(Path(tempfile.mkdtemp(prefix="bench-labeling-")))
    demo = build_demo(svc)
    enable_queue(demo, svc.settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_kwargs(svc))
    server_all, shown_all = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                for run in range(args.repeat):
                    result = _run(browser, f"http://127.0.0.1:{port}/", svc, args.labels, run)
                    server_all += result["server_ms"]
                    shown_all += result["shown_ms"]
                    print(json.dumps(result), flush=True)
            finally:
                browser.close()
    finally:
        demo.close()
        svc.close()
    server = _stats(server_all)
    print(json.dumps({"bench": "labeling", "summary": True, "labels": len(server_all), "server": server,
                      "shown": _stats(shown_all), "target_server_p95_ms": TARGET_SERVER_P95_MS,
                      "ok": server["p95_ms"] <= TARGET_SERVER_P95_MS, "loadavg": list(os.getloadavg())}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
