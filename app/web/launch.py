"""How the Blocks is served: `enable_queue` (Gradio's queue with this app's bounds and input checks) and
`launch_kwargs` (what `demo.launch` needs beyond host and port: the ASGI middlewares of `app.web.middleware`, the
picture routes, theme, CSS and the page's scripts)."""

from __future__ import annotations

import os
from typing import Any

import gradio as gr

from app.serving.services import Services
from app.settings import Settings
from app.web.cards import CSS
from app.web.study import CSS as STUDY_CSS
from app.web.page_scripts import HEAD

__all__ = ["ANALYTICS_CACHE_FREQUENCY", "enable_queue", "launch_kwargs"]

# Gradio's queue rebuilds a pandas summary of its last 10,000 events (for /monitoring) after every event by
# default: at a few hundred events it costs more CPU than the request itself. Every 500 events is plenty.
ANALYTICS_CACHE_FREQUENCY = "500"


def enable_queue(demo: gr.Blocks, settings: Settings | None = None, default_concurrency_limit: int = 8) -> gr.Blocks:
    """`demo.queue(...)` with this app's settings (an environment value set by the operator wins), bounded by
    `app.web.guards.bound_queue`: `settings.queue_max` events waiting in all, and with `settings` the per-client bounds
    (`queue_per_client` waiting events, `rate_join` joins) keyed as the rate limits are (`trust_proxy`). The files
    Gradio keeps in its temp dir for `demo` (uploads, file outputs) are deleted at `settings.temp_age_s`. Every
    event's inputs are checked (`app.web.inputs.guard_inputs`), and rejections are logged at most
    `settings.log_rejections_per_minute` lines a minute."""
    from app.web.guards import bound_queue, rejections
    from app.web.inputs import guard_inputs

    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", ANALYTICS_CACHE_FREQUENCY)
    guard_inputs(demo)
    rejections.per_minute = (settings or Settings).log_rejections_per_minute
    age = (settings or Settings).temp_age_s
    demo.delete_cache = (min(age, 600), age)  # swept every 10 min at most; read when the server app is made
    # api_open=False: no event runs outside the queue (Gradio opens /gradio_api/run/<name> to direct POSTs when
    # not on a Space, which skipped every bound below)
    demo.queue(default_concurrency_limit=default_concurrency_limit, api_open=False)
    if settings is None:
        bound_queue(demo, max_size=Settings.queue_max)
    else:
        bound_queue(demo, max_size=settings.queue_max, per_client=settings.queue_per_client,
                    join_rate=settings.rate_join, trust_proxy=settings.trust_proxy)
    return demo


def launch_kwargs(svc: Services) -> dict[str, Any]:
    """What `demo.launch` needs beyond host and port: assets served from the data dir, theme, CSS, shortcuts."""
    from starlette.middleware import Middleware

    from app.web.middleware import ApiCalls, BodyLimit, ClosedRoutes, EncodableJson, QueueReads, UploadGate
    from app.web.routes import routes

    settings = svc.settings
    limit = settings.max_body_bytes
    uploads = Middleware(UploadGate, bytes_per_hour=int(settings.upload_mb_per_hour * (1 << 20)), max_body_bytes=limit,
                         trust_proxy=settings.trust_proxy)
    return {
        # Create's trial covers (shown by Gradio's gallery); cards, pairs and the API use app.web.routes instead
        "allowed_paths": [*map(str, svc.assets.public_dirs)],  # cover images only, never provenance
        # 413 for a larger body; 403 for an upload (no event takes a file); 400 for JSON text that cannot be encoded;
        # 404 for a read of the queue naming nothing it holds, and for Gradio's /monitoring
        "app_kwargs": {"middleware": [Middleware(ClosedRoutes), Middleware(BodyLimit, max_bytes=limit), uploads,
                                      Middleware(EncodableJson), Middleware(QueueReads), Middleware(ApiCalls)],
                       "routes": routes(svc)},  # covers by blob key, items' own pictures by item id
        "max_file_size": limit,  # the cap of an upload, were one ever taken
        "css": CSS + STUDY_CSS,  # the study banner and completion box (app.web.study) too
        "head": HEAD,
        # system fonts: the default theme fonts come from Google Fonts, which an offline machine cannot reach
        "theme": gr.themes.Soft(primary_hue="indigo", neutral_hue="slate",
                                font=[gr.themes.Font(f) for f in ("ui-sans-serif", "system-ui", "sans-serif")],
                                font_mono=[gr.themes.Font(f) for f in ("ui-monospace", "monospace")]),
        "footer_links": ["api", "gradio"],
        "show_error": False,  # only gr.Error messages reach a person; anything else is logged, not shown
        # the root URL in the page and /config: the configured public address, never the request's Host header
        **({"root_path": settings.public_url} if settings.public_url else {}),
    }
