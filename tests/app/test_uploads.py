"""Uploads (issue 28 item 2): Gradio's /gradio_api/upload accepts any file and keeps it in its temp dir, although
no component of the app takes one. Refused where no event takes a file; bounded per client where one does; and
Gradio's temp dir is swept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from vitrine_app_fixtures import free_port, make_services

TIMEOUT_S = 60


def _upload(url: str, size: int = 1000, client: str = "10.0.0.1") -> requests.Response:
    return requests.post(url + "gradio_api/upload", files={"files": ("x.txt", b"x" * size)},
                         headers={"X-Forwarded-For": client}, timeout=TIMEOUT_S)


def test_uploads_are_refused_when_no_event_takes_a_file(live_app):
    import gradio as gr

    url, _ = live_app
    before = set(Path(gr.utils.get_upload_folder()).rglob("*")) if Path(gr.utils.get_upload_folder()).exists() else set()
    for _ in range(5):
        answer = _upload(url)
        assert answer.status_code == 403 and "takes no file uploads" in answer.json()["detail"]
        assert "/" not in answer.text.replace("/gradio", "")  # no server path either
    recording = requests.post(url + "gradio_api/process_recording", files={"data": ("x.wav", b"x")}, timeout=TIMEOUT_S)
    assert recording.status_code == 403
    after = set(Path(gr.utils.get_upload_folder()).rglob("*")) if Path(gr.utils.get_upload_folder()).exists() else set()
    assert not {p for p in after - before if p.name == "x.txt"}


@pytest.fixture()
def file_app(tmp_path):
    """A Gradio app with a file input, served with the app's launch settings: yields its URL."""
    import gradio as gr

    from app.web.launch import enable_queue, launch_kwargs

    svc = make_services(tmp_path, trust_proxy=True, upload_mb_per_hour=0.01, temp_age_s=1)  # 10 KiB a client an hour
    with gr.Blocks() as demo:
        gr.File().upload(lambda f: None, gr.File(), None)
    enable_queue(demo, svc.settings)
    port = free_port()
    kwargs = {k: v for k, v in launch_kwargs(svc).items() if k in ("app_kwargs", "max_file_size")}
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **kwargs)
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    svc.close()


def test_uploads_are_bounded_per_client_where_an_event_takes_a_file(file_app):
    url = file_app
    assert [_upload(url, 4000).status_code for _ in range(3)] == [200, 200, 429]  # 10 KiB an hour
    assert "per client per hour" in _upload(url, 10).json()["detail"]
    assert _upload(url, 4000, client="10.0.0.2").status_code == 200  # another client


def test_gradio_temp_files_are_swept(file_app):
    """An upload (where an event takes one) lies in Gradio's temp dir until temp_age_s (1 s here) has passed."""
    url = file_app
    answer = _upload(url, 100)
    assert answer.status_code == 200
    kept = Path(answer.json()[0])
    assert kept.is_file()
    deadline = time.monotonic() + 30
    while kept.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not kept.exists()
