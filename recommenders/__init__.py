"""Vitrine recommenders: datasets, content features, splits, metrics, models, training, evaluation, CLI.

Importing the package is cheap: torch and sentence-transformers load inside the functions that need them.
"""
