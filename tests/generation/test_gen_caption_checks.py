"""The caption checks, table-driven: what a real small instruct model got wrong (each must be refused) and good
captions (each must pass), in the film domain and a book domain."""

from __future__ import annotations

import pytest

from generation.captions import (
    caption_example,
    caption_problems,
    caption_request,
    keyword_problem,
    parse_keywords,
    template_caption,
)
from generation.domain import BOOK, FILM, PRODUCT
from generation.profile import UserProfile
from generation.prompts import ItemInfo, natural_title

SCIFI = UserProfile("u-scifi", liked_titles=["Alien", "Blade Runner", "Terminator, The"],
                    top_genres=["Sci-Fi", "Action"], keywords=["futuristic neon"])
ROMANCE = UserProfile("u-romance", liked_titles=["Sleepless in Seattle", "Emma"], top_genres=["Romance", "Comedy"],
                      keywords=["soft golden light"])
DRAMA = UserProfile("u-drama", liked_titles=["One Flew Over the Cuckoo's Nest", "Heathers"],
                    top_genres=["Drama", "Thriller", "Horror"], keywords=["stark contrast"])

STAR_WARS = ItemInfo("50", "Star Wars", 1977, ["Action", "Adventure", "Romance", "Sci-Fi", "War"])
SLEEPLESS = ItemInfo("88", "Sleepless in Seattle", 1993, ["Comedy", "Romance"])
LION_KING = ItemInfo("71", "Lion King, The", 1994, ["Animation", "Children's", "Musical"])
GODFATHER = ItemInfo("127", "Godfather, The", 1972, ["Action", "Crime", "Drama"])
LAMBS = ItemInfo("98", "Silence of the Lambs, The", 1991, ["Drama", "Thriller"])
BACK = ItemInfo("204", "Back to the Future", 1985, ["Comedy", "Sci-Fi"])
TOY_STORY = ItemInfo("1", "Toy Story", 1995, ["Animation", "Children's", "Comedy"])
BOOK_ITEM = ItemInfo("b5", "A Beacon Chronicle 5", 1995, ["Fantasy"],
                     "A Beacon Chronicle 5: dragons, wizards and ancient prophecy. A fantasy book about dragons and "
                     "ancient prophecy.")
READER = UserProfile("u0", liked_titles=["The Harbour of Lantern 0"], top_genres=["Fantasy"], keywords=["dragons"])
KETTLE = ItemInfo("p3", "Classic Compass Juniper Set", None, ["Kitchen"],
                  "Classic Compass Juniper Set: cast iron, chef knife and espresso grinder.")
SHOPPER = UserProfile("u1", liked_titles=["Atlas Beacon Pro"], top_genres=["Kitchen"], keywords=["cast iron"])

