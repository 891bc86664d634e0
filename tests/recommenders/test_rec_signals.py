"""recommenders.signals (events -> training signal) and the models' use of weights, negatives and session feedback."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from recommenders.models import create_model, load_model
from recommenders.signals import SignalConfig, event_weights, to_signal, training_frame

T0 = dt.datetime(2026, 11, 1, 12, 0, 0)


def events(rows: list[tuple]) -> pd.DataFrame:
    """rows: (user, item, kind, value, seconds after T0, id)."""
    return pd.DataFrame({
        "user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows], "kind": [r[2] for r in rows],
        "value": [np.nan if r[3] is None else r[3] for r in rows],
        "created_at": [T0 + dt.timedelta(seconds=r[4]) for r in rows], "id": [r[5] for r in rows],
    })


def signal_of(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[float, str, str]]:
    return {(u, i): (w, lab, k) for u, i, w, lab, k in
            frame[["user_id", "item_id", "weight", "label", "kind"]].itertuples(index=False)}


def test_every_kind_alone() -> None:
    frame = events([
        ("u", "like", "like", None, 0, 1),
        ("u", "click", "click", None, 0, 2),
        ("u", "long", "dwell", 45_000, 0, 3),
        ("u", "short", "dwell", 2_000, 0, 4),
        ("u", "dis", "dislike", None, 0, 5),
        ("u", "skip", "skip", None, 0, 6),
        ("u", "r5", "rating", 5, 0, 7),
        ("u", "r4", "rating", 4, 0, 8),
        ("u", "r3", "rating", 3, 0, 9),
        ("u", "r2", "rating", 2, 0, 10),
        ("u", "r1", "rating", 1, 0, 11),
    ])
    got = signal_of(to_signal(frame))
    assert got[("u", "like")] == (1.0, "positive", "like")
    assert got[("u", "click")] == (0.5, "positive", "click")
    assert got[("u", "long")] == (0.5, "positive", "dwell")
    assert got[("u", "short")] == (0.0, "seen", "dwell")
    assert got[("u", "dis")] == (-1.0, "negative", "dislike")
    assert got[("u", "skip")] == (0.0, "seen", "skip")
    assert got[("u", "r5")] == (1.0, "positive", "rating")
    assert got[("u", "r4")] == (pytest.approx(0.8), "positive", "rating")
    assert got[("u", "r3")] == (0.3, "positive", "rating")
    assert got[("u", "r2")] == (-1.0, "negative", "rating")
    assert got[("u", "r1")] == (-1.0, "negative", "rating")


def test_later_events_override_earlier_ones() -> None:
    frame = events([
        ("a", "x", "like", None, 0, 1), ("a", "x", "dislike", None, 10, 2),  # like then dislike -> negative
        ("b", "x", "dislike", None, 0, 3), ("b", "x", "like", None, 10, 4),  # dislike then like -> positive
        ("c", "x", "like", None, 0, 5), ("c", "x", "click", None, 10, 6),  # a click never undoes a like
        ("d", "x", "dislike", None, 0, 7), ("d", "x", "click", None, 10, 8),  # nor a dislike
        ("e", "x", "click", None, 0, 9), ("e", "x", "skip", None, 10, 10),  # implicit overrides implicit
        ("f", "x", "skip", None, 0, 11), ("f", "x", "click", None, 10, 12),
        ("g", "x", "rating", 5, 0, 13), ("g", "x", "rating", 1, 10, 14),  # a re-rating replaces the rating
        ("h", "x", "click", None, 0, 15), ("h", "x", "dislike", None, 10, 16),  # a dislike after a click
        ("i", "x", "like", None, 5, 18), ("i", "x", "dislike", None, 5, 17),  # same instant: the id orders them
    ])
    got = signal_of(to_signal(frame))
    assert got[("a", "x")][1] == "negative"
    assert got[("b", "x")][:2] == (1.0, "positive")
    assert got[("c", "x")][:3] == (1.0, "positive", "like")
    assert got[("d", "x")][1] == "negative"
    assert got[("e", "x")][:2] == (0.0, "seen")
    assert got[("f", "x")][:2] == (0.5, "positive")
    assert got[("g", "x")][1] == "negative"
    assert got[("h", "x")][1] == "negative"
    assert got[("i", "x")][:3] == (1.0, "positive", "like")



def test_an_undo_takes_back_the_likes_and_dislikes_before_it() -> None:
    frame = events([
        ("a", "x", "like", None, 0, 1), ("a", "x", "undo", None, 10, 2),  # nothing left
        ("b", "x", "click", None, 0, 3), ("b", "x", "like", None, 5, 4), ("b", "x", "undo", None, 10, 5),  # the click
        ("c", "x", "dislike", None, 0, 6), ("c", "x", "undo", None, 10, 7),  # a dislike taken back: nothing
        ("d", "x", "like", None, 0, 8), ("d", "x", "undo", None, 10, 9), ("d", "x", "like", None, 20, 10),  # liked
        ("e", "x", "rating", 5, 0, 11), ("e", "x", "like", None, 5, 12), ("e", "x", "undo", None, 10, 13),  # rating
        ("f", "x", "undo", None, 0, 14),  # an undo alone is no signal
        ("g", "y", "like", None, 0, 15), ("g", "x", "undo", None, 10, 16),  # another item's undo changes nothing
    ])
    got = signal_of(to_signal(frame))
    assert ("a", "x") not in got and ("c", "x") not in got and ("f", "x") not in got and ("g", "x") not in got
    assert got[("b", "x")] == (0.5, "positive", "click")
    assert got[("d", "x")] == (1.0, "positive", "like")
    assert got[("e", "x")] == (1.0, "positive", "rating")
    assert got[("g", "y")] == (1.0, "positive", "like")


def test_output_shape_order_and_event_ids() -> None:
    frame = events([("u2", "b", "like", None, 0, 1), ("u1", "a", "click", None, 3, 2), ("u1", "a", "like", None, 7, 3)])
    out = to_signal(frame.sample(frac=1.0, random_state=0))  # input order does not matter
    assert list(out.columns) == ["user_id", "item_id", "weight", "label", "kind", "timestamp", "event_id"]
    assert out[["user_id", "item_id"]].values.tolist() == [["u1", "a"], ["u2", "b"]]
    assert out["event_id"].tolist() == [3, 1]
    assert out["timestamp"].iloc[0] == int((T0 + dt.timedelta(seconds=7)).replace(tzinfo=dt.timezone.utc).timestamp())
    assert list(training_frame(out).columns) == ["user_id", "item_id", "weight", "timestamp"]
    empty = to_signal(frame.iloc[:0])
    assert empty.empty and list(empty.columns) == list(out.columns)


def test_numeric_times_and_config() -> None:
    frame = events([("u", "a", "click", None, 0, 1)]).assign(created_at=[1_700_000_000])
    out = to_signal(frame, SignalConfig(click=0.25))
    assert out["weight"].tolist() == [0.25] and out["timestamp"].tolist() == [1_700_000_000]
    with pytest.raises(ValueError, match="negative_weight"):
        SignalConfig(negative_weight=0.5)
    with pytest.raises(ValueError, match="click"):
        SignalConfig(click=0.0)


def test_bad_input_names_the_row() -> None:
    with pytest.raises(ValueError, match="row 2, column 'kind'"):
        to_signal(events([("u", "a", "like", None, 0, 1), ("u", "b", "love", None, 0, 2)]))
    with pytest.raises(ValueError, match="row 1, column 'value': a rating needs a number"):
        event_weights(events([("u", "a", "rating", None, 0, 1)]))
    with pytest.raises(ValueError, match="missing column"):
        to_signal(pd.DataFrame({"user_id": ["u"], "item_id": ["a"]}))


# -- models: weights, negatives and session feedback ------------------------------------------------------------
ITEMS = [f"i{n}" for n in range(8)]


def base() -> pd.DataFrame:
    """Two tastes: users u0-u5 like i0-i3 (each misses one), users u6-u11 like i4-i7 (each misses one)."""
    rows = []
    for u in range(12):
        group = range(4) if u < 6 else range(4, 8)
        for i in group:
            if i % 4 != u % 4:
                rows.append((f"u{u}", f"i{i}"))
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def test_ease_uses_weights_and_negatives() -> None:
    data = base().assign(weight=1.0)
    plain = create_model("ease", reg=1.0).fit(base(), ITEMS)
    np.testing.assert_allclose(create_model("ease", reg=1.0).fit(data, ITEMS).B, plain.B)  # weight 1 = unweighted
    half = create_model("ease", reg=1.0).fit(data.assign(weight=0.5), ITEMS)
    assert not np.allclose(half.B, plain.B)  # weights shape the item-item model
    # a dislike of i5 by u0: i5 and what goes with it (i4, i6, i7) drop for u0, B does not change
    disliked = pd.concat([data, pd.DataFrame({"user_id": ["u0"], "item_id": ["i5"], "weight": [-1.0]})])
    model = create_model("ease", reg=1.0).fit(disliked, ITEMS)
    np.testing.assert_allclose(model.B, plain.B)
    before = plain.score(plain.user_index("u0"))
    after = model.score(model.user_index("u0"))
    np.testing.assert_allclose(after, before - 0.5 * plain.B[5])  # negative_weight 0.5 times i5's row
    assert (after[[4, 6, 7]] < before[[4, 6, 7]]).all()
    ids, _ = model.recommend("u0", k=8)
    assert "i5" not in ids
    # saved and loaded, the negative is still used
    assert np.allclose(model.score(0), after)


def test_ease_negatives_survive_save_and_load(tmp_path) -> None:
    data = pd.concat([base().assign(weight=1.0), pd.DataFrame({"user_id": ["u0"], "item_id": ["i5"], "weight": [-1.0]})])
    model = create_model("ease", reg=1.0).fit(data, ITEMS)
    loaded = load_model(model.save(tmp_path / "m"))
    u = model.user_index("u0")
    np.testing.assert_allclose(loaded.score(u), model.score(u))
    assert loaded.recommend_with_feedback("u0", k=8) == (model.recommend("u0", k=8)[0], pytest.approx(
        model.recommend("u0", k=8)[1]))


def test_models_without_negatives_treat_a_dislike_as_seen() -> None:
    data = pd.concat([base().assign(weight=1.0), pd.DataFrame({"user_id": ["u0"], "item_id": ["i5"], "weight": [-1.0]})])
    model = create_model("itemknn").fit(data, ITEMS)
    plain = create_model("itemknn").fit(base(), ITEMS)
    assert not model.uses_negatives
    np.testing.assert_allclose(model.score(model.user_index("u0")), plain.score(plain.user_index("u0")))
    assert "i5" not in model.recommend("u0", k=8)[0]


@pytest.mark.parametrize("name", ["ease", "itemknn", "pop"])
def test_session_feedback_changes_the_next_page(name) -> None:
    model = create_model(name).fit(base(), ITEMS)
    page, _ = model.recommend_with_feedback("u0", k=3)
    assert page == model.recommend("u0", k=3)[0]  # no session feedback: the fitted user's own ranking
    liked = ["i4", "i5"]  # u0 (an i0-i3 user) now likes the other taste
    after, _ = model.recommend_with_feedback("u0", liked=liked, disliked=["i0"], k=3)
    assert not set(after) & {"i0", "i1", "i2", "i4", "i5"}  # seen, liked and disliked items never come back
    if name != "pop":
        assert after != page and {"i6", "i7"} & set(after)  # the likes count at once
    new, _ = model.recommend_with_feedback(None, liked=["i4"], k=2)
    assert "i4" not in new
    with pytest.raises(ValueError, match="liked"):
        model.recommend_with_feedback("stranger", k=2)


def test_ease_session_dislike_pushes_neighbours_down() -> None:
    model = create_model("ease", reg=1.0).fit(base(), ITEMS)
    plain = model._fold_in(np.array([0]))
    ids, scores = model.recommend_with_feedback(None, liked=["i0"], disliked=["i4"], k=7)
    by_id = dict(zip(ids, scores))
    assert by_id["i5"] < plain[5] and "i4" not in by_id


def test_a_session_dislike_overrides_the_training_history() -> None:
    model = create_model("ease", reg=1.0).fit(base(), ITEMS)
    # u0 trained on i1, i2, i3; disliking i1 now folds in i2, i3 only, and pushes i1's neighbours down
    _, with_dislike = model.recommend_with_feedback("u0", disliked=["i1"], k=8)
    ids, _ = model.recommend_with_feedback("u0", disliked=["i1"], k=8)
    expected = model.B[[2, 3]].sum(0) - 0.5 * model.B[1]
    np.testing.assert_allclose(with_dislike, expected[[ITEMS.index(i) for i in ids]])
