"""Read helpers: pandas DataFrames for the dashboard (pure analytics live in `annotation.analytics`) and the
interactions table the recommenders retrain on. Every function takes `session` first and only reads.

Times are naive UTC `datetime64` columns; `since` / `until` keep rows with since <= created_at < until.
An empty result still has every documented column, so analytics code never has to special-case it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import Select, String, case, func, select, type_coerce
from sqlalchemy.orm import Session, aliased

from annotation import _validate as v
from annotation.errors import InvalidInputError
from annotation.models import (
    FEEDBACK_KINDS,
    Annotator,
    EvalRun,
    FeedbackEvent,
    GeneratedAsset,
    Impression,
    ImpressionItem,
    PairTask,
    PreferenceLabel,
)

__all__ = [
    "feedback_frame",
    "impressions_frame",
    "preferences_frame",
    "assets_frame",
    "eval_runs_frame",
    "annotators_frame",
    "interactions_frame",
    "without_undone",
    "feedback_counts",
    "model_feedback_rates",
    "DEFAULT_WEIGHTS",
]

# Implicit-feedback weight of one event, in (0, 1]; a (user, item) pair gets the largest weight of its events.
# A rating r weighs r / 5. dwell and skip carry no positive signal by default.
DEFAULT_WEIGHTS: Mapping[str, float] = {"like": 1.0, "click": 0.5, "dwell": 0.0, "skip": 0.0}
NEGATIVE_RATING = 2  # a latest explicit rating at or below this (or a dislike) makes the pair a negative
NEGATIVE_WEIGHT = -1.0  # recommenders: weight <= 0 is "seen, not liked"


def _window(statement: Select, column, since, until) -> Select:
    since = v.timestamp(since, "since")
    until = v.timestamp(until, "until")
    if since is not None and until is not None and until <= since:
        raise InvalidInputError(f"until must be after since, got since={since} until={until}")
    if since is not None:
        statement = statement.where(column >= since)
    if until is not None:
        statement = statement.where(column < until)
    return statement


def _frame(session: Session, statement: Select, columns: list[str], times: tuple[str, ...] = ("created_at",),
           dtypes: Mapping[str, str] | None = None) -> pd.DataFrame:
    connection = session.connection()
    if connection.dialect.name == "sqlite" and times:
        # SQLite stores times as ISO text: parse them in one vectorised pass instead of one Python call per row
        positions = [columns.index(c) for c in times]
        statement = statement.with_only_columns(
            *(type_coerce(col, String) if i in positions else col
              for i, col in enumerate(statement.selected_columns)), maintain_column_froms=True)
    rows = connection.execute(statement).all()  # Core rows: no ORM loading overhead per row
    # Column-wise construction: handing pandas Row objects makes it probe each one with hasattr (slow)
    values = list(zip(*rows)) if rows else [()] * len(columns)
    frame = pd.DataFrame({name: pd.Series(list(column), dtype=object) for name, column in zip(columns, values)})
    for column in times:
        frame[column] = pd.to_datetime(frame[column], format="ISO8601")
    for column, dtype in (dtypes or {}).items():  # nullable ids stay integers (Int64), not floats
        frame[column] = frame[column].astype(dtype)
    return frame


def feedback_frame(session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None
                   ) -> pd.DataFrame:
    """One row per feedback event.

    Columns: event_id, user_id, item_id, kind (click|like|dislike|rating|skip|dwell), value (rating 1-5, dwell
    ms, else NaN), impression_id (NaN when the event had none), model (the impression's model, or model A of an
    interleaved pair), model_b (model B when interleaved, else None), contributor (interleaving: the model that
    placed this item, else None), position (0-based rank on the slate, NaN without impression), tab,
    created_at.
    """
    interleaved = Impression.model_b.is_not(None)
    statement = (
        select(FeedbackEvent.event_id, FeedbackEvent.user_id, FeedbackEvent.item_id, FeedbackEvent.kind,
               FeedbackEvent.value, FeedbackEvent.impression_id, Impression.model, Impression.model_b,
               case((interleaved, FeedbackEvent.model), else_=None), FeedbackEvent.position, Impression.tab,
               FeedbackEvent.created_at)
        .outerjoin(Impression, Impression.id == FeedbackEvent.impression_id)
    )  # no ORDER BY: walking the time index costs a random read per row; pandas sorts 1M rows in ~0.1 s
    statement = _window(statement, FeedbackEvent.created_at, since, until)
    columns = ["event_id", "user_id", "item_id", "kind", "value", "impression_id", "model", "model_b",
               "contributor", "position", "tab", "created_at"]
    frame = _frame(session, statement, columns,
                   dtypes={"value": "float64", "impression_id": "Int64", "position": "Int64"})
    return frame.sort_values("created_at", kind="stable", ignore_index=True)


def impressions_frame(session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None
                      ) -> pd.DataFrame:
    """One row per impression (slate shown).

    Columns: impression_id, event_id, user_id, model, model_b (None unless interleaved), interleaved (bool),
    tab, query, item_ids (list[str], display order), contributors (list[str] per position when interleaved,
    else None), n_items, created_at.
    """
    statement = _window(
        select(Impression.id, Impression.event_id, Impression.user_id, Impression.model, Impression.model_b,
               Impression.tab, Impression.query, Impression.created_at, Impression.n_items)
        .order_by(Impression.created_at, Impression.id),
        Impression.created_at, since, until,
    )
    frame = _frame(session, statement, ["impression_id", "event_id", "user_id", "model", "model_b", "tab", "query",
                                        "created_at", "n_items"], dtypes={"n_items": "int64"})
    slots = select(ImpressionItem.impression_id, ImpressionItem.item_id, ImpressionItem.contributor).join(
        Impression, Impression.id == ImpressionItem.impression_id)
    slots = _window(slots, Impression.created_at, since, until).order_by(ImpressionItem.impression_id,
                                                                        ImpressionItem.position)
    rows = session.connection().execute(slots).all()
    # rows are grouped by impression in position order: cut them into one list per impression
    ids = [row[0] for row in rows]
    bounds: dict[int, tuple[int, int]] = {}
    start = 0
    for end in range(1, len(ids) + 1):
        if end == len(ids) or ids[end] != ids[start]:
            bounds[ids[start]] = (start, end)
            start = end
    items = [row[1] for row in rows]
    who = [row[2] for row in rows]
    spans = [bounds.get(pk, (0, 0)) for pk in frame["impression_id"]]
    frame["interleaved"] = frame["model_b"].notna().astype(bool)
    frame["item_ids"] = [items[a:b] for a, b in spans]
    frame["contributors"] = [who[a:b] if inter else None for (a, b), inter in zip(spans, frame["interleaved"])]
    return frame[["impression_id", "event_id", "user_id", "model", "model_b", "interleaved", "tab", "query",
                  "item_ids", "contributors", "n_items", "created_at"]]


def preferences_frame(session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None,
                      include_history: bool = False) -> pd.DataFrame:
    """One row per preference label, joined with both sides of its pair.

    By default only current labels that were not cleared; `include_history=True` adds superseded and cleared
    rows (choice None). Columns: label_id, event_id, pair_id, kind (cover|caption|slate), annotator_id,
    annotator, choice (A|B|tie|skip), time_spent_ms, guideline_version, is_current, supersedes_id, created_at,
    target_user_id, study_id (the study the label was given in, else missing), and for each side s in (a, b): asset_s_id, item_id_s, generator_s (the asset's generator,
    or for slate pairs the impression's model), fallback_s, personalized_s, prompt_s, path_s, text_s,
    impression_s_id.
    """
    a, b = aliased(GeneratedAsset), aliased(GeneratedAsset)
    ia, ib = aliased(Impression), aliased(Impression)
    statement = (
        select(PreferenceLabel.id, PreferenceLabel.event_id, PreferenceLabel.pair_id, PairTask.kind,
               PreferenceLabel.annotator_id, Annotator.name, PreferenceLabel.choice, PreferenceLabel.time_spent_ms,
               PreferenceLabel.guideline_version, PreferenceLabel.is_current, PreferenceLabel.supersedes_id,
               PreferenceLabel.created_at, PairTask.target_user_id, PreferenceLabel.study_id,
               PairTask.asset_a_id, a.item_id, func.coalesce(a.generator, ia.model), a.fallback, a.personalized,
               a.prompt, a.path, a.text, PairTask.impression_a_id,
               PairTask.asset_b_id, b.item_id, func.coalesce(b.generator, ib.model), b.fallback, b.personalized,
               b.prompt, b.path, b.text, PairTask.impression_b_id)
        .join(PairTask, PairTask.id == PreferenceLabel.pair_id)
        .join(Annotator, Annotator.id == PreferenceLabel.annotator_id)
        .outerjoin(a, a.id == PairTask.asset_a_id)
        .outerjoin(b, b.id == PairTask.asset_b_id)
        .outerjoin(ia, ia.id == PairTask.impression_a_id)
        .outerjoin(ib, ib.id == PairTask.impression_b_id)
        .order_by(PreferenceLabel.created_at, PreferenceLabel.id)
    )
    if not include_history:
        statement = statement.where(PreferenceLabel.is_current.is_(True), PreferenceLabel.choice.is_not(None))
    statement = _window(statement, PreferenceLabel.created_at, since, until)
    sides = [f"{name}_{s}" for s in ("a", "b") for name in
             ("asset", "item_id", "generator", "fallback", "personalized", "prompt", "path", "text", "impression")]
    sides = [c.replace("asset_a", "asset_a_id").replace("asset_b", "asset_b_id")
             .replace("impression_a", "impression_a_id").replace("impression_b", "impression_b_id") for c in sides]
    columns = ["label_id", "event_id", "pair_id", "kind", "annotator_id", "annotator", "choice", "time_spent_ms",
               "guideline_version", "is_current", "supersedes_id", "created_at", "target_user_id", "study_id",
               *sides]
    ints = ["time_spent_ms", "supersedes_id", "study_id", "asset_a_id", "asset_b_id", "impression_a_id", "impression_b_id"]
    flags = ["fallback_a", "fallback_b", "personalized_a", "personalized_b"]
    return _frame(session, statement, columns, dtypes={"is_current": "bool", **dict.fromkeys(ints, "Int64"),
                                                       **dict.fromkeys(flags, "boolean")})


def assets_frame(session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None
                 ) -> pd.DataFrame:
    """One row per generated asset.

    Columns: asset_id, event_id, kind (cover|caption), item_id, user_id (None = generic), generator (model id
    or "fallback"), fallback, personalized, prompt, negative_prompt, seed, params (dict), path, text,
    content_hash, latency_ms, cache_hit, created_at.
    """
    g = GeneratedAsset
    statement = _window(
        select(g.id, g.event_id, g.kind, g.item_id, g.user_id, g.generator, g.fallback, g.personalized, g.prompt,
               g.negative_prompt, g.seed, g.params, g.path, g.text, g.content_hash, g.latency_ms, g.cache_hit,
               g.created_at).order_by(g.created_at, g.id),
        g.created_at, since, until,
    )
    columns = ["asset_id", "event_id", "kind", "item_id", "user_id", "generator", "fallback", "personalized",
               "prompt", "negative_prompt", "seed", "params", "path", "text", "content_hash", "latency_ms",
               "cache_hit", "created_at"]
    return _frame(session, statement, columns, dtypes={"seed": "Int64", "fallback": "bool", "personalized": "bool",
                                                       "cache_hit": "bool", "latency_ms": "float64"})


def eval_runs_frame(session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None
                    ) -> pd.DataFrame:
    """One row per offline evaluation run.

    Columns: run_id, model, dataset, split, created_at, config (dict), then one float column per metric name
    seen in any run (e.g. "recall@10", "ndcg@10"; NaN where a run lacks it), in sorted order.
    """
    statement = _window(
        select(EvalRun.id, EvalRun.model, EvalRun.dataset, EvalRun.split, EvalRun.created_at, EvalRun.config,
               EvalRun.metrics).order_by(EvalRun.created_at, EvalRun.id),
        EvalRun.created_at, since, until,
    )
    frame = _frame(session, statement, ["run_id", "model", "dataset", "split", "created_at", "config", "metrics"])
    metrics = pd.DataFrame.from_records(list(frame["metrics"]), index=frame.index) if len(frame) else pd.DataFrame()
    frame = frame.drop(columns="metrics")
    for name in sorted(metrics.columns):
        frame[name] = metrics[name].astype("float64")
    return frame


def annotators_frame(session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None
                     ) -> pd.DataFrame:
    """One row per annotator with their labeling activity in the window.

    Columns: annotator_id, name, role, created_at, reliability (last estimated, `annotation.quality`; NaN
    before any estimate), reliability_labels (labels behind it), flagged (below the threshold: handed nothing),
    n_labels (current, non-cleared labels), n_skips (of those, "skip"), n_revisions (history rows: changed or
    cleared labels), median_time_ms (of current labels; NaN when none), first_label_at, last_label_at (NaT when
    none).
    """
    annotators = _frame(session, select(Annotator.id, Annotator.name, Annotator.role, Annotator.created_at,
                                        Annotator.reliability, Annotator.reliability_labels, Annotator.flagged)
                        .order_by(Annotator.id), ["annotator_id", "name", "role", "created_at", "reliability",
                                                  "reliability_labels", "flagged"],
                        dtypes={"annotator_id": "int64", "reliability": "float64", "reliability_labels": "int64",
                                "flagged": "bool"})
    labels = _window(
        select(PreferenceLabel.annotator_id, PreferenceLabel.choice, PreferenceLabel.is_current,
               PreferenceLabel.time_spent_ms, PreferenceLabel.created_at),
        PreferenceLabel.created_at, since, until,
    )
    rows = _frame(session, labels, ["annotator_id", "choice", "is_current", "time_spent_ms", "created_at"],
                  dtypes={"annotator_id": "int64", "is_current": "bool", "time_spent_ms": "float64"})
    current = rows[rows["is_current"] & rows["choice"].notna()]
    by = current.groupby("annotator_id")
    ids = annotators["annotator_id"]

    def per_annotator(series: pd.Series, fill=None):  # reindex, not map: map trips over empty datetime series
        out = series.reindex(ids.to_numpy())
        return (out.fillna(fill) if fill is not None else out).to_numpy()

    annotators["n_labels"] = per_annotator(by.size(), 0).astype("int64")
    annotators["n_skips"] = per_annotator(current[current["choice"] == "skip"].groupby("annotator_id").size(),
                                          0).astype("int64")
    revisions = rows[~rows["is_current"] | rows["choice"].isna()].groupby("annotator_id").size()
    annotators["n_revisions"] = per_annotator(revisions, 0).astype("int64")
    annotators["median_time_ms"] = per_annotator(by["time_spent_ms"].median()).astype("float64")
    annotators["first_label_at"] = per_annotator(by["created_at"].min())
    annotators["last_label_at"] = per_annotator(by["created_at"].max())
    return annotators


def interactions_frame(session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None,
                       weights: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The logged feedback as training interactions, in the shape `recommenders` trains on.

    Columns: user_id (str), item_id (str), weight (float), timestamp (int, unix seconds of the pair's latest
    event). One row per (user, item) with a signal:
      - positive: the largest weight of the pair's events, `weights[kind]` (default DEFAULT_WEIGHTS: like 1.0,
        click 0.5, dwell and skip 0) and rating r -> r / 5; pairs whose events all weigh 0 are left out;
      - negative: NEGATIVE_WEIGHT (-1.0) when the pair's latest explicit signal (like, dislike or rating) is a
        dislike or a rating <= 2, whatever else happened. recommenders treats weight <= 0 as "seen, not liked":
        never recommended again, never a positive.
    An undo takes back the pair's likes and dislikes logged before it (they count as if never sent) and carries
    no signal of its own; the pair's other events still count.
    """
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    unknown = set(weights) - (set(FEEDBACK_KINDS) - {"rating", "dislike", "undo"})
    if unknown:
        raise InvalidInputError(f"weights keys must be among like, click, dwell, skip, got {sorted(unknown)}")
    for kind, weight in weights.items():
        v.number(weight, f"weights[{kind!r}]", 0.0, 1.0)
    statement = _window(
        select(FeedbackEvent.user_id, FeedbackEvent.item_id, FeedbackEvent.kind, FeedbackEvent.value,
               FeedbackEvent.created_at, FeedbackEvent.id),
        FeedbackEvent.created_at, since, until,
    )
    events = _frame(session, statement, ["user_id", "item_id", "kind", "value", "created_at", "id"])
    columns = ["user_id", "item_id", "weight", "timestamp"]
    if events.empty:
        return pd.DataFrame({"user_id": pd.Series(dtype=object), "item_id": pd.Series(dtype=object),
                             "weight": pd.Series(dtype="float64"), "timestamp": pd.Series(dtype="int64")})
    events = without_undone(events.sort_values(["created_at", "id"], kind="stable"))
    events["weight"] = events["kind"].map(weights).astype("float64").fillna(0.0)
    is_rating = events["kind"] == "rating"
    events.loc[is_rating, "weight"] = events.loc[is_rating, "value"].astype("float64") / 5.0
    explicit = events[events["kind"].isin(["like", "dislike", "rating"])]
    last = explicit.groupby(["user_id", "item_id"]).tail(1)
    negative = last[(last["kind"] == "dislike") | ((last["kind"] == "rating") & (last["value"] <= NEGATIVE_RATING))]
    events["timestamp"] = events["created_at"].astype("datetime64[s]").astype("int64")
    pairs = events.groupby(["user_id", "item_id"], as_index=False, sort=True).agg(
        weight=("weight", "max"), timestamp=("timestamp", "max"))
    keys = pd.MultiIndex.from_frame(pairs[["user_id", "item_id"]])
    is_negative = keys.isin(pd.MultiIndex.from_frame(negative[["user_id", "item_id"]]))
    pairs.loc[is_negative, "weight"] = NEGATIVE_WEIGHT
    pairs = pairs[(pairs["weight"] > 0) | is_negative].reset_index(drop=True)
    return pairs[columns]


def without_undone(events: pd.DataFrame) -> pd.DataFrame:
    """Feedback events in log order (columns user_id, item_id, kind, ...) less the likes and dislikes that a later
    undo of the same (user, item) took back, and less the undos themselves."""
    undo = (events["kind"] == "undo").to_numpy()
    if not undo.any():
        return events
    order = pd.Series(range(len(events)), index=events.index)
    keys = pd.MultiIndex.from_frame(events[["user_id", "item_id"]].astype(str))
    last_undo = order[undo].groupby(keys[undo]).max()  # (user, item) -> position of its latest undo
    before = order.to_numpy() < last_undo.reindex(keys).fillna(-1).to_numpy()
    undone = events["kind"].isin(["like", "dislike"]).to_numpy() & before
    return events[~(undone | undo)]


# -- aggregates computed in SQL: for dashboards over millions of events, where loading every row is too slow


def feedback_counts(session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None,
                    by: str = "day") -> pd.DataFrame:
    """Feedback events counted per UTC day (by="day") or in total (by="total"), per kind, in SQL.

    Columns: day (datetime64, midnight UTC; absent when by="total"), kind, n (int).
    """
    if by not in ("day", "total"):
        raise InvalidInputError(f"by must be 'day' or 'total', got {by!r}")
    n = func.count().label("n")
    if by == "total":
        statement = select(FeedbackEvent.kind, n).group_by(FeedbackEvent.kind).order_by(FeedbackEvent.kind)
        return _frame(session, _window(statement, FeedbackEvent.created_at, since, until), ["kind", "n"], times=(),
                      dtypes={"n": "int64"})
    day = func.date(FeedbackEvent.created_at).label("day")  # 'YYYY-MM-DD' on SQLite, a date on PostgreSQL
    statement = select(day, FeedbackEvent.kind, n).group_by(day, FeedbackEvent.kind).order_by(day, FeedbackEvent.kind)
    statement = _window(statement, FeedbackEvent.created_at, since, until)
    return _frame(session, statement, ["day", "kind", "n"], times=("day",), dtypes={"n": "int64"})


def model_feedback_rates(session: Session, since: dt.datetime | None = None, until: dt.datetime | None = None,
                         kinds: tuple[str, ...] = ("click", "like", "dislike", "skip")) -> pd.DataFrame:
    """Per model and kind: items shown and feedback events of that kind on them, in SQL.

    Credit goes to the model that placed the item (the contributor on interleaved slates, else the slate's
    model). The window applies to impressions' times for trials and to feedback times for successes.
    Columns: model, kind, trials (items shown), successes (events; a repeated click on one slate item counts
    again, unlike `analytics.model_rates` over the frames), rate (successes / trials).
    """
    bad = [k for k in kinds if k not in FEEDBACK_KINDS]
    if bad or not kinds:
        raise InvalidInputError(f"kinds must be a non-empty tuple of {FEEDBACK_KINDS}, got {kinds!r}")
    n_a = func.sum(Impression.n_items - Impression.n_items_b)
    shown_a = _window(select(Impression.model, n_a).group_by(Impression.model), Impression.created_at, since, until)
    shown_b = _window(select(Impression.model_b, func.sum(Impression.n_items_b))
                      .where(Impression.model_b.is_not(None)).group_by(Impression.model_b),
                      Impression.created_at, since, until)
    trials = pd.concat([_frame(session, shown_a, ["model", "trials"], times=()),
                        _frame(session, shown_b, ["model", "trials"], times=())])
    trials = trials.groupby("model", as_index=False)["trials"].sum().astype({"trials": "int64"})
    trials = trials[trials["trials"] > 0]
    # events per (credited model, kind): one pass over the covering (model, kind) index, no join, no DISTINCT.
    # Every kind is counted and the unwanted ones dropped here: a `kind IN (...)` filter makes SQLite walk the
    # (kind, created_at) index instead, with a table lookup per event (17x slower at 200k events).
    counted = _window(
        select(FeedbackEvent.model, FeedbackEvent.kind, func.count())
        .where(FeedbackEvent.model.is_not(None))
        .group_by(FeedbackEvent.model, FeedbackEvent.kind),
        FeedbackEvent.created_at, since, until,
    )
    successes = _frame(session, counted, ["model", "kind", "successes"], times=(), dtypes={"successes": "int64"})
    successes = successes[successes["kind"].isin(list(kinds))]
    grid = trials.merge(pd.DataFrame({"kind": list(kinds)}), how="cross")
    out = grid.merge(successes, on=["model", "kind"], how="left")
    out["successes"] = out["successes"].fillna(0).astype("int64")
    out["rate"] = (out["successes"] / out["trials"].where(out["trials"] > 0)).astype("float64")
    return out.sort_values(["model", "kind"]).reset_index(drop=True)[["model", "kind", "trials", "successes", "rate"]]