# (caption, item, profile, domain, what the first problem must say) -- the replies the issue quotes, and
# replies the real SmolLM2-135M-Instruct gave with this project's prompt
REJECTED = [
    ("The viewer liked: Alien (1979); Blade Runner (1982); Terminator, The (1984). Their favourite genres: Sci-Fi, "
     "Action.", STAR_WARS, SCIFI, FILM, "echoes"),
    ("Sleepless in Seattle (1993) is a film that blends elements of science fiction, comedy, and horror.",
     SLEEPLESS, ROMANCE, FILM, "not grounded: genre 'science fiction'"),
    ("The Lion King, The is a blend of science fiction and horror.", LION_KING, ROMANCE, FILM, "an inverted title"),
    ("The film stars Michael B. in The Godfather.", GODFATHER, DRAMA, FILM, "not grounded: people claim 'stars'"),
    ("The film Godfather, The is a classic you will enjoy.", GODFATHER, DRAMA, FILM, "an inverted title"),
    ("The Silence of the Lambs is a romantic comedy that's both heartwarming and heartbreaking.", LAMBS, ROMANCE,
     FILM, "not grounded: genre"),
    ("Back to the Future is a fun ride for you. Back to the Future is a fun ride for you.", BACK, SCIFI, FILM,
     "repeats a sentence"),
    ("If you loved: One Flew Over the Cuckoo's Nest, Star Wars is a must-choose for you.", STAR_WARS, DRAMA, FILM,
     "echoes the request's field 'loved:'"),
    ("If you loved The Silence of the Lambs, it's a classic thriller that's also a drama.", LAMBS, DRAMA, FILM,
     "says the user already loved the item"),
    ("The Godfather is a classic, but I'm not sure which film is the best one to choose.", GODFATHER, DRAMA, FILM,
     "speaks in the first person"),
    ("The Lion King is a Disney movie that has captivated audiences with its colorful characters.", LION_KING,
     ROMANCE, FILM, "not grounded"),
    ("Toy Story offers a compelling blend of drama and thriller for you.", TOY_STORY, DRAMA, FILM,
     "not grounded: genre 'thriller' is the user's"),
    ("If you loved When The Cats Are Away, Star Wars is another action film that should win you over.",
     STAR_WARS, ROMANCE, FILM, "not grounded: name 'When The Cats Are Away'"),
    ("If you loved The Godfather, it's one of the best thriller movies ever made.", GODFATHER, DRAMA, FILM,
     "says the user already loved the item"),
    ("If you loved Heathers, Star Wars, you'll love it.", STAR_WARS, DRAMA, FILM,
     "says the user already loved the item"),
    ("Star Wars is a classic, classic adventure for any fan of the stars.", STAR_WARS, SCIFI, FILM,
     "repeats the word 'classic'"),
    ("The story of Toy Story is a tale of toys in a world where love is all that matters.", TOY_STORY, ROMANCE,
     FILM, "not grounded: plot claim"),
    ("If you loved One Flew Over the Cuckoo's Nest, you should be right there with them.", STAR_WARS, DRAMA, FILM,
     "does not name the item"),
    ("Star Wars is a 1980 classic that you will love.", STAR_WARS, SCIFI, FILM, "not grounded: year 1980"),
    ("If you loved Alien, you must check out Star Wars: it was on the top of the charts for a long time.",
     STAR_WARS, SCIFI, FILM, "not grounded: acclaim claim 'charts'"),
    ("If you loved Alien, star wars is the perfect choice.", STAR_WARS, SCIFI, FILM, "does not name the item"),
    ("If you loved Alien, Star Wars is a classic with a great story and a great story to share.", STAR_WARS,
     SCIFI, FILM, "repeats the phrase 'a great story'"),
    ("Since you enjoyed Alien, Star Wars: space battles, you'll love Alien.", STAR_WARS, SCIFI, FILM,
     "names a liked title twice"),
    ("Fans of Heathers will find that Toy Story is a comedy that's as iconic as it is relatable.", TOY_STORY, DRAMA,
     FILM, "not grounded: acclaim claim 'iconic'"),
    ("Fans of Heathers will find that Toy Story is a comedy that's all about misdirection.", TOY_STORY, DRAMA, FILM,
     "not grounded: theme claim"),
    ("Fans of Heathers will find that The Godfather is a drama film that will make you laugh.", GODFATHER, DRAMA,
     FILM, "not grounded: genre 'make you laugh'"),
    ("If you loved Heathers, Toy Story is another comedy that should win you over.", TOY_STORY, DRAMA, FILM,
     "calls the item 'another'"),
    ("Fans of Sleepless in Seattle will find that Toy Story is a classic comedy that has been reimagined in many "
     "ways.", TOY_STORY, ROMANCE, FILM, "not grounded: acclaim claim 'reimagined'"),
    ("Star Wars was filmed in Tunisia, which you will love.", STAR_WARS, SCIFI, FILM, "not grounded: place 'Tunisia'"),
    ("The reader liked: The Harbour of Lantern 0. A Beacon Chronicle 5 is for you.", BOOK_ITEM, READER, BOOK,
     "echoes"),
    ("A Beacon Chronicle 5 is a chilling horror book you will enjoy.", BOOK_ITEM, READER, BOOK,
     "not grounded: genre 'horror'"),
    ("A Beacon Chronicle 5, written by Mary Stone, is full of dragons for you.", BOOK_ITEM, READER, BOOK,
     "not grounded: people claim 'written by'"),
    ("Chronicle 5, A is another fantasy book that should win you over.", BOOK_ITEM, READER, BOOK,
     "does not name the item"),
    ("Classic Compass Juniper Set is an award-winning kitchen pick for you.", KETTLE, SHOPPER, PRODUCT,
     "not grounded: acclaim claim 'award'"),
]

