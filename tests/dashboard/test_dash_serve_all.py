"""The real dashboard (simulated database) behind `scripts/serve_all.py`'s one public port: nginx routes `/` to
the app (a stand-in here) and `/dashboard/` to Streamlit. The front itself (no open proxy, 413, forwarded
headers, websocket origin rule, process lifecycle, Chromium) is tested in tests/deploy/test_deploy_front.py."""

from __future__ import annotations

import asyncio

from dash_helpers import get


def test_one_port_serves_app_and_dashboard(served):
    base, _ = served
    status, body = get(base + "/")
    assert status == 200 and "gradio" in body.lower()
    status, body = get(base + "/dashboard/")
    assert status == 200 and "<noscript>" in body.lower()  # Streamlit's single-page shell
    assert get(base + "/dashboard/_stcore/health") == (200, "ok")
    status, _ = get(base + "/dashboards-are-not-this")  # only `/dashboard` and below go to Streamlit
    assert status == 404


def test_dashboard_websocket_runs_the_script_through_nginx(served):
    """Over a same-origin websocket through nginx, asking Streamlit to run the script (what the browser does
    first) gets the new session and the script's output back, frame by frame."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.asyncio.client import connect

    base, _ = served
    ws_url = base.replace("http://", "ws://") + "/dashboard/_stcore/stream"
    rerun = BackMsg()
    rerun.rerun_script.query_string = ""

    async def conversation() -> list[str]:
        kinds: list[str] = []
        async with connect(ws_url, subprotocols=["streamlit"], origin=base, open_timeout=30) as ws:
            await ws.send(rerun.SerializeToString())
            while "script_finished" not in kinds:
                msg = ForwardMsg()
                msg.ParseFromString(await asyncio.wait_for(ws.recv(), timeout=60))
                kinds.append(msg.WhichOneof("type"))
        return kinds

    kinds = asyncio.run(conversation())
    assert kinds[0] == "new_session" and "delta" in kinds
