"""The dashboard's pure helpers on simulated traffic with a known truth, the filters, and the empty states."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

from app.dashboard import annotators_page, generation_page, overview_page, recommenders_page
from app.dashboard.data import Filters, apply_filters, date_bounds, export_frame, load_frames
from app.web.cards import markdown_escape
from dash_helpers import SIM_DAYS, SIM_NOW


# ------------------------------------------------------------------------------------- known truth
def test_preferred_model_has_the_higher_like_rate(sim_frames, sim_db):
    view = recommenders_page.online_rates_view(sim_frames)
    likes = view.table[view.table["kind"] == "like"].set_index("model")
    best = sim_db[1].truth["best_model"]
    assert likes["rate"].idxmax() == best == "ease"
    assert likes.loc["ease", "low"] > likes.loc["pop", "high"]  # separated, not just ordered
    assert view.reading.startswith("ease has the highest like rate")
    assert len(view.figure.data) == 2  # click and like bars


def test_preferred_model_wins_the_interleaving(sim_frames):
    view = recommenders_page.interleaving_view(sim_frames)
    row = view.table.iloc[0]
    assert (row["model_a"], row["model_b"]) == ("ease", "pop")
    assert row["wins_a"] > row["wins_b"] and row["delta"] > 0 and row["p_value"] < 0.05
    assert view.reading.startswith("ease wins")


def test_better_annotator_has_the_higher_agreement(sim_frames, sim_db):
    view = annotators_page.agreement_view(sim_frames)
    per = view.table.set_index("annotator")
    truth = sim_db[1].truth
    assert per["agreement"].idxmax() == truth["best_annotator"] == "ann-careful"
    assert per["agreement"].idxmin() == truth["worst_annotator"] == "ann-sloppy"
    assert view.extra["fleiss"]["raters_per_item"] == 3
    assert -1 <= view.extra["alpha"] <= 1


def test_position_bias_and_generator_quality_are_recovered(sim_frames):
    choices = annotators_page.choices_view(sim_frames)
    assert "ann-sloppy" in choices.reading and "ann-careful" not in choices.reading
    bt = generation_page.bradley_terry_view(sim_frames, "generator", rounds=50)
    assert bt.table.iloc[0]["player"] == "sim/caption-large"
    assert bt.table.iloc[-1]["player"] == "fallback"
    assert list(bt.table.columns) == ["player", "rating", "low", "high", "comparisons", "elo"]
    assert bt.table["elo"].notna().all()
    personalized = generation_page.personalized_view(sim_frames)
    assert personalized.extra["rate"] > 0.5
    styles = generation_page.bradley_terry_view(sim_frames, "style", rounds=20)
    assert styles.table.iloc[0]["player"].startswith("personalized")


def test_every_view_has_a_figure_and_a_reading(sim_frames):
    builders = [overview_page.activity_view, recommenders_page.offline_view, recommenders_page.online_rates_view,
                recommenders_page.interleaving_view, recommenders_page.beyond_accuracy_view,
                generation_page.personalized_view, generation_page.win_matrix_view, generation_page.latency_view,
                annotators_page.throughput_view, annotators_page.agreement_view, annotators_page.choices_view]
    for build in builders:
        view = build(sim_frames)
        assert view.empty is None, build.__name__
        assert view.figure is not None and len(view.figure.data) > 0, build.__name__
        assert view.reading.endswith("."), build.__name__


def test_offline_view_separates_cold_start_and_warm(sim_frames):
    view = recommenders_page.offline_view(sim_frames, "recall@20")
    assert view.extra["metric"] == "recall@20"
    assert set(view.table["split"]) == {"random", "cold-item"}
    assert {trace.name for trace in view.figure.data} == {"random", "cold-item"}


def test_overview_counts(sim_frames, sim_db):
    report = sim_db[1]
    counts = overview_page.overview_counts(sim_frames, SIM_NOW.date()).set_index("metric")
    assert counts.loc["Slates shown", "total"] == report.impressions
    assert counts.loc["Feedback events", "total"] == report.feedback
    assert counts.loc["Preference labels", "total"] == report.labels
    assert counts.loc["Active users", "total"] == report.users
    slates = sim_frames.daily[sim_frames.daily["series"] == "slates shown"]
    today = int(slates.loc[slates["day"] == pd.Timestamp(SIM_NOW.date()), "count"].sum())
    assert counts.loc["Slates shown", "today"] == today < report.impressions
    assert counts.loc["Generated assets", "today"] == report.assets  # the store stamps assets with the real time


# ------------------------------------------------------------------------------------------ filters
def test_model_filter_keeps_one_model(sim_frames):
    only_pop = apply_filters(sim_frames, Filters(models=("pop",)))
    table = recommenders_page.online_rates_view(only_pop).table
    assert set(table["model"]) == {"pop"}
    slates = only_pop.daily[only_pop.daily["series"] == "slates shown"]
    assert (slates["model"].eq("pop") | slates["model_b"].eq("pop")).all()
    feedback = only_pop.daily[only_pop.daily["series"] == "feedback events"]
    assert set(feedback["model"]) == {"pop"}
    assert set(only_pop.slates["model"]) == {"pop"}
    assert set(only_pop.eval_runs["model"]) == {"pop"}
    assert overview_page.overview_counts(only_pop, SIM_NOW.date())["total"].iloc[0] < \
        overview_page.overview_counts(sim_frames, SIM_NOW.date())["total"].iloc[0]


def test_per_item_reads_cover_the_sampled_slates_only(sim_db, sim_frames):
    """Issue 23 item 4: the dashboard reads titles, genres and counts only for the items of the slates it samples,
    never for the whole catalog, and its beyond-accuracy figures are the ones every item's counts give."""
    from sqlalchemy import func, select

    from annotation import analytics
    from annotation.db import make_engine, make_session_factory
    from annotation.models import FeedbackEvent, Item

    shown = {str(i) for ids in sim_frames.slates["item_ids"] for i in ids}
    assert set(sim_frames.items["item_id"]) == shown and set(sim_frames.popularity.index) <= shown
    with make_session_factory(make_engine(sim_db[0]))() as s:
        catalog = s.scalar(select(func.count()).select_from(Item))
        every = dict(s.execute(select(FeedbackEvent.item_id, func.count()).group_by(FeedbackEvent.item_id)).all())
        genres = dict(s.execute(select(Item.item_id, Item.genres)).all())
    assert sim_frames.catalog_size == catalog and len(shown) < catalog
    full = analytics.exposure_metrics(sim_frames.slates, catalog_size=catalog, popularity=pd.Series(every),
                                      genres=pd.Series(genres)).set_index("model")
    shown_here = recommenders_page.beyond_accuracy_view(sim_frames).table.set_index("model")
    for column in ("coverage", "novelty", "diversity"):
        assert shown_here[column].to_dict() == pytest.approx(full[column].to_dict()), column


