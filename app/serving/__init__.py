"""Serving: the loaded world (catalog, ranking, events, slates, assets, labeling) and its upkeep."""
