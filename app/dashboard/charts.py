"""What every dashboard page's figures share: the `View` block, the palette, one layout, two formatters.

A `View` is what one chart needs: the figure (or table), the sentence that reads it for the viewer, and an
`empty` message (what to do) when there is nothing to show yet. Nothing here imports streamlit or touches the
database: the pages' helpers (`overview_page`, `recommenders_page`, `learning_page`, `generation_page`,
`annotators_page`) are pure functions, frames in and views or figures out, laid out by `app/dashboard/main.py`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

SIMULATE_HINT = "Seed a demo database with `python -m app.simulate --users 50 --days 7`."
PALETTE = px.colors.qualitative.Safe


@dataclass
class View:
    """One block of a page: a figure or a table, its one-line reading, or an empty-state message."""

    figure: go.Figure | None = None
    table: pd.DataFrame | None = None
    reading: str = ""
    empty: str | None = None  # set when there is no data: says what to do
    extra: dict[str, Any] = field(default_factory=dict)


def plain(series: pd.Series) -> pd.Series:
    """Names typed by people, for plotly labels (which understand a few HTML tags): HTML-escaped."""
    return series.astype(str).map(html.escape)


def pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def layout(fig: go.Figure, title: str | None = None, height: int = 360, **kwargs) -> go.Figure:
    """Every figure's frame: white template, tight margins, no legend title; `kwargs` go to `update_layout`."""
    if title is not None:
        kwargs["title"] = title
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend_title_text="",
                      template="plotly_white", **kwargs)
    return fig
