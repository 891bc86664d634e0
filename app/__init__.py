"""Vitrine's application layer: the Gradio app, the Streamlit dashboard, settings and the flows that compose
recommenders, generation and annotation."""
