"""Logged events -> training signal: the one mapping every retraining uses.

Input: one row per logged event, columns

    user_id, item_id (str), kind (rating | like | click | dwell | dislike | skip | undo), value (rating 1-5, dwell
    milliseconds, else NaN), created_at (datetime or unix seconds), id (int, the store's event id: it orders
    events logged in the same instant and is the data watermark of a model trained on them).

Output (`to_signal`): one row per (user, item) with a signal, columns user_id, item_id, weight, label, kind,
timestamp (unix seconds of the deciding event), event_id (its id):

    event                        label      weight            a model ...
    like                         positive   like   (1.0)      trains on it as a positive
    rating >= positive_rating    positive   rating / 5        (4 -> 0.8, 5 -> 1.0)
    rating == 3                  positive   0.3               neutral_rating_weight: a weak positive
    rating <= negative_rating    negative   negative_weight   (-1.0): an explicit negative, see below
    dislike                      negative   negative_weight   (-1.0)
    click                        positive   click  (0.5)      an implicit positive, weaker than a like
    dwell >= long_dwell_ms       positive   dwell  (0.5)      a long look counts like a click
    dwell < long_dwell_ms        seen       0.0               seen, not positive
    skip                         seen       0.0               seen, not positive
    undo                         -          -                 takes back the pair's earlier likes and dislikes

Later events override earlier ones for the same (user, item), in (created_at, id) order, with one rule
that keeps the meaning of explicit feedback: an explicit event (rating, like, dislike) overrides every
earlier event, an implicit one (click, dwell, skip) overrides earlier implicit events but never an explicit
one (opening a film you liked is not taking the like back; a dislike after a click is a dislike). An undo (the
visitor took their like or dislike back) removes the pair's likes and dislikes logged before it, as if never
sent, and is no signal itself: what else the pair has (a click, a rating) decides, or nothing does.

What models do with the labels (recommenders.models.base): weight > 0 is a positive; weight == 0 ("seen")
and weight < 0 ("negative") are never positives and the item is never recommended to that user again.
Models whose class says `uses_negatives = True` also use the negatives: EASE subtracts `negative_weight`
(0.5) times the disliked items' rows of its item-item matrix from the user's scores (a down-weight: items
that go with a disliked item score lower), for fitted users and at fold-in. Models that train on binary positives (pop, itemknn, BPR-style with
uniform negatives, the content models) treat a negative as "seen, not positive" - nothing more - and say
so in their class (`uses_negatives = False`). Weights above 0 are used by models with
`uses_weights = True` (EASE: the user's row holds the weight instead of 1); the others binarise them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SIGNAL_KINDS = ("rating", "like", "click", "dwell", "dislike", "skip", "undo")
EXPLICIT_KINDS = frozenset({"rating", "like", "dislike"})
LABELS = ("positive", "seen", "negative")
COLUMNS = ["user_id", "item_id", "weight", "label", "kind", "timestamp", "event_id"]


@dataclass(frozen=True)
class SignalConfig:
    """Weights of the mapping; the defaults carry the why."""

    like: float = 1.0  # the strongest implicit-feedback positive: the visitor said so
    click: float = 0.5  # curiosity, not approval: half a like
    dwell: float = 0.5  # a long look is worth a click
    long_dwell_ms: float = 30_000.0  # 30 s on an item's page: read, not bounced
    positive_rating: float = 4.0  # ml-100k's convention: 4 and 5 are "liked"
    negative_rating: float = 2.0  # 1 and 2 are explicit dislikes
    neutral_rating_weight: float = 0.3  # a 3 is seen and mildly positive (RecBole counts every rating)
    negative_weight: float = -1.0  # the weight of an explicit negative; must be < 0

    def __post_init__(self) -> None:
        for name in ("like", "click", "dwell", "neutral_rating_weight"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name}: expected a positive weight in (0, 1], got {value!r}")
        if not self.negative_weight < 0:
            raise ValueError(f"negative_weight: expected a negative number, got {self.negative_weight!r}")
        if not self.long_dwell_ms > 0:
            raise ValueError(f"long_dwell_ms: expected a positive duration, got {self.long_dwell_ms!r}")
        if not 1 <= self.negative_rating < self.positive_rating <= 5:
            raise ValueError(f"negative_rating, positive_rating: expected 1 <= negative < positive <= 5, "
                             f"got {self.negative_rating!r}, {self.positive_rating!r}")


def _check_events(events: pd.DataFrame) -> None:
    if not isinstance(events, pd.DataFrame):
        raise ValueError(f"events: expected a DataFrame, got {type(events).__name__}")
    missing = [c for c in ("user_id", "item_id", "kind", "value", "created_at", "id") if c not in events.columns]
    if missing:
        raise ValueError(f"events: missing column(s) {missing}; got {list(events.columns)}")
    kinds = events["kind"].astype(str)
    bad = ~kinds.isin(SIGNAL_KINDS)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"events: row {row + 1}, column 'kind': expected one of {list(SIGNAL_KINDS)}, "
                         f"got {kinds.iloc[row]!r}")
    value = pd.to_numeric(events["value"], errors="coerce")
    needs = kinds.isin(["rating", "dwell"]).to_numpy()
    lacking = needs & value.isna().to_numpy()
    if lacking.any():
        row = int(np.flatnonzero(lacking)[0])
        raise ValueError(f"events: row {row + 1}, column 'value': a {kinds.iloc[row]} needs a number, "
                         f"got {events['value'].iloc[row]!r}")


def _times(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(order key at full resolution, unix seconds) of a created_at column of datetimes or unix seconds."""
    if pd.api.types.is_numeric_dtype(column):
        t = pd.to_numeric(column).to_numpy(dtype=float)
        return t, np.floor(t).astype("int64")
    t = pd.to_datetime(column)
    return t.to_numpy(dtype="datetime64[ns]").astype("int64"), t.astype("datetime64[s]").astype("int64").to_numpy()