def test_date_window_narrows_every_stream(sim_db, sim_frames):
    from annotation.db import make_engine

    engine = make_engine(sim_db[0])
    first, last = date_bounds(engine)
    assert (first, last) == (SIM_NOW.date() - dt.timedelta(days=SIM_DAYS - 1), SIM_NOW.date())
    day = SIM_NOW.date() - dt.timedelta(days=1)  # a full simulated day
    one_day = load_frames(engine, day, day)
    assert set(one_day.daily["day"]) == {pd.Timestamp(day)} and set(one_day.user_days["day"]) == {pd.Timestamp(day)}
    assert 0 < one_day.daily["count"].sum() < sim_frames.daily["count"].sum()
    assert (one_day.labels["created_at"].dt.date == day).all() and len(one_day.labels) > 0
    assert one_day.rates["trials"].sum() < sim_frames.rates["trials"].sum()
    everything = load_frames(engine, first, last)
    assert everything.daily["count"].sum() == sim_frames.daily["count"].sum()
    assert len(everything.labels) == len(sim_frames.labels)


def test_annotator_and_generator_filters(sim_frames):
    one = apply_filters(sim_frames, Filters(annotators=("ann-careful",)))
    assert set(one.labels["annotator"]) == {"ann-careful"}
    # agreement needs two annotators: with one left, the page says so
    assert annotators_page.agreement_view(one).empty is not None
    gen = apply_filters(sim_frames, Filters(generators=("fallback",)))
    assert set(gen.assets["generator"]) == {"fallback"}
    assert ((gen.labels["generator_a"] == "fallback") | (gen.labels["generator_b"] == "fallback")).all()
    bt = generation_page.bradley_terry_view(gen, "generator", rounds=10)
    assert "fallback" in set(bt.table["player"])


