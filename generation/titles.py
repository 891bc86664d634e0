"""Titles as a person writes them: a catalogue's sorting form ("Lion King, The") turned back into the title
("The Lion King"). Used where a title is shown or said: captions, prompts, a profile's liked titles."""

from __future__ import annotations

import re

from generation.errors import invalid

__all__ = ["INVERTED_ARTICLES", "natural_title"]

# Articles a catalogue moves to the end of a title for sorting ("Lion King, The"), by language. Each one is seen
# in MovieLens-100K ("Postino, Il", "Boot, Das", "Misérables, Les", "Promesse, La", "Convento, O") or is the
# same language's other form. A one-letter article ("A", "I", "O") counts only after a title without a comma.
INVERTED_ARTICLES = (
    "The", "A", "An",  # English
    "Le", "La", "Les", "L'", "Un", "Une",  # French
    "Il", "Lo", "Gli", "I", "Uno", "Una",  # Italian
    "Der", "Die", "Das", "Ein", "Eine",  # German
    "El", "Los", "Las",  # Spanish (La, Un, Una above)
    "O", "Os", "As",  # Portuguese (A above)
    "De", "Het", "Een",  # Dutch
)
_ARTICLE = "|".join(re.escape(a) for a in sorted(INVERTED_ARTICLES, key=len, reverse=True))
_INVERTED = re.compile(rf"^(?P<body>[^,]+(?:,[^,]+)*?),\s+(?P<art>{_ARTICLE})(?P<rest>\s*\(.*\))?\s*$")
_TRAILING_PARENS = re.compile(r"\s*\([^()]*\)\s*$")


def natural_title(title: str) -> str:
    """A title as a person writes it: "Lion King, The" -> "The Lion King", "Postino, Il" -> "Il Postino",
    "Apartement, L'" -> "L'Apartement"; a trailing "(1995)" or alternative title in parentheses is dropped
    ("When the Cats Away (Chacun cherche son chat)" -> "When the Cats Away")."""
    if not isinstance(title, str):
        raise invalid("title", "a string", title)
    text = " ".join(title.split())
    while True:
        stripped = _TRAILING_PARENS.sub("", text)
        if stripped == text or not stripped:
            break
        text = stripped
    match = _INVERTED.match(text)
    if match and not (len(match.group("art")) == 1 and "," in match.group("body")):  # "Me, Myself, I" stays
        art = match.group("art")
        text = f"{art}{'' if art.endswith(chr(39)) else ' '}{match.group('body').strip()}"
    return text or " ".join(title.split())
