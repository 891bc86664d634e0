"""The Status tab: what is loaded and counted, and the admin actions (retrain, add items, create label pairs),
which need VITRINE_ADMIN_PASSWORD or the explicit opt-in VITRINE_ADMIN_OPEN=1."""

from __future__ import annotations

import logging
import time
from typing import Any

import gradio as gr

from app import checks
from app.serving.services import Services
from app.web.cards import markdown_escape, render_status
from app.web.errors import user_errors
from app.web.guards import password_ok
from app.web.status import status_sections

log = logging.getLogger("vitrine")


PREFERENCE_MODEL = "preference model"  # the Retrain choice that trains the reward model from labels and picks


def status_html(svc: Services) -> str:
    """The Status tab, read now (it says when)."""
    return render_status(status_sections(svc), read_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))


def check_admin(svc: Services, password: object, request: Any = None) -> None:
    """The Status tab's actions (retrain, create label pairs) cost minutes of CPU and change what everyone
    sees. They need VITRINE_ADMIN_PASSWORD, or the explicit opt-in VITRINE_ADMIN_OPEN=1 (which `make demo` sets);
    anything else is refused. The bind address proves nothing: behind a proxy a loopback-bound app is public."""
    expected = svc.settings.admin_password
    if expected is None:
        if not svc.settings.admin_open:
            raise gr.Error("Admin actions are off: set VITRINE_ADMIN_PASSWORD to enable them with a password, or "
                           "VITRINE_ADMIN_OPEN=1 on a private machine.")
        return
    if not password_ok(svc, "admin", password, expected, request):
        raise gr.Error("admin password: expected the admin password (VITRINE_ADMIN_PASSWORD), got a wrong one")


@user_errors
def retrain(svc: Services, model: str | None, password: str | None = None, request: Any = None) -> tuple[str, str]:
    """Retrain a served model on the dataset plus the logged feedback (an admin action: `check_admin`)."""
    check_admin(svc, password, request)
    if not model:
        raise gr.Error("Pick a model to retrain.")
    if model == PREFERENCE_MODEL:
        trained = svc.train_preference()
        accuracy = trained["metrics"].get("heldout_accuracy", float("nan"))
        verdict = ("promoted: it now ranks the best-of-N candidates" if trained["promoted"]
                   else "rejected by the gate; the served version stays")
        return (f"Trained the preference model, version {trained['version']}, in {trained['seconds']} s: held-out "
                f"pair accuracy {accuracy:.3f}; {verdict}. {markdown_escape(trained['reason'])}"), status_html(svc)
    result = svc.retrain(model)
    verdict = "promoted and served" if result.promoted else "rejected by the gate; the served version stays"
    msg = (f"Retrained **{markdown_escape(result.name)}** version {result.version} on the logs up to event "
           f"{result.watermark or 0} in {result.seconds.get('total', 0):.1f} s: {verdict}. "
           f"{markdown_escape(result.reason)} Time: {markdown_escape(result.timing())}.")
    return msg, status_html(svc)


@user_errors
def add_items(svc: Services, folder: str | None, password: str | None = None, request: Any = None) -> tuple[str, str]:
    """Grow the catalog from a folder on the server (an admin action): the new items are served at once, ranked
    by the content models now and by the ID models after their next retrain (`app.serving.growth`)."""
    check_admin(svc, password, request)
    if svc.growth is None:
        raise gr.Error("This app does not follow its catalog; restart it to serve new items.")
    done = svc.growth.add_items(folder)
    added = done.get("added", [])
    msg = (f"Added {len(added)} items; the catalog has {done.get('items', len(svc.catalog.item_ids))}. Ranking them "
           f"now: {', '.join(done.get('ranked_now', [])) or 'no content model'}; at the next retrain: "
           f"{', '.join(done.get('at_next_retrain', [])) or 'none'}.")
    return msg, status_html(svc)  # counts and model names only: nothing a visitor wrote


@user_errors
def make_pairs(svc: Services, n: int, password: str | None = None, request: Any = None) -> tuple[str, str]:
    """Fill the labeling queue with personalized-vs-generic cover and caption pairs (an admin action)."""
    check_admin(svc, password, request)
    created = svc.labeling.make_pairs(n, seed=checks.new_seed())
    return f"Created {created} pairs for labeling.", status_html(svc)
