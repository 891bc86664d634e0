"""Vitrine's dashboard: is quality going up? `streamlit run app/dashboard/main.py` (or `make dashboard`).

It reads the same database as the app (`DATABASE_URL`, see `app.settings`) through a read-only session and
never writes. Pages: Overview, Recommenders, Generation, Annotators, Data. The sidebar's filters (date range,
models, generators, annotators) apply to every page. When `VITRINE_DASHBOARD_PASSWORD` is set, nothing is read
before the right password is entered.

Layout of this file: page config; cached resources and queries; the password gate; filters; one function
per page that lays out that page's blocks (pure helpers, unit-tested: `overview_page`, `recommenders_page`,
`learning_page`, `generation_page`, `annotators_page`, over `charts`); navigation.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

if __package__ in (None, ""):  # `streamlit run app/dashboard/main.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pandas as pd
import streamlit as st

from app.dashboard import annotators_page, generation_page, learning_page, overview_page, recommenders_page
from app.dashboard.charts import SIMULATE_HINT, View
from app.dashboard.data import (
    EXPORT_TABLES,
    Filters,
    Frames,
    apply_filters,
    date_bounds,
    export_bytes,
    export_frame,
    load_frames,
)
from app.errors import AppInputError
from app.settings import load_settings
from app.web.cards import markdown_escape
from app.web.guards import PasswordGuard, client_key
from app.web.status import redact_secret, redact_url

PAGES = ("Overview", "Recommenders", "Learning", "Generation", "Annotators", "Data")
CACHE_TTL_S = 300  # data at most 5 minutes old (a cold read of 1M events takes seconds); "Refresh data" clears it

st.set_page_config(page_title="Vitrine dashboard", page_icon="📊", layout="wide")


# ------------------------------------------------------------------------------------------ resources
@st.cache_resource(show_spinner=False)
def get_engine(url: str):
    from annotation.db import make_engine

    return make_engine(url)


@st.cache_resource(show_spinner=False)
def password_guard(per_client: str, per_target: str) -> PasswordGuard:
    """One throttle of password guesses for every session of this process."""
    return PasswordGuard(per_client, per_target)


def browser_client(trust_proxy: bool) -> str:
    """Who is asking, keyed as the app's rate limits are (`app.web.guards.client_key`): behind the one-port proxy
    (`trust_proxy`), the address it set in X-Forwarded-For, else the websocket's peer."""
    from collections.abc import Mapping
    from types import SimpleNamespace

    headers, address = st.context.headers, st.context.ip_address
    request = SimpleNamespace(headers=headers if isinstance(headers, Mapping) else {},
                              client=SimpleNamespace(host=address if isinstance(address, str) else None))
    return client_key(request, trust_proxy)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=4)
def cached_bounds(url: str) -> tuple[dt.date, dt.date] | None:
    return date_bounds(get_engine(url))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Reading the database…", max_entries=16)
def cached_frames(url: str, start: dt.date | None, end: dt.date | None) -> Frames:
    return load_frames(get_engine(url), start, end)


# -------------------------------------------------------------------------------------------- drawing
def show(view: View, key: str, table: bool = False) -> None:
    """Draw one block: its figure (or the empty state), its one-line reading, optionally its table."""
    if view.empty:
        st.info(view.empty, icon="ℹ️")
        return
    if view.figure is not None:
        st.plotly_chart(view.figure, key=key, config={"displaylogo": False})
    if view.reading:
        st.caption(markdown_escape(view.reading))
    if table and view.table is not None:
        with st.expander("Table"):
            st.dataframe(view.table, hide_index=True)


def page_overview(frames: Frames, today: dt.date) -> None:
    st.header("Overview")
    counts = overview_page.overview_counts(frames, today)
    for column, row in zip(st.columns(len(counts)), counts.itertuples(index=False)):
        column.metric(row.metric, f"{row.total:,}", delta=f"{row.today:,} today" if row.today else None,
                      delta_color="normal")
    show(overview_page.activity_view(frames), "overview-activity")


def page_recommenders(frames: Frames) -> None:
    st.header("Recommenders")
    st.subheader("Offline evaluation")
    offline = recommenders_page.offline_view(frames)
    if offline.empty is None and offline.extra.get("metrics"):
        names = offline.extra["metrics"]
        metric = st.selectbox("Metric", names, index=names.index(offline.extra["metric"]), key="offline-metric")
        offline = recommenders_page.offline_view(frames, metric)
        st.dataframe(offline.table, hide_index=True)
    show(offline, "rec-offline")
    st.subheader("Online: clicks and likes per model")
    show(recommenders_page.online_rates_view(frames), "rec-online", table=True)
    st.subheader("Interleaving")
    show(recommenders_page.interleaving_view(frames), "rec-interleaving", table=True)
    st.subheader("Beyond accuracy")
    show(recommenders_page.beyond_accuracy_view(frames), "rec-beyond", table=True)


