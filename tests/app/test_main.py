"""`python -m app` as a subprocess on a fresh data dir: serves the page, caches the model, starts warm."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from vitrine_app_fixtures import free_port, make_tiny_dataset

ROOT = Path(__file__).resolve().parents[2]


def _write_folder(folder: Path) -> Path:
    ds = make_tiny_dataset()
    folder.mkdir(parents=True)
    items = ds.items.assign(genres=ds.items["genres"].map("|".join))[["item_id", "title", "genres", "year"]]
    items.to_csv(folder / "items.csv", index=False)
    ds.interactions.to_csv(folder / "interactions.csv", index=False)
    return folder


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VITRINE_", "GRADIO_", "PORT", "DATABASE_URL"))}
    env.update(
        VITRINE_DATA_DIR=str(tmp_path / "data"),
        VITRINE_DATASET=str(_write_folder(tmp_path / "byo")) if not (tmp_path / "byo").exists() else str(tmp_path / "byo"),
        VITRINE_COVER_MODEL="none",
        VITRINE_CAPTION_MODEL="none",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    return env


def test_serves_then_starts_from_the_cached_model(tmp_path):
    port = free_port()
    env = _env(tmp_path, port)
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline and status != 200:
            assert proc.poll() is None, (tmp_path / "app.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    status = response.status
                    page = response.read().decode()
            except OSError:
                time.sleep(0.3)
        assert status == 200 and "Vitrine" in page
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    from recommenders.models import DEFAULT_MODEL

    first = (tmp_path / "app.log").read_text()
    assert f"model {DEFAULT_MODEL}: trained" in first and "cached in" in first
    assert (tmp_path / "data" / "vitrine.db").is_file()
    # the second start loads the cached model and reports the fallbacks with how to enable the real ones
    check = subprocess.run([sys.executable, "-m", "app", "--check"], cwd=ROOT, env=_env(tmp_path, port),
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr[-2000:]
    assert f"model {DEFAULT_MODEL}: loaded from" in check.stderr
    assert "VITRINE_COVER_MODEL" in check.stdout and "SQLite (WAL)" in check.stdout


def test_the_queue_does_not_rebuild_its_analytics_after_every_event(monkeypatch):
    """Gradio re-summarises its last 10,000 events after each one by default (a pandas frame per request);
    the app's queue does it every 500 events, unless the operator set GRADIO_ANALYTICS_CACHE_FREQUENCY."""
    import gradio as gr

    from app.web.launch import ANALYTICS_CACHE_FREQUENCY, enable_queue

    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", raising=False)
    with gr.Blocks() as demo:
        gr.Markdown("x")
    assert enable_queue(demo)._queue.ANAYLTICS_CACHE_FREQUENCY == int(ANALYTICS_CACHE_FREQUENCY) == 500
    monkeypatch.setenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", "7")
    with gr.Blocks() as other:
        gr.Markdown("y")
    assert enable_queue(other)._queue.ANAYLTICS_CACHE_FREQUENCY == 7
