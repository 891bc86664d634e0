"""`python -m app`: load everything once, then serve the Gradio app (what `make demo` ends in).

Host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, or $PORT (then bound to 0.0.0.0), via
`app.settings`. The first run trains the default model and caches it under the data dir; later runs load it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file (Spaces: `python app/__main__.py`) rather than `python -m app`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.serving.zerogpu import import_spaces  # noqa: E402 - light: importlib only

import_spaces()  # ZeroGPU: `spaces` before anything (torch, diffusers) can initialise CUDA


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument("--check", action="store_true", help="load everything, print the status, do not serve")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("vitrine")

    from app.settings import load_settings

    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if settings.durability_warning:
        log.warning("%s", settings.durability_warning)
    from app.serving.sync_runner import start_sync

    runner = start_sync(settings, say=log.info)  # restores an empty store from the sink before anything serves
    try:
        return _serve(args, settings, runner, started, log)
    finally:
        if runner is not None:
            runner.stop()  # one last sync: what arrived since the previous one


def _serve(args, settings, runner, started: float, log) -> int:
    from app.serving.services import build_services
    from recommenders.errors import ModelFitError

    try:
        svc = build_services(settings, say=log.info)
    except ModelFitError as exc:  # e.g. VITRINE_MODEL names a model too large for this catalogue on this machine
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if runner is not None:
        svc.durability = runner.status_rows  # the Status tab shows the last sync time and the lag
    if args.check:
        from app.web.status import status_sections

        for title, rows in status_sections(svc):
            print(f"== {title}")
            for name, value, note in rows:
                print(f"  {name}: {value}  {note}".rstrip())
        return 0

    from app.web.ui import build_demo
    from app.web.launch import enable_queue, launch_kwargs

    demo = build_demo(svc)
    enable_queue(demo, settings)
    log.info("serving at http://%s:%d (ready %.1f s after start)", settings.host, settings.port,
             time.perf_counter() - started)
    demo.launch(server_name=settings.host, server_port=settings.port, **launch_kwargs(svc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