def page_generation(frames: Frames) -> None:
    st.header("Generation")
    st.subheader("Personalized vs generic")
    show(generation_page.personalized_view(frames), "gen-personalized")
    st.subheader("Ratings")
    attributes = generation_page.BT_ATTRIBUTES
    attribute = st.radio("Compare by", list(attributes), format_func=attributes.get, horizontal=True,
                         key="bt-attribute")
    left, right = st.columns(2)
    with left:
        show(generation_page.bradley_terry_view(frames, attribute), "gen-bt", table=True)
    with right:
        show(generation_page.win_matrix_view(frames, attribute), "gen-matrix")
    st.subheader("Latency")
    show(generation_page.latency_view(frames), "gen-latency", table=True)
    page_generation_learning(frames)


def page_annotators(frames: Frames) -> None:
    st.header("Annotators")
    st.subheader("Throughput")
    show(annotators_page.throughput_view(frames), "ann-throughput", table=True)
    st.subheader("Agreement on overlapping pairs")
    agreement = annotators_page.agreement_view(frames)
    if agreement.empty is None:
        left, right = st.columns(2)
        left.metric("Fleiss' κ", f"{agreement.extra['fleiss']['kappa']:.2f}")
        right.metric("Krippendorff's α", f"{agreement.extra['alpha']:.2f}")
    show(agreement, "ann-agreement", table=True)
    st.subheader("Choice distribution")
    show(annotators_page.choices_view(frames), "ann-choices", table=True)


def _figure_or_note(figure, empty: bool, note: str, key: str) -> None:
    """A figure, or (for a block whose data does not exist yet) a one-line note saying how to make it."""
    if empty:
        st.caption(markdown_escape(note))
    else:
        st.plotly_chart(figure, key=key, config={"displaylogo": False})


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=4)
def cached_versions(url: str) -> pd.DataFrame:
    from annotation import registry
    from annotation.db import make_session_factory

    with make_session_factory(get_engine(url), read_only=True)() as s:
        return registry.versions_frame(s)


def page_learning(url: str, report_path: Path) -> None:
    """Model versions with their gate decisions (the registry), and the known-truth simulation's curves."""
    import json

    st.header("Learning")
    st.subheader("Model versions and the gate")
    versions = cached_versions(url)
    table = learning_page.versions_table(versions)
    _figure_or_note(learning_page.versions_figure(table), table.empty,
                    "No retrained versions yet: `python -m app.train --model ease` (or Retrain on the app's Status tab).",
                    "learn-versions")
    if not table.empty:
        st.dataframe(table, hide_index=True)
    st.subheader("Simulated visitors with a known truth: treatment vs control")
    # named relative to the data dir: the page shows no path on the server
    shown = f"$VITRINE_DATA_DIR/{report_path.parent.name}/{report_path.name}"
    if not report_path.is_file():
        st.info(f"No simulation report at {shown}: `python -m app.simulate --rounds 5 --users 200 --retrain "
                f"--json {shown}` writes one.", icon="ℹ️")
        return
    try:
        report = json.loads(report_path.read_text())
        curves, ips = learning_page.curves_frame(report), learning_page.ips_frame(report)
    except OSError as exc:  # its message names the file's path
        st.error(f"The simulation report {shown} could not be read: {type(exc).__name__} ({exc.strerror}).")
        return
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        st.error(f"The simulation report {shown} could not be read: {type(exc).__name__}: {exc}")
        return
    left, right = st.columns(2)
    with left:
        st.plotly_chart(learning_page.learning_curves_figure(curves, "like_rate"), key="learn-likes",
                        config={"displaylogo": False})
    with right:
        st.plotly_chart(learning_page.learning_curves_figure(curves, "ndcg@10"), key="learn-ndcg",
                        config={"displaylogo": False})
    _figure_or_note(learning_page.ips_figure(ips), ips.empty, "The report has no IPS block.", "learn-ips")


def page_generation_learning(frames: Frames) -> None:
    """The generation loop: the preference model's accuracy, the policy's style mix, best-of-N wins."""
    st.subheader("Learning from labels")
    accuracy = generation_page.reward_accuracy_frame(frames.eval_runs)
    _figure_or_note(generation_page.reward_accuracy_figure(frames.eval_runs), accuracy.empty,
                    "No preference-model version trained yet.", "gen-reward")
    mix = generation_page.policy_style_mix(frames.assets)
    _figure_or_note(generation_page.policy_style_mix_figure(mix), mix.empty, "No cover made by the prompt policy yet.",
                    "gen-policy")
    rates = generation_page.best_of_n_rates(generation_page.best_of_n_outcomes(frames.labels, frames.assets))
    _figure_or_note(generation_page.best_of_n_figure(rates), rates.empty, "No labelled best-of-N pair yet.",
                    "gen-bestofn")


