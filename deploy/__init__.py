"""Deployment pieces: the nginx front's config template and its renderer, the one-port Procfile, the image helpers."""
