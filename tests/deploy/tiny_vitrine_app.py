"""The real Vitrine app over the tiny synthetic catalog of the app tests, for `scripts/serve_all.py --app-cmd`:
the whole Gradio UI (Discover, Create, Label, Status) in seconds, where `python -m app` needs a minute of text
features on a fresh data dir. Honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT like `python -m app`, and takes
the rest of its settings from the environment the same way (VITRINE_TRUST_PROXY, VITRINE_PUBLIC_URL, ...)."""

import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS.parent), str(TESTS), str(TESTS / "app")]

from app.settings import load_settings  # noqa: E402
from vitrine_app_fixtures import make_settings, make_services  # noqa: E402, F401

data_dir = Path(os.environ.get("VITRINE_DATA_DIR") or tempfile.mkdtemp(prefix="tiny-vitrine-"))
env = load_settings()
tiny = make_settings(data_dir)
settings = replace(tiny, host=env.host, port=env.port, trust_proxy=env.trust_proxy, public_url=env.public_url,
                   admin_password=env.admin_password, admin_open=env.admin_password is None)

from app.serving.services import build_services  # noqa: E402
from app.web.ui import build_demo  # noqa: E402
from app.web.launch import enable_queue, launch_kwargs  # noqa: E402
from vitrine_app_fixtures import make_tiny_dataset, make_tiny_features  # noqa: E402

dataset = make_tiny_dataset()
svc = build_services(settings, dataset=dataset, features=make_tiny_features(dataset), say=print)
demo = build_demo(svc)
enable_queue(demo, settings)
demo.launch(server_name=settings.host, server_port=settings.port, **launch_kwargs(svc))
