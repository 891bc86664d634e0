"""Caption grounding: drop a caption that names a year, person, place or genre it was not given.

    problems = grounding_problems("A 1987 classic by Steven Spielberg.", item, profile)
    # ['year 1987 is not in the item's metadata or the user's profile',
    #  "name 'Steven Spielberg' is not in the item's metadata or the user's profile"]
    kept, dropped = filter_grounded(captions, item, profile)

A caption may only use the facts in its request (`generation.captions.caption_request`): the item's title,
year, genres and description, and the user's liked titles, favourite genres and taste keywords. This check
looks for four kinds of checkable claims and refuses any that those facts do not contain:
- years: four-digit years (1870-2099) and decades ("the 1980s", "the '80s", "80s");
- genres: genre words and their common adjectives ("romantic", "sci-fi", "horror", "noir", ...);
- people and places: runs of capitalised words that are not at the start of a sentence, or a run of two or
  more at its start ("Steven Spielberg", "in Paris", "Tokyo"), unless every word of the run appears in the
  facts or is an ordinary capitalised word (I, days, months). After "in", "at", "from", "near" a name is
  reported as a place, otherwise as a person or name.
- a genre of the user's only (not the item's) in a clause that speaks of the item rather than of the user:
  for a romance fan, "The Silence of the Lambs is a romantic thriller" is refused, "If you love romance,
  ..." is not;
- claims about people, acclaim and plot that only a description could support ("stars", "directed by",
  "award-winning", "Academy Awards", "captivated audiences", "the story of", "a young woman", ...): refused
  unless the facts use the word themselves (a book's description may well say "detective").
It is a heuristic with a deliberate bias: a caption that names something not in the facts is dropped even
when the name is true, because the app has no way to check it.

`unfounded_words` is the strict half, for captions (not keywords): every word of a caption must come from the
facts (the titles, the item's genres, its description, the user's liked titles) or from a small plain vocabulary
that says why something may suit someone without claiming anything about it ("fans", "should", "win you over",
"pick", "worth"); a genre's own words ("laughs" for a comedy, "suspense" for a thriller) only when the item has
that genre. A small instruct model fills the rest of a sentence with what it has seen elsewhere ("all about
misdirection", "genre-defining", "stunning cinematography", "a story of redemption"); none of it is in the
facts, so none of it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from generation.errors import invalid
from generation.profile import GENRE_STYLES, STOPWORDS, UserProfile, genre_key
from generation.prompts import ItemInfo

# genre words as they appear in prose -> the genre key they claim (generation.profile.genre_key)
GENRE_WORDS: dict[str, str] = {
    **{key: key for key in GENRE_STYLES},
    "science fiction": "scifi", "sci-fi": "scifi", "scifi": "scifi", "sf": "scifi",
    "romantic": "romance", "rom-com": "romance", "romcom": "romance",
    "comedic": "comedy", "comedies": "comedy", "animated": "animation", "cartoon": "animation",
    "horrors": "horror", "thrillers": "thriller", "westerns": "western", "musicals": "musical",
    "documentaries": "documentary", "dramas": "drama", "dramatic": "drama", "noir": "filmnoir",
    "film noir": "filmnoir", "film-noir": "filmnoir", "mysteries": "mystery", "fantasies": "fantasy",
    "fantastical": "fantasy", "children's": "childrens", "kids": "childrens", "family": "childrens",
    "war film": "war", "war movie": "war", "action-packed": "action", "adventures": "adventure",
    "crime": "crime", "criminal": "crime", "gangster": "crime",
    # what a genre promises: "a drama that will make you laugh" claims comedy
    "make you laugh": "comedy", "laugh-out-loud": "comedy", "hilarious": "comedy", "funny": "comedy",
    "scary": "horror", "terrifying": "horror", "frightening": "horror",
}
# genre keys that are also everyday words: only their unambiguous forms count as a genre claim
_AMBIGUOUS = {"war", "action", "family", "adventure", "mystery", "fantasy", "drama", "crime", "musical", "kids",
              "dramatic", "criminal", "cartoon", "adventures", "mysteries", "sf"}
_ORDINARY_CAPITALISED = {
    "i", "i'm", "i've", "you", "your", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
    "sunday", "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "christmas", "mr", "mrs", "ms", "dr", "the", "a", "an", "and", "of",
}
# words that open a sentence before a name ("Like Star Wars, ...", "Fans of Alien ..."): not part of the name
_OPENERS = {"because", "if", "fans", "this", "it", "its", "like", "unlike", "lovers", "anyone", "since", "after",
            "with", "for", "just", "another", "every", "both", "yet", "whether", "once", "though", "although"}
_PLACE_CUES = {"in", "at", "from", "near", "to", "across", "around", "through", "outside"}
_CONNECTORS = {"de", "del", "van", "von", "da", "di", "la", "le", "of", "the"}
_YEAR = re.compile(r"(?<![\d])(1[89]\d\d|20\d\d)(?:s\b|(?![\d]))")
_DECADE = re.compile(r"(?:\bthe\s+)?['’]?\b(\d0)s\b", re.I)
_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][\w'’-]*")


# Claims only a description can support, by kind; each a regex over the lowercased caption. A claim is fine when
# the facts (a book's or product's description) match the same regex.
CLAIMS: dict[str, tuple[str, ...]] = {
    "people": (r"\bstar(?:s|ring|red)\b(?! wars)", r"\bactors?\b", r"\bactress(?:es)?\b", r"\bcast\b",
               r"\bdirect(?:ed|or|ors|s)\b", r"\bfilmmakers?\b", r"\bauthors?\b", r"\bwritten by\b",
               r"\bnovelists?\b", r"\bsingers?\b", r"\bcomposers?\b", r"\bplayed by\b", r"\bportray(?:s|ed)\b",
               r"\bperformances?\b", r"\bprotagonists?\b", r"\bheroine\b", r"\bvillains?\b",
               r"\bcharacters?\b", r"\bdesign(?:ed|er|ers) by\b", r"\bmade by\b"),
    "acclaim": (r"\bawards?\b", r"\boscars?\b", r"\bacademy\b", r"\bnominat(?:ed|ions?)\b", r"\bacclaim(?:ed)?\b",
                r"\bcritic(?:s|al|ally)\b", r"\bpraised\b", r"\bbest-?sell(?:er|ers|ing)\b", r"\bbox office\b",
                r"\bblockbusters?\b", r"\brecord-breaking\b", r"\bfranchise\b", r"\bsequels?\b",
                r"\bprequels?\b", r"\bremakes?\b", r"\badapt(?:ed|ation)\b", r"\bbased on\b", r"\btrue story\b",
                r"\bsoundtrack\b", r"\bworldwide\b", r"\bcaptivated (?:audiences|readers|millions)\b",
                r"\bcult (?:classic|following)\b", r"\bbest (?:film|movie|book|picture)s? of\b", r"\bever made\b",
                r"\bof all time\b", r"\blasting impact\b", r"\bindustry\b", r"\baudiences\b", r"\bgenerations\b",
                r"\bpopular\b", r"\bfamous\b", r"\blegendary\b", r"\bmasterpiece\b", r"\biconic\b",
                r"\bcharts?\b", r"\bhit\b", r"\bsuccess(?:ful)?\b", r"\breleased\b", r"\binfamous\b",
                r"\breimagined\b", r"\breinterpreted\b", r"\bof the era\b"),
    "plot": (r"\b(?:story|tale) of\b", r"\bfollows\b", r"\bset in\b", r"\bdystopi(?:a|an)\b",
             r"\bworld where\b", r"\byoung (?:woman|man|girl|boy|hero)\b", r"\bprotagonist\b",
             r"\bmurder(?:s|ed|er|ers)?\b", r"\bkillers?\b", r"\bheld captive\b", r"\bkidnap",
             r"\bplot\b", r"\bending\b", r"\btwists?\b"),
}
_CLAIMS = [(kind, re.compile(rx)) for kind, patterns in CLAIMS.items() for rx in patterns]
_USER_CUES = re.compile(r"\b(?:you|your|you're|you've|you'll|yours|fans?|lovers?)\b")
_CLAUSE_BREAK = re.compile(r"[,;:.!?()\u2014\u2013]|\s-\s|\b(?:but|while|so|because|if|since|as)\b")


# Words a caption may use without a fact behind them: function words, and the words of liking, recommending and
# fitting. No adjective of acclaim or quality ("classic", "masterpiece", "stunning"), no tone or theme: those are
# claims about the item, allowed only through its genres (GENRE_TONE) or its description.
PLAIN_WORDS = frozenset("""
a an the and or but so as if than then that which who whom whose this these those it its it's that's there
after before since until once when where while what how why here now see
is are was were be been being has have had do does did will would should could can may might must
you your yours yourself you'll you're you've you'd they them their fans fan lovers lover anyone everyone
of in on at to for with from by about into over out up off along through all any both each every more most much
many lot lots plenty bit touch little few some such same similar just even also still well too very really quite
right next another other one ones kind sort type way time evening night weekend day because
love loved loves loving like liked likes enjoy enjoyed enjoys enjoying enjoyable favourite favorite favourites
favorites taste tastes pick picks picked choice choices choose recommend recommended suggest suit suits suited
fit fits fitting match matches perfect perfectly great good nice fine ideal worth worthwhile win wins try
give gives look looks check add list place discover find finds bring brings offer offers deliver delivers
keep keeps coming back rated highly appeal appeals make makes made take takes get gets go go-to want wants wish
sure surely likely treat pleasure entertaining combine combines blend blends mix mixes plus side elements dose
genre genres title titles full
""".split())
# A genre's own words: fine for an item of that genre (keys: generation.profile.genre_key), refused otherwise.
GENRE_TONE: dict[str, frozenset[str]] = {key: frozenset(words.split()) for key, words in {
    "comedy": "comedy comedies comic comedic funny fun humor humour humorous laugh laughs laughing laughter "
              "hilarious witty light-hearted lighthearted smile smiles charming",
    "romance": "romance romances romantic love story heart hearts heartfelt sweet charming tender",
    "drama": "drama dramas dramatic moving emotional heartfelt touching powerful",
    "thriller": "thriller thrillers thrilling thrills suspense suspenseful tense tension gripping gripped edge "
                "seat nail-biting",
    "horror": "horror horrors scary scare scares chilling chills creepy frightening terrifying fright",
    "action": "action action-packed exciting excitement thrills adrenaline fast-paced explosive",
    "adventure": "adventure adventures adventurous journey quest epic",
    "scifi": "sci-fi science fiction futuristic space",
    "animation": "animated animation cartoon",
    "childrens": "family family-friendly kids children children's young fun",
    "fantasy": "fantasy magic magical enchanting wonder",
    "mystery": "mystery mysteries mysterious puzzle clues intrigue intriguing whodunit",
    "crime": "crime crimes criminal gritty heist",
    "war": "war wars battle battles wartime epic",
    "musical": "musical musicals music songs song singing dance dancing",
    "western": "western westerns frontier",
    "documentary": "documentary documentaries real",
    "filmnoir": "noir film-noir dark shadowy",
}.items()}
_PLAIN_WORD = re.compile(r"[^\W\d_][\w'’-]*")


def _word_forms(words) -> set[str]:
    """`words` lowercased with their plain inflections (-s, -es, 's, both ways; -ing taken off: "watching")."""
    out = set()
    for word in words:
        word = word.lower().replace("’", "'").strip("'-")
        if not word:
            continue
        out |= {word, word + "s", word + "es", word + "'s"}
        for suffix in ("'s", "es", "s", "ing"):
            if word.endswith(suffix) and len(word) > len(suffix) + 2:
                out.add(word[: -len(suffix)])
    return out


def caption_vocabulary(item: ItemInfo, profile: UserProfile | None, domain_words=()) -> frozenset[str]:
    """The words a caption for (`item`, `profile`) may use: the facts' own words (titles, the item's genres and
    description, the liked titles), the plain vocabulary, the tone words of the item's genres and
    `domain_words` (the domain's nouns and verbs: "film", "watch")."""
    facts = [item.title, item.name, item.text, " ".join(item.genres)]
    if profile is not None:
        facts += [*profile.liked_titles, *profile.liked_names]
    words = set(_PLAIN_WORD.findall(" ".join(facts)))
    for genre in item.genres:
        words |= GENRE_TONE.get(genre_key(genre), frozenset())
    words |= set(domain_words)
    return frozenset(_word_forms(words) | PLAIN_WORDS)


def unfounded_words(text: str, item: ItemInfo, profile: UserProfile | None = None, domain_words=()) -> list[str]:
    """The words of `text` (lowercase, in order, once each) that are neither in the facts of (`item`, `profile`)
    nor in the plain caption vocabulary (`caption_vocabulary`). A genre of the user's that the item lacks is
    one of them: in a caption it is said of the item."""
    return _outside(text, caption_vocabulary(item, profile, domain_words))


def keyword_vocabulary(liked: Sequence[ItemInfo], style_words: Sequence[str] = ()) -> frozenset[str]:
    """The words a preference keyword for a user who liked `liked` may use: the liked items' own words (names,
    genres, descriptions), the tone words of their genres, `style_words` (the domain's style hints for those
    genres: "futuristic neon") and function words. Not the plain caption vocabulary: a keyword says what
    the user likes, and "love" or "great" says nothing."""
    facts = [text for i in liked for text in (i.name, i.text, " ".join(i.genres))] + list(style_words)
    words = set(_PLAIN_WORD.findall(" ".join(facts)))
    for genre in {genre_key(g) for i in liked for g in i.genres}:
        words |= GENRE_TONE.get(genre, frozenset())
    return frozenset(_word_forms(words) | STOPWORDS)


def unfounded_keyword_words(keyword: str, liked: Sequence[ItemInfo], style_words: Sequence[str] = ()) -> list[str]:
    """The words of `keyword` outside `keyword_vocabulary(liked, style_words)` (a small model's "smorgle dum
    dum", "manga" for a user of thrillers), lowercase, once each."""
    return _outside(keyword, keyword_vocabulary(liked, style_words))


def _outside(text: str, allowed: frozenset[str]) -> list[str]:
    """The words of `text` not in `allowed`, lowercase, in order, once each."""
    if not isinstance(text, str):
        raise invalid("text", "a string", text)
    out: list[str] = []
    for word in _PLAIN_WORD.findall(text):
        key = word.lower().replace("’", "'").strip("'-")
        if key and key not in allowed and key not in out:
            out.append(key)
    return out


@dataclass(frozen=True)
class GroundingResult:
    """A caption and the reasons it is not grounded ([] when it is)."""

    text: str
    problems: tuple[str, ...]

    @property
    def grounded(self) -> bool:
        return not self.problems


def _facts(item: ItemInfo, profile: UserProfile | None) -> str:
    parts = [item.title, item.name, item.text, " ".join(item.genres), str(item.year or "")]
    if profile is not None:
        parts += [*profile.liked_titles, *profile.liked_names, *profile.top_genres,
                  *profile.keywords, *profile.preferred_prompts]
    return " ".join(parts)


def _titles(item: ItemInfo, profile: UserProfile | None) -> tuple[list[str], list[str]]:
    """(the item's titles, the liked titles), each as given and as a person writes it, lowercase, longest first."""
    own = {t.lower() for t in (item.title, item.name) if t}
    liked = {t.lower() for t in ((*profile.liked_titles, *profile.liked_names) if profile is not None else ()) if t}
    return sorted(own, key=len, reverse=True), sorted(liked - own, key=len, reverse=True)


def _genre_phrases(clause: str) -> list[tuple[str, str]]:
    """(phrase, genre key) of the unambiguous genre words in a lowercase clause."""
    found = []
    for phrase, key in sorted(GENRE_WORDS.items(), key=lambda kv: -len(kv[0])):
        if phrase not in _AMBIGUOUS and re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", clause):
            found.append((phrase, key))
    return found


def misattributed_genres(text: str, item: ItemInfo, profile: UserProfile | None) -> list[str]:
    """The user's favourite genres that the item does not have, said of the item: in a clause that does not
    speak of the user ("you", "fans") or a liked title, or in one that names the item too, unless "you"/"your"
    stands just before the genre ("Toy Story matches your taste for sci-fi" is fine, "Toy Story has the
    romance you love" is not)."""
    if profile is None:
        return []
    item_keys = {genre_key(g) for g in item.genres}
    user_only = {genre_key(g) for g in profile.top_genres} - item_keys
    if not user_only:
        return []
    own, liked = _titles(item, profile)
    out: list[str] = []
    for clause in _CLAUSE_BREAK.split(text.lower()):
        if not clause.strip():
            continue
        names_item = any(t in clause for t in own) or bool(re.search(r"\b(?:it|it's|its|this|the film|the book)\b",
                                                                    clause))
        of_user = bool(_USER_CUES.search(clause)) or any(t in clause for t in liked)
        if of_user and not any(t in clause for t in own):
            continue
        if not names_item and of_user:
            continue
        for phrase, key in _genre_phrases(clause):
            if key not in user_only or phrase in out:
                continue
            at = re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", clause).start()
            if _USER_CUES.search(" ".join(clause[:at].split()[-6:])):
                continue  # "your taste for sci-fi", "if you like romance": the user's genre, said of the user
            out.append(phrase)
    return out


# what an item is "about": a theme claim, fine only when the facts hold the theme's words
_ABOUT = re.compile(r"\b(?:all|as much|just as much|is|'s|mostly|really) about ((?:[\w'-]+ ){0,2}[\w'-]+)")


def unsupported_claims(text: str, facts: str) -> list[tuple[str, str]]:
    """(kind, words) of the claims about people, acclaim or plot in `text` that `facts` do not support, and
    themes ("all about misdirection") whose content words the facts do not hold."""
    lower, facts_lower = text.lower(), facts.lower()
    out = []
    fact_words = set(re.findall(r"[\w'-]+", facts_lower))
    for match in _ABOUT.finditer(lower):
        words = [w for w in match.group(1).split() if w not in STOPWORDS and len(w) > 2]
        if words and not all(w in fact_words or w.rstrip("s") in fact_words for w in words):
            out.append(("theme", match.group(0)))
    for kind, pattern in _CLAIMS:
        match = pattern.search(lower)
        if match and not pattern.search(facts_lower):
            out.append((kind, match.group(0)))
    return out


def _allowed_genres(item: ItemInfo, profile: UserProfile | None) -> set[str]:
    genres = [*item.genres, *(profile.top_genres if profile is not None else [])]
    return {genre_key(g) for g in genres}


def _sentence_starts(text: str) -> set[int]:
    starts = {0}
    for match in re.finditer(r"[.!?:;]['\")\]]*\s+|\n+", text):
        starts.add(match.end())
    return starts


def _first_word_index(text: str, start: int) -> int:
    match = _WORD.search(text, start)
    return match.start() if match else -1


def grounding_problems(text: str, item: ItemInfo, profile: UserProfile | None = None) -> list[str]:
    """Why `text` is not grounded in `item` and `profile`: one line per year, genre or name it invents."""
    if not isinstance(text, str):
        raise invalid("text", "a string", text)
    if not isinstance(item, ItemInfo):
        raise invalid("item", "a generation.prompts.ItemInfo", item)
    if profile is not None and not isinstance(profile, UserProfile):
        raise invalid("profile", "a generation.profile.UserProfile or None", profile)
    facts = _facts(item, profile)
    facts_lower = facts.lower()
    fact_words = {w.lower().strip("'’") for w in _WORD.findall(facts)}
    problems: list[str] = []

    # 1. years and decades
    known_years = set(re.findall(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)", facts))
    for match in _YEAR.finditer(text):
        year = match.group(1)
        if match.group(0).endswith("s"):  # "the 1990s": grounded by any known year of that decade
            if not any(y[:3] == year[:3] for y in known_years):
                problems.append(f"decade {year}s is not in the item's metadata or the user's profile")
        elif year not in known_years:
            problems.append(f"year {year} is not in the item's metadata or the user's profile")
    known_decades = {y[2] + "0" for y in known_years}
    for match in _DECADE.finditer(text):
        decade = match.group(1)
        if decade not in known_decades:
            problems.append(f"decade {match.group(0).strip()!r} is not in the item's metadata or the user's profile")

    # 2. genres
    allowed = _allowed_genres(item, profile)
    lower = text.lower()
    for phrase, key in sorted(GENRE_WORDS.items(), key=lambda kv: -len(kv[0])):
        if phrase in _AMBIGUOUS:
            continue
        if re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", lower) and key not in allowed:
            if re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", facts_lower):
                continue  # the facts use the word themselves (e.g. "romantic" in the description)
            problems.append(f"genre {phrase!r} is not among the item's genres or the user's favourite genres")
            allowed.add(key)  # report a genre once

    for phrase in misattributed_genres(text, item, profile):
        problems.append(f"genre {phrase!r} is the user's, not the item's: said of the item")

    # 3. claims about people, acclaim and plot that only a description could support
    for kind, words in unsupported_claims(text, facts):
        problems.append(f"{kind} claim {words!r} is not supported by the item's metadata")

    # 4. people and places: runs of capitalised words
    starts = {_first_word_index(text, s) for s in _sentence_starts(text)}
    words = list(_WORD.finditer(text))
    i = 0
    while i < len(words):
        word = words[i].group(0)
        if not word[0].isupper():
            i += 1
            continue
        run = [words[i]]
        j = i + 1
        while j < len(words):
            gap = text[run[-1].end():words[j].start()]
            w = words[j].group(0)
            if gap.strip() not in ("",) or not (w[0].isupper() or (w.lower() in _CONNECTORS and j + 1 < len(words)
                                                                      and words[j + 1].group(0)[0].isupper())):
                break
            run.append(words[j])
            j += 1
        while run and run[-1].group(0).lower() in _CONNECTORS:
            run.pop()
        if not run:  # a lone connector ("The", "La") with nothing capitalised after it
            i = j
            continue
        at_start = run[0].start() in starts
        tokens = [m.group(0) for m in run]
        if at_start and len(tokens) == 1:
            i = j
            continue
        if at_start and (tokens[0].lower() in _ORDINARY_CAPITALISED | _OPENERS or tokens[0].lower() in STOPWORDS):
            tokens = tokens[1:]  # "Because Steven Spielberg ...": the first word is just the sentence's start
        unknown = [t for t in tokens if t.lower().strip("'’") not in fact_words
                   and t.lower().removesuffix("'s").removesuffix("’s") not in fact_words
                   and t.lower() not in _ORDINARY_CAPITALISED and t.lower() not in _CONNECTORS]
        if unknown:
            name = " ".join(tokens)
            before = text[:run[0].start()].split()
            cue = before[-1].lower() if before else ""
            what = "place" if cue in _PLACE_CUES else "name"
            problems.append(f"{what} {name!r} is not in the item's metadata or the user's profile")
        i = j
    return problems


def check_caption(text: str, item: ItemInfo, profile: UserProfile | None = None) -> GroundingResult:
    """`grounding_problems` wrapped in a result."""
    return GroundingResult(text, tuple(grounding_problems(text, item, profile)))


def filter_grounded(texts: Sequence[str], item: ItemInfo, profile: UserProfile | None = None
                    ) -> tuple[list[str], list[GroundingResult]]:
    """(captions that pass, results of those dropped with their reasons), in the given order."""
    if isinstance(texts, str):
        raise invalid("texts", "a sequence of caption strings", texts)
    kept, dropped = [], []
    for text in texts:
        result = check_caption(text, item, profile)
        (kept if result.grounded else dropped).append(text if result.grounded else result)
    return kept, dropped