def event_weights(events: pd.DataFrame, config: SignalConfig | None = None) -> pd.DataFrame:
    """Each event's own (weight, label) under the table above, before any override. Columns added: weight, label."""
    config = config or SignalConfig()
    _check_events(events)
    kind = events["kind"].astype(str).to_numpy()
    value = pd.to_numeric(events["value"], errors="coerce").to_numpy(dtype=float)
    weight = np.zeros(len(events))
    label = np.full(len(events), "seen", dtype=object)
    for name, w in (("like", config.like), ("click", config.click)):
        weight[kind == name] = w
        label[kind == name] = "positive"
    long = (kind == "dwell") & (value >= config.long_dwell_ms)
    weight[long] = config.dwell
    label[long] = "positive"
    rating = kind == "rating"
    high = rating & (value >= config.positive_rating)
    weight[high] = value[high] / 5.0
    label[high] = "positive"
    mid = rating & (value > config.negative_rating) & (value < config.positive_rating)
    weight[mid] = config.neutral_rating_weight
    label[mid] = "positive"
    negative = (kind == "dislike") | (rating & (value <= config.negative_rating))
    weight[negative] = config.negative_weight
    label[negative] = "negative"
    return events.assign(weight=weight, label=label)


def to_signal(events: pd.DataFrame, config: SignalConfig | None = None) -> pd.DataFrame:
    """One row per (user, item): the signal of the deciding event (see the module docstring).

    Rows are sorted by (user_id, item_id); an empty input gives an empty frame with every column.
    """
    _check_events(events)
    if len(events) == 0:
        return pd.DataFrame({"user_id": pd.Series(dtype=object), "item_id": pd.Series(dtype=object),
                             "weight": pd.Series(dtype="float64"), "label": pd.Series(dtype=object),
                             "kind": pd.Series(dtype=object), "timestamp": pd.Series(dtype="int64"),
                             "event_id": pd.Series(dtype="int64")})
    frame = event_weights(events, config)
    order_time, seconds = _times(events["created_at"])
    frame = pd.DataFrame({
        "user_id": frame["user_id"].astype(str).to_numpy(),
        "item_id": frame["item_id"].astype(str).to_numpy(),
        "weight": frame["weight"].to_numpy(),
        "label": frame["label"].to_numpy(),
        "kind": frame["kind"].astype(str).to_numpy(),
        "timestamp": seconds,
        "event_id": pd.to_numeric(frame["id"], errors="raise").astype("int64").to_numpy(),
    })
    frame["_t"] = order_time  # created_at at full resolution, then the event id, decides the order
    frame = _without_undone(frame.sort_values(["_t", "event_id"], kind="stable"))
    explicit = frame["kind"].isin(EXPLICIT_KINDS)
    keys = ["user_id", "item_id"]
    last_explicit = frame[explicit].groupby(keys, sort=False).tail(1)
    last_implicit = frame[~explicit].groupby(keys, sort=False).tail(1)
    # an explicit event decides whenever the pair has one; otherwise the latest implicit event does
    has_explicit = pd.MultiIndex.from_frame(last_implicit[keys]).isin(pd.MultiIndex.from_frame(last_explicit[keys]))
    decided = pd.concat([last_explicit, last_implicit[~has_explicit]])
    return decided.drop(columns="_t").sort_values(keys, kind="stable").reset_index(drop=True)[COLUMNS]


def _without_undone(frame: pd.DataFrame) -> pd.DataFrame:
    """The events (in order) less the likes and dislikes a later undo of the same (user, item) took back, and less
    the undos."""
    undo = (frame["kind"] == "undo").to_numpy()
    if not undo.any():
        return frame
    order = pd.Series(np.arange(len(frame)), index=frame.index)
    keys = pd.MultiIndex.from_frame(frame[["user_id", "item_id"]])
    last_undo = order[undo].groupby(keys[undo]).max()  # (user, item) -> position of its latest undo
    before = order.to_numpy() < last_undo.reindex(keys).fillna(-1).to_numpy()
    undone = frame["kind"].isin(["like", "dislike"]).to_numpy() & before
    return frame[~(undone | undo)]


def training_frame(signal: pd.DataFrame) -> pd.DataFrame:
    """The signal in the shape `Recommender.fit` and `train_model(extra_interactions=...)` take:
    user_id, item_id, weight, timestamp."""
    return signal[["user_id", "item_id", "weight", "timestamp"]].reset_index(drop=True)


__all__ = ["COLUMNS", "EXPLICIT_KINDS", "LABELS", "SIGNAL_KINDS", "SignalConfig", "event_weights", "to_signal",
           "training_frame"]
