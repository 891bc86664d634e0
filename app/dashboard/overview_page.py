"""The Overview page's helpers: headline counts and activity per day."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.express as px

from app.dashboard.charts import PALETTE, SIMULATE_HINT, View, layout
from app.dashboard.data import Frames


def _per_day(times: pd.Series) -> pd.Series:
    t = pd.to_datetime(times)
    return t.dt.normalize() if len(t) else pd.Series(dtype="datetime64[ns]")


def overview_counts(frames: Frames, today: dt.date) -> pd.DataFrame:
    """Totals and today's numbers for the headline metrics: `metric, total, today`."""
    day = pd.Timestamp(today)
    daily = frames.daily

    def stream(series: str) -> tuple[int, int]:
        part = daily[daily["series"] == series]
        return int(part["count"].sum()), int(part.loc[part["day"] == day, "count"].sum())

    def small(times: pd.Series) -> tuple[int, int]:
        return len(times), int((_per_day(times) == day).sum())

    users = frames.user_days
    label_days = _per_day(frames.labels["created_at"])
    rows = [
        ("Feedback events", *stream("feedback events")),
        ("Slates shown", *stream("slates shown")),
        ("Active users", int(users["user_id"].nunique()), int(users.loc[users["day"] == day, "user_id"].nunique())),
        ("Annotators", int(frames.labels["annotator"].nunique()),
         int(frames.labels.loc[label_days == day, "annotator"].nunique())),
        ("Preference labels", *small(frames.labels["created_at"])),
        ("Generated assets", *small(frames.assets["created_at"])),
    ]
    return pd.DataFrame(rows, columns=["metric", "total", "today"])


def activity_view(frames: Frames) -> View:
    """Events and slates (aggregated in SQL), labels and assets per day, and distinct active users and annotators."""
    parts = [frames.daily.groupby(["day", "series"], as_index=False)["count"].sum()]
    for name, times in (("preference labels", frames.labels["created_at"]),
                        ("generated assets", frames.assets["created_at"])):
        days = _per_day(times)
        if len(days):
            counts = days.value_counts()
            parts.append(pd.DataFrame({"day": counts.index, "series": name, "count": counts.to_numpy()}))
    if len(frames.user_days):
        users = frames.user_days.groupby("day")["user_id"].nunique()
        parts.append(pd.DataFrame({"day": users.index, "series": "active users", "count": users.to_numpy()}))
    if len(frames.labels):
        ann = frames.labels.groupby(_per_day(frames.labels["created_at"]))["annotator"].nunique()
        parts.append(pd.DataFrame({"day": ann.index, "series": "active annotators", "count": ann.to_numpy()}))
    series = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else None
    if series is None or series.empty:
        return View(empty=f"No activity in this range yet. {SIMULATE_HINT} Or use the app and come back.")
    series = series.sort_values(["day", "series"], ignore_index=True)
    fig = px.line(series, x="day", y="count", color="series", markers=True, log_y=True,
                  color_discrete_sequence=PALETTE, labels={"day": "", "count": "count (log scale)"})
    fig = layout(fig, title="Activity per day")
    events = series[series["series"] == "feedback events"]
    if events.empty:
        reading = f"No feedback yet over {series['day'].nunique()} active days."
    else:
        top = events.loc[events["count"].idxmax()]
        reading = (f"{int(events['count'].sum()):,} feedback events over {events['day'].nunique()} active days; "
                   f"the busiest day was {top['day']:%Y-%m-%d} with {int(top['count']):,}.")
    return View(figure=fig, reading=reading)
