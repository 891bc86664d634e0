"""Vitrine's annotation store: the SQL schema, idempotent writes, the labeling queue, exports and reads.

    from annotation.db import make_engine, make_session_factory, upgrade
    from annotation import store

Imports no ML package, so the app and the dashboard start fast. See `annotation.store` for the contract.
"""
