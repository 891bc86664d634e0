"""Helpers of the deploy tests (a module of its own: `conftest` names collide across test folders). The serving
helpers they share with the dashboard tests live in tests/serve_helpers.py."""

from __future__ import annotations

import socket

from serve_helpers import (  # noqa: F401 - re-exported for the deploy tests
    REPO_ROOT, SERVE_ALL, child_pids, free_port, get, need_nginx, pid_alive, start_serve_all, stop, wait_ok,
)

STANDIN = REPO_ROOT / "tests" / "dashboard" / "standin_app.py"  # a tiny Gradio app with a queued event
DASHBOARD_PASSWORD = "front-test-password"

# An app whose queue can be stopped by a call, as Gradio's Queue.start_processing stops it when it dies: the
# supervisors (serve_all, replica.py) must notice.
STOPPABLE_APP = """
import os
import gradio as gr

def health() -> str:
    return "ok"

with gr.Blocks() as demo:
    def stop_queue() -> str:  # what Gradio's Queue.start_processing does when it dies (issue 28 item 1)
        demo._queue.close()
        return "stopped"

    gr.api(health, api_name="health")
    gr.api(stop_queue, api_name="stop_queue")
demo.queue().launch(server_name=os.environ["GRADIO_SERVER_NAME"], server_port=int(os.environ["GRADIO_SERVER_PORT"]))
"""


def raw_request(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send `request` bytes as they are (no client library normalising the target) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except socket.timeout:
            pass
    return b"".join(chunks)