def test_filters_reject_an_inverted_range():
    with pytest.raises(ValueError, match="end must be on or after start"):
        Filters(start=dt.date(2026, 3, 2), end=dt.date(2026, 3, 1))
    with pytest.raises(ValueError, match="attribute must be one of"):
        generation_page.generator_comparisons(None, "colour")


# ------------------------------------------------------------------------------------- empty states
def test_empty_database_gives_empty_states_not_errors(empty_db, empty_frames):
    from annotation.db import make_engine

    assert empty_frames.is_empty and date_bounds(make_engine(empty_db)) is None
    builders = [overview_page.activity_view, recommenders_page.offline_view, recommenders_page.online_rates_view,
                recommenders_page.interleaving_view, recommenders_page.beyond_accuracy_view,
                generation_page.personalized_view, generation_page.bradley_terry_view, generation_page.win_matrix_view,
                generation_page.latency_view, annotators_page.throughput_view, annotators_page.agreement_view,
                annotators_page.choices_view]
    for build in builders:
        view = build(empty_frames)
        assert view.figure is None and view.empty, build.__name__
        assert "simulate" in view.empty or "app" in view.empty or "evaluate" in view.empty, build.__name__
    counts = overview_page.overview_counts(empty_frames, dt.date(2026, 3, 10))
    assert counts["total"].sum() == 0


def test_filter_that_selects_nothing_gives_empty_states(sim_frames):
    nothing = apply_filters(sim_frames, Filters(models=("no-such-model",), annotators=("nobody",)))
    assert recommenders_page.online_rates_view(nothing).empty
    assert annotators_page.throughput_view(nothing).empty
    assert isinstance(overview_page.overview_counts(nothing, SIM_NOW.date()), pd.DataFrame)


def test_exports_follow_the_filters(sim_db):
    from annotation.db import make_engine

    engine = make_engine(sim_db[0])
    day = SIM_NOW.date() - dt.timedelta(days=1)
    feedback = export_frame(engine, "feedback", Filters(start=day, end=day, models=("pop",)))
    assert len(feedback) > 0 and (feedback["created_at"].dt.date == day).all()
    assert (feedback["model"].eq("pop") | feedback["model_b"].eq("pop")).all()
    labels = export_frame(engine, "labels", Filters(annotators=("ann-sloppy",)))
    assert set(labels["annotator"]) == {"ann-sloppy"} and len(labels) == sim_db[1].pairs
    with pytest.raises(ValueError, match="table must be one of"):
        export_frame(engine, "users", Filters())


def test_names_people_typed_are_shown_as_text(sim_frames):
    from dataclasses import replace

    hostile = "<img src=x onerror=alert(1)>[site](http://evil.example)"
    labels = sim_frames.labels.assign(annotator=sim_frames.labels["annotator"].replace("ann-sloppy", hostile))
    frames = replace(sim_frames, labels=labels)
    choices = annotators_page.choices_view(frames)
    assert hostile in choices.reading  # the sentence names them ...
    shown = markdown_escape(choices.reading)  # ... and the dashboard escapes it for Streamlit's Markdown
    assert re.search(r"(?<!\\)[<>\[\]()]", shown) is None  # every bracket is escaped
    assert r"\<img" in shown
    for view in (choices, annotators_page.throughput_view(frames), annotators_page.agreement_view(frames)):
        labels_in_figure = {trace.name or "" for trace in view.figure.data}
        for trace in view.figure.data:
            for axis in ("x", "y"):
                values = getattr(trace, axis)
                labels_in_figure.update(str(v) for v in (values if values is not None else []))
        assert not any("<img" in v for v in labels_in_figure)
        assert any("&lt;img" in v for v in labels_in_figure)
