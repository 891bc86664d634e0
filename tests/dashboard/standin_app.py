"""A minimal Gradio app standing in for `python -m app` behind `scripts/serve_all.py` in the proxy tests.

The real app needs a minute to compute text features on a fresh data dir; the proxy only needs *a* Gradio
server that honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (as `python -m app` does) and uses Gradio's
queue (server-sent events), which is what must stream through the proxy.
"""

import os

import gradio as gr

with gr.Blocks(title="stand-in") as demo:
    text = gr.Textbox(label="text")
    out = gr.Textbox(label="out")
    gr.Button("Shout").click(lambda s: s.upper(), text, out, api_name="shout")

    def health() -> str:  # what scripts/healthcheck.py runs, as the app's own /health
        return "ok"

    gr.api(health, api_name="health")

demo.queue().launch(server_name=os.environ["GRADIO_SERVER_NAME"], server_port=int(os.environ["GRADIO_SERVER_PORT"]))