ACCEPTED = [
    ("If you loved Alien, Star Wars is a sci-fi adventure that should win you over.", STAR_WARS, SCIFI, FILM),
    ("The Silence of the Lambs is a tense thriller with drama, a fine pick if you like to be gripped.", LAMBS,
     DRAMA, FILM),
    ("The Godfather is a crime drama worth a place on your list.", GODFATHER, DRAMA, FILM),
    ("Back to the Future mixes comedy and sci-fi, so you get the laughs and the fun at once.", BACK,
     SCIFI, FILM),
    ("If you loved Sleepless in Seattle, Toy Story is a comedy that should win you over.", TOY_STORY,
     ROMANCE, FILM),
    ("If you loved Terminator, Star Wars brings more of the sci-fi action you enjoy.", STAR_WARS, SCIFI, FILM),
    ("If you loved The Harbour of Lantern 0, A Beacon Chronicle 5 is a fantasy book full of dragons and "
     "wizards.", BOOK_ITEM, READER, BOOK),
    ("Classic Compass Juniper Set brings cast iron and a chef knife to your kitchen, just what you like.", KETTLE,
     SHOPPER, PRODUCT),
]


# Each claim below may be true, but the request does not hold it (the app cannot check it): refused, with the
# words named. What a small model adds most often ("all about misdirection", "genre-defining", "make you laugh"
# for a drama, a romance the reader never liked) is of this kind.
UNFOUNDED = [
    ("Back to the Future mixes comedy and sci-fi with plenty of time-travel fun.", BACK, SCIFI, FILM,
     ["time-travel"]),
    ("The Godfather is a crime drama with the weight you look for in a film.", GODFATHER, DRAMA, FILM, ["weight"]),
    ("If you loved Alien, Star Wars is a genre-defining sci-fi adventure.", STAR_WARS, SCIFI, FILM,
     ["genre-defining"]),
    ("The Godfather is a crime drama that is all about misdirection.", GODFATHER, DRAMA, FILM, ["misdirection"]),
    ("The Godfather is a crime drama that will make you laugh.", GODFATHER, DRAMA, FILM, ["laugh"]),
    ("A Beacon Chronicle 5 is a fantasy book about a second chance romance.", BOOK_ITEM, READER, BOOK,
     ["second", "chance"]),
]


@pytest.mark.parametrize("text,item,profile,domain,words", UNFOUNDED, ids=[u[0][:40] for u in UNFOUNDED])
def test_words_the_facts_do_not_hold_are_refused(text, item, profile, domain, words):
    problems = caption_problems(text, item, profile, domain)
    assert any(p.startswith("not grounded: words that neither the facts nor the plain vocabulary hold")
               and all(w in p for w in words) for p in problems), problems


def test_a_genres_own_words_are_fine_for_that_genre_only():
    assert caption_problems("Back to the Future is a comedy that will make you laugh.", BACK, SCIFI, FILM) == []
    assert caption_problems("Toy Story is a comedy full of laughs, a fine pick for you.", TOY_STORY, ROMANCE,
                            FILM) == []
    assert any("(laughs)" in p for p in caption_problems("The Godfather is a crime drama full of laughs.",
                                                           GODFATHER, DRAMA, FILM))


@pytest.mark.parametrize("text,why", [
    ("If you loved Alien, Star Wars is a sci-fi adventure that should win them over.", "speaks to the"),
    ("If you loved Alien, Star Wars is a sci-fi film that won you over.", "speaks of the item as already seen"),
    ("If you loved Alien, Star Wars is a sci-fi film you would have enjoyed.", "speaks of the item as already"),
    ("If you loved Alien, Star Wars is an adventurous adventure for you.", "says one thing twice"),
    ("If you loved Alien, Star Wars is a genre that combines action and adventure.", "calls the item a genre"),
    ("If you loved Alien, Star Wars is not a romance but a sci-fi adventure for you.", "a negation"),
])
def test_mixed_address_and_negation_are_refused(text, why):
    assert any(p.startswith(why) for p in caption_problems(text, STAR_WARS, SCIFI, FILM))


@pytest.mark.parametrize("text,item,profile,domain,why", REJECTED, ids=[r[0][:40] for r in REJECTED])
def test_what_a_real_model_got_wrong_is_refused(text, item, profile, domain, why):
    problems = caption_problems(text, item, profile, domain)
    assert problems, text
    assert any(p.startswith(why) for p in problems), problems


@pytest.mark.parametrize("text,item,profile,domain", ACCEPTED, ids=[a[0][:40] for a in ACCEPTED])
def test_good_captions_pass(text, item, profile, domain):
    assert caption_problems(text, item, profile, domain) == []