def page_data(frames: Frames, url: str, filters: Filters) -> None:
    st.header("Data")
    st.write("Download what the current filters select. Files are built when you click.")
    daily = frames.daily.groupby("series")["count"].sum()
    rows = {"feedback": int(daily.get("feedback events", 0)), "impressions": int(daily.get("slates shown", 0)),
            "labels": len(frames.labels), "assets": len(frames.assets), "eval_runs": len(frames.eval_runs)}
    if not any(rows.values()):
        st.info("Nothing to export for these filters. " + SIMULATE_HINT, icon="ℹ️")
        return
    st.dataframe(pd.DataFrame({"table": list(rows), "rows": list(rows.values())}), hide_index=True, width="content")
    for name in EXPORT_TABLES:
        if not rows[name]:
            continue
        left, right = st.columns(2)
        for column, fmt in ((left, "jsonl"), (right, "parquet")):
            column.download_button(
                f"{name}.{fmt}", data=lambda n=name, f=fmt: export_bytes(export_frame(get_engine(url), n, filters), f),
                file_name=f"{name}.{fmt}", mime="application/jsonl" if fmt == "jsonl" else "application/vnd.apache.parquet",
                key=f"dl-{name}-{fmt}", on_click="ignore")


# ----------------------------------------------------------------------------------------------- gate
def password_ok(expected: str | None, open_without: bool = False, guard: PasswordGuard | None = None,
                client: str = "unknown") -> bool:
    """True when this browser session entered the password, or none is configured and the dashboard was opened
    explicitly (VITRINE_DASHBOARD_OPEN=1). Anything else fails closed: the dashboard serves every label and export.
    Guesses go through `guard` (throttled per client and for the dashboard as a whole, each logged)."""
    if not expected:
        if open_without:
            return True
        st.title("Vitrine dashboard")
        st.error("The dashboard is off: set VITRINE_DASHBOARD_PASSWORD to open it with a password, or "
                 "VITRINE_DASHBOARD_OPEN=1 on a private machine.")
        return False
    if st.session_state.get("dashboard_auth") is True:
        return True
    st.title("Vitrine dashboard")
    given = st.text_input("Password", type="password", key="dashboard_password")
    if given:
        try:
            right = (guard or PasswordGuard()).check("dashboard", given, expected, client)
        except AppInputError as exc:  # too many wrong guesses lately
            st.error(str(exc))
            return False
        if right:
            st.session_state["dashboard_auth"] = True
            return True
        st.error("Wrong password.")
    else:
        st.info("This dashboard is protected: enter the password (VITRINE_DASHBOARD_PASSWORD).")
    return False


def sidebar_dates(bounds: tuple[dt.date, dt.date] | None) -> tuple[dt.date | None, dt.date | None]:
    st.sidebar.header("Filters")
    if bounds is None:
        return None, None
    picked = st.sidebar.date_input("Date range", value=bounds, min_value=bounds[0], max_value=bounds[1], key="f-dates")
    if isinstance(picked, (tuple, list)) and len(picked) == 2:
        return picked[0], picked[1]
    if isinstance(picked, (tuple, list)) and len(picked) == 1:  # the second click of a range is pending
        return picked[0], picked[0]
    return bounds


def sidebar_filters(frames: Frames, start: dt.date | None, end: dt.date | None) -> Filters:
    models = st.sidebar.multiselect("Models", frames.models(), key="f-models", placeholder="all models")
    generators = st.sidebar.multiselect("Generators", frames.generators(), key="f-generators",
                                        placeholder="all generators")
    annotators = st.sidebar.multiselect("Annotators", frames.annotators(), key="f-annotators",
                                        placeholder="all annotators")
    return Filters(start=start, end=end, models=tuple(models), generators=tuple(generators),
                   annotators=tuple(annotators))


def main() -> None:
    settings = load_settings()
    guard = password_guard(settings.rate_password_client, settings.rate_password_target)
    if not password_ok(settings.dashboard_password, settings.dashboard_open, guard,
                       browser_client(settings.trust_proxy)):
        st.stop()
    requested = st.query_params.get("page", PAGES[0])
    page = st.sidebar.radio("Page", PAGES, index=PAGES.index(requested) if requested in PAGES else 0, key="page")
    st.query_params["page"] = page
    if st.sidebar.button("Refresh data", help=f"Data is cached for {CACHE_TTL_S} s"):
        cached_bounds.clear()
        cached_frames.clear()
    url = settings.database_url
    try:
        start, end = sidebar_dates(cached_bounds(url))
        frames = cached_frames(url, start, end)
    except Exception as exc:  # the DB is missing or not migrated: say so, do not show a traceback
        st.error(f"Could not read the database at {redact_url(url)}: {type(exc).__name__}: "
                 f"{redact_secret(str(exc), url)}")
        st.info("Start the app once (`make demo`) to create and migrate it, or seed it: " + SIMULATE_HINT)
        st.stop()
    filters = sidebar_filters(frames, start, end)
    if frames.is_empty:
        st.title("Vitrine dashboard")
        st.info("Nothing recorded in this range yet: nobody has used the app. " + SIMULATE_HINT, icon="ℹ️")
    shown = apply_filters(frames, filters)
    if page == "Overview":
        page_overview(shown, dt.datetime.now(dt.timezone.utc).date())
    elif page == "Recommenders":
        page_recommenders(shown)
    elif page == "Learning":
        page_learning(url, settings.data_dir / "reports" / "learning.json")
    elif page == "Generation":
        page_generation(shown)
    elif page == "Annotators":
        page_annotators(shown)
    else:
        page_data(shown, url, filters)


main()
