"""The web front: the Gradio layout, its handlers, the named API, the picture routes, HTML and guards."""
