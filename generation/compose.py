"""Cover composition: generated art framed as a 2:3 poster with a legible title, and the typographic fallback.

The poster is `width` x 1.5 `width`. The art fills the top (scaled to the width, centre-cropped when
taller than 78% of the poster); below it, a title band whose colour is the art's own bottom colour
darkened to a relative luminance of at most 0.04, with a gradient scrim that blends the art into it.
The title (white) and the year (light grey) sit on that solid band only, so their WCAG contrast ratio is
at least 7:1 on any art. Fonts: DejaVu Sans (shipped in generation/fonts, Bitstream Vera licence).
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from generation.errors import invalid
from generation.profile import genre_key

FONT_DIR = Path(__file__).with_name("fonts")
FONT_BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"
FONT_REGULAR = FONT_DIR / "DejaVuSans.ttf"
COMPOSE_VERSION = "poster-v1"  # part of every cover's key: bump when the layout changes
FALLBACK_VERSION = "typographic-v1"

TITLE_COLOR = (250, 250, 250)
YEAR_COLOR = (205, 205, 205)
MAX_BAND_LUMINANCE = 0.04  # white on it: (1.05) / (0.09) > 11; the light grey year > 7
ART_SHARE = 0.78  # the art takes at most this share of the poster's height
SCRIM_SHARE = 0.3  # the bottom 30% of the art fades into the band

# Two background colours and an accent per genre, for the typographic fallback.
GENRE_PALETTES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]] = {
    "action": ((120, 20, 20), (230, 90, 20), (255, 200, 60)),
    "adventure": ((20, 80, 60), (200, 150, 60), (250, 230, 160)),
    "animation": ((40, 120, 220), (250, 120, 180), (255, 240, 90)),
    "childrens": ((60, 170, 220), (250, 210, 80), (255, 120, 120)),
    "comedy": ((250, 170, 40), (250, 230, 120), (220, 60, 90)),
    "crime": ((20, 20, 30), (90, 90, 110), (200, 30, 40)),
    "documentary": ((70, 80, 70), (170, 170, 150), (240, 240, 225)),
    "drama": ((40, 30, 60), (140, 80, 90), (230, 190, 160)),
    "fantasy": ((50, 20, 90), (120, 60, 180), (250, 220, 120)),
    "filmnoir": ((10, 10, 10), (120, 120, 120), (235, 235, 235)),
    "horror": ((10, 0, 0), (90, 10, 20), (200, 220, 200)),
    "musical": ((130, 20, 120), (240, 90, 60), (255, 230, 120)),
    "mystery": ((20, 30, 60), (70, 80, 120), (220, 200, 130)),
    "romance": ((160, 40, 80), (250, 160, 170), (255, 235, 220)),
    "scifi": ((10, 10, 40), (20, 120, 160), (120, 255, 230)),
    "thriller": ((20, 30, 40), (60, 100, 120), (230, 60, 50)),
    "war": ((50, 50, 30), (130, 120, 80), (220, 200, 150)),
    "western": ((120, 60, 20), (230, 160, 80), (255, 230, 170)),
}
DEFAULT_PALETTE = ((40, 50, 70), (110, 120, 140), (230, 230, 240))


# Read-only after creation; Pillow's FreeType binding holds the GIL while it renders, so threads may share them.
@functools.lru_cache(maxsize=32)
def _font(bold: bool, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_BOLD if bold else FONT_REGULAR), size)


def relative_luminance(rgb: tuple[int, int, int] | tuple[float, ...]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels)."""

    def lin(c: float) -> float:
        c = c / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(float(c)) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """WCAG 2 contrast ratio between two colours, from 1 (same) to 21 (black on white)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def band_color(art: Image.Image) -> tuple[int, int, int]:
    """The mean colour of the art's bottom rows, darkened until its luminance is at most MAX_BAND_LUMINANCE."""
    w, h = art.size
    strip = art.crop((0, int(h * 0.9), w, h)).convert("RGB").resize((1, 1), Image.Resampling.BOX)
    color = strip.getpixel((0, 0))
    scale = 1.0
    while relative_luminance(tuple(c * scale for c in color)) > MAX_BAND_LUMINANCE:
        scale *= 0.85
    return tuple(int(c * scale) for c in color)  # type: ignore[return-value]


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _fit_title(
    draw: ImageDraw.ImageDraw, title: str, width: int, height: int, start: int
) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """The largest bold font (<= start px) at which `title` wraps into <= 3 lines that fit width x height."""
    size = max(start, 6)
    while True:
        font = _font(True, size)
        lines = _wrap(draw, title, font, width)
        fits = all(draw.textlength(line, font=font) <= width for line in lines)
        line_h = font.getbbox("Ag")[3]
        if (fits and len(lines) <= 3 and len(lines) * line_h * 1.15 <= height) or size <= 6:
            break
        size -= max(1, size // 10)
    if len(lines) > 3 or not all(draw.textlength(line, font=font) <= width for line in lines):
        lines = lines[:3]
        while lines[-1] and draw.textlength(lines[-1] + "…", font=font) > width:
            lines[-1] = lines[-1][:-1]
        lines[-1] = lines[-1].rstrip() + "…"
    return font, lines


def compose_poster(
    art: Image.Image, title: str, year: int | None = None, subtitle: str | None = None, width: int | None = None
) -> Image.Image:
    """Frame `art` as a width x 1.5 width poster with `title`, `year` (and an optional `subtitle`) below it."""
    if not isinstance(art, Image.Image):
        raise invalid("art", "a PIL image", art)
    if not isinstance(title, str) or not title.strip():
        raise invalid("title", "a non-empty string", title)
    width = width or art.width
    if not isinstance(width, int) or width < 32:
        raise invalid("width", "an int >= 32", width)
    height = round(width * 1.5)
    art = art.convert("RGB")
    scaled_h = max(1, round(art.height * width / art.width))
    if art.size != (width, scaled_h):
        art = art.resize((width, scaled_h), Image.Resampling.LANCZOS)
    art_h = min(scaled_h, round(height * ART_SHARE))
    top = (scaled_h - art_h) // 2
    art = art.crop((0, top, width, top + art_h))

    band = band_color(art)
    poster = Image.new("RGB", (width, height), band)
    poster.paste(art, (0, 0))
    # scrim: the art's bottom SCRIM_SHARE fades linearly into the band colour
    scrim_h = max(1, round(art_h * SCRIM_SHARE))
    ramp = Image.linear_gradient("L").resize((width, scrim_h))
    poster.paste(Image.new("RGB", (width, scrim_h), band), (0, art_h - scrim_h), ramp)

    draw = ImageDraw.Draw(poster)
    margin = max(2, round(width * 0.06))
    band_h = height - art_h
    small = _font(False, max(6, round(width * 0.045)))
    small_h = small.getbbox("Ag")[3]
    extra_lines = [s for s in (subtitle, str(year) if year is not None else None) if s]
    room = band_h - 2 * margin // 2 - len(extra_lines) * round(small_h * 1.3)
    font, lines = _fit_title(draw, title.strip(), width - 2 * margin, max(room, 8), round(width * 0.1))
    line_h = round(font.getbbox("Ag")[3] * 1.15)
    block_h = len(lines) * line_h + len(extra_lines) * round(small_h * 1.3)
    y = art_h + max(0, (band_h - block_h) // 2)
    for line in lines:
        w = draw.textlength(line, font=font)
        draw.text(((width - w) / 2, y), line, font=font, fill=TITLE_COLOR)
        y += line_h
    for extra in extra_lines:
        w = draw.textlength(extra, font=small)
        draw.text(((width - w) / 2, y), extra, font=small, fill=YEAR_COLOR)
        y += round(small_h * 1.3)
    return poster


def palette(genres: list[str]) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    """The palette of the first genre that has one (DEFAULT_PALETTE otherwise)."""
    for genre in genres:
        if genre_key(genre) in GENRE_PALETTES:
            return GENRE_PALETTES[genre_key(genre)]
    return DEFAULT_PALETTE


def fallback_art(genres: list[str], seed: int, size: int = 512) -> Image.Image:
    """Abstract art in the genre palette: a vertical gradient and a seed-chosen pattern (no model involved)."""
    rng = random.Random(seed)
    c1, c2, accent = palette(genres)
    mask = Image.linear_gradient("L").resize((size, size))
    art = Image.composite(Image.new("RGB", (size, size), c2), Image.new("RGB", (size, size), c1), mask)
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    pattern = rng.choice(("rings", "stripes", "dots", "blocks"))
    fill = (*accent, 110)
    if pattern == "rings":
        cx, cy = rng.uniform(0.2, 0.8) * size, rng.uniform(0.2, 0.7) * size
        for r in range(rng.randint(3, 6), 0, -1):
            rad = r * size * rng.uniform(0.07, 0.11)
            draw.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), outline=fill, width=max(1, size // 60))
    elif pattern == "stripes":
        step = size // rng.randint(6, 12)
        for x in range(-size, size * 2, step * 2):
            draw.polygon([(x, 0), (x + step, 0), (x + step - size, size), (x - size, size)], fill=(*accent, 60))
    elif pattern == "dots":
        for _ in range(rng.randint(20, 50)):
            x, y, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0.01, 0.06) * size
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    else:
        for _ in range(rng.randint(4, 9)):
            x, y = rng.uniform(0, size), rng.uniform(0, size)
            w, h = rng.uniform(0.1, 0.4) * size, rng.uniform(0.05, 0.3) * size
            draw.rectangle((x, y, x + w, y + h), fill=(*accent, 80))
    art.paste(layer, (0, 0), layer)
    return art


def render_fallback_cover(
    title: str, year: int | None, genres: list[str], seed: int = 0, width: int = 512
) -> Image.Image:
    """The typographic cover used when no diffusion model is available: genre palette, title, year, genres."""
    subtitle = " · ".join(g for g in genres[:3] if genre_key(g) != "unknown") or None
    return compose_poster(fallback_art(genres, seed, width), title, year, subtitle=subtitle, width=width)