@pytest.mark.parametrize("raw,natural", [
    ("Lion King, The", "The Lion King"), ("Postino, Il", "Il Postino"), ("Boot, Das", "Das Boot"),
    ("Misérables, Les", "Les Misérables"), ("Promesse, La", "La Promesse"), ("Apartement, L'", "L'Apartement"),
    ("Blue Angel, The (Blaue Engel, Der)", "The Blue Angel"), ("Convent, The (Convento, O)", "The Convent"),
    ("Good, the Bad and the Ugly, The", "The Good, the Bad and the Ugly"), ("Me, Myself, I", "Me, Myself, I"),
    ("Vitelloni, I", "I Vitelloni"), ("Niño, El", "El Niño"), ("Toy Story", "Toy Story"),
    ("When the Cats Away (Chacun cherche son chat)", "When the Cats Away"), ("Plan A", "Plan A"),
])
def test_titles_are_named_as_a_person_writes_them(raw, natural):
    assert natural_title(raw) == natural


@pytest.mark.parametrize("domain", [FILM, BOOK, PRODUCT])
def test_the_request_holds_no_inverted_title_and_follows_the_domain(domain):
    item = ItemInfo("9", "Lion King, The", 1994, ["Animation", "Sci-Fi"])
    request = caption_request(item, SCIFI, 220, domain)
    assert "Lion King, The" not in request and "Terminator, The" not in request
    assert request.startswith(f"{domain.noun.capitalize()}: The Lion King (1994), animation and sci-fi.")
    assert f"The {domain.audience} loved: Alien." in request
    assert "They like: sci-fi." in request  # only the favourite genres the item shares
    assert "action" not in request.lower()  # a genre of the user's only is not offered to the model
    example, reply = caption_example(item, SCIFI, 220, domain)
    assert example.count("\n") == request.count("\n") and domain.noun in reply
    assert caption_problems(reply, ItemInfo("x", "Harbour Lights", None, ["animation"]),
                            UserProfile("e", ["Northern Star"], ["animation"], ["x"]), domain) == []


def test_a_description_that_only_restates_the_title_is_left_out():
    movielens = ItemInfo("1", "Toy Story", 1995, ["Animation"], "Toy Story (1995). Genres: Animation.")
    assert "About:" not in caption_request(movielens, SCIFI, 220)
    assert "About: A Beacon" in caption_request(BOOK_ITEM, READER, 220, BOOK)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("item,profile", [(LION_KING, ROMANCE), (GODFATHER, DRAMA), (STAR_WARS, SCIFI),
                                          (TOY_STORY, None)])
def test_the_template_fallback_passes_the_checks(seed, item, profile):
    text = template_caption(item, profile, seed, 220)
    assert item.title == item.name or item.title not in text
    assert caption_problems(text, item, profile) == [], text


@pytest.mark.parametrize("keyword,ok", [
    ("futuristic neon", True), ("eerie darkness", True), ("space adventure", True),  # style hints, tone, genre
    ("futuristic cities", False), ("dark humor", False),  # no liked item holds "cities"; none is a comedy
    ("smorgle dum dum", False), ("manga", False),  # what a small model writes when it runs out of ideas
    ("romantic comedy", False),  # no liked item is a romance
    ("oscar winners", False), ("1980s nostalgia", False), ("viewer liked", False), ("alien", False),
    ("the sea", True), ("climate history and", False), ("of space", False),  # fragments of a looping reply
    ("star wars", False),  # a liked title
])
def test_llm_keywords_are_checked_like_captions(keyword, ok):
    liked = [ItemInfo("82", "Alien", 1979, ["Horror", "Sci-Fi"]), ItemInfo("50", "Star Wars", 1977,
                                                                           ["Action", "Adventure", "Sci-Fi"]),
             ItemInfo("9", "The Quarry of Meridian 3", None, ["Science"], "climate history and the sea")]
    assert (keyword_problem(keyword, liked, FILM) is None) == ok


def test_a_looping_keyword_reply_counts_each_part_once():
    assert parse_keywords("the abyss, the abyss, the abyss, the abyss", 8) is None  # one keyword: not a list
    assert parse_keywords("dark mood, neon light, dark mood, dark mood, dark mood", 8) == ["dark mood", "neon light"]
