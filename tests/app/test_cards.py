"""Card and page HTML: everything from data is escaped, URLs included."""

from __future__ import annotations

from app.web.cards import CardView, render_card, render_pair_side, render_profile, render_status

EVIL = '<script>alert("x")</script>'


def test_card_escapes_every_field():
    card = CardView(item_id='9"><b>', title=EVIL, year=1999, genres=[EVIL], why=EVIL, model=EVIL, caption=EVIL,
                    cover_src='covers/ab/a"b.jpg', badges=[EVIL])
    html = render_card(card, position=0)
    assert "<script>" not in html
    assert html.count("&lt;script&gt;") >= 5
    assert 'data-item-id="9&quot;&gt;&lt;b&gt;"' in html
    assert 'src="covers/ab/a&quot;b.jpg"' in html


def test_card_pending_then_ready():
    pending = render_card(CardView(item_id="1", title="Toy Story"))
    assert "vt-cover-pending" in pending and "writing a caption" in pending
    ready = render_card(CardView(item_id="1", title="Toy Story", cover_src="covers/x/c.jpg", cover_fallback=True,
                                 caption="Hi", caption_fallback=True, feedback="like", score=0.5), position=2)
    assert "vt-cover-pending" not in ready and ">fallback<" in ready and ">template<" in ready
    assert "#3" in ready and "score 0.500" in ready and "♥" in ready


def test_profile_pair_status_escape():
    html = render_profile(EVIL, [EVIL], [EVIL], 3, kind="new", extra={"job": EVIL})
    assert "<script>" not in html and "new user" in html and "3 likes" in html
    assert "1 rating<" in render_profile("196", [], [], 1)
    assert "<script>" not in render_pair_side("1", "caption", None, EVIL)
    assert "<script>" not in render_status([(EVIL, [(EVIL, EVIL, EVIL)])])
