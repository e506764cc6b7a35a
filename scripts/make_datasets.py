#!/usr/bin/env python3
"""Generate the synthetic ``qa`` and ``json-extract`` datasets.

Writes ``datasets/qa/data.jsonl`` and ``datasets/json-extract/data.jsonl`` (the test
rows every evaluation reads) and each dataset's ``train.jsonl`` (the train split that
fine-tuning recipes read) from fixed seeds and the word lists below, using the standard
library only. The output is byte-identical on every run, so the committed files can be
checked against it.

A train split never overlaps its test rows: a train row whose input text (question or
text to extract from) or whose answer object equals a test row's is drawn again, and the
train facts of ``qa`` are a list of their own. The train generators use seeds of their
own, so the test files stay as they were.

Run from anywhere::

    python scripts/make_datasets.py            # (re)write both files
    python scripts/make_datasets.py --check    # exit 1 if the committed files differ

Changing a list or a template here changes the data, and with it each dataset's
content-hash version: regenerate and commit the files together with the change.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import string
import sys
from collections.abc import Callable
from pathlib import Path

SEED = 20240611
ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- qa

# (question, answer, category). Answers are one or two words that a correct reply
# must contain verbatim after normalization (lowercase, no punctuation or articles).
# Numeric facts are left out on purpose: the qa spec's numeric_match metric should be
# null for factual items, and it only stays null when the target is not a number.
FACTS: list[tuple[str, str, str]] = [
    ("What is the capital of France?", "Paris", "capital"),
    ("What is the capital of Japan?", "Tokyo", "capital"),
    ("What is the capital of Italy?", "Rome", "capital"),
    ("What is the capital of Germany?", "Berlin", "capital"),
    ("What is the capital of Spain?", "Madrid", "capital"),
    ("What is the capital of Canada?", "Ottawa", "capital"),
    ("What is the capital of Australia?", "Canberra", "capital"),
    ("What is the capital of Egypt?", "Cairo", "capital"),
    ("What is the capital of Kenya?", "Nairobi", "capital"),
    ("What is the capital of Russia?", "Moscow", "capital"),
    ("What is the capital of China?", "Beijing", "capital"),
    ("What is the capital of Portugal?", "Lisbon", "capital"),
    ("What is the capital of Greece?", "Athens", "capital"),
    ("What is the capital of Norway?", "Oslo", "capital"),
    ("What is the capital of Sweden?", "Stockholm", "capital"),
    ("What is the capital of Poland?", "Warsaw", "capital"),
    ("What is the capital of Ireland?", "Dublin", "capital"),
    ("What is the capital of Argentina?", "Buenos Aires", "capital"),
    ("What is the capital of Peru?", "Lima", "capital"),
    ("What is the capital of Thailand?", "Bangkok", "capital"),
    ("What is the capital of Austria?", "Vienna", "capital"),
    ("What is the capital of Hungary?", "Budapest", "capital"),
    ("What is the capital of Finland?", "Helsinki", "capital"),
    ("What is the capital of Denmark?", "Copenhagen", "capital"),
    ("What is the capital of South Korea?", "Seoul", "capital"),
    ("What is the capital of Cuba?", "Havana", "capital"),
    ("What is the capital of Turkey?", "Ankara", "capital"),
    ("What is the capital of Belgium?", "Brussels", "capital"),
    ("What is the capital of the United Kingdom?", "London", "capital"),
    ("What is the capital of Nigeria?", "Abuja", "capital"),
    ("What is the capital of Iran?", "Tehran", "capital"),
    ("What is the capital of Vietnam?", "Hanoi", "capital"),
    ("What is the capital of the Philippines?", "Manila", "capital"),
    ("What is the capital of Iceland?", "Reykjavik", "capital"),
    ("What is the chemical symbol for gold?", "Au", "chemistry"),
    ("What is the chemical symbol for silver?", "Ag", "chemistry"),
    ("What is the chemical symbol for iron?", "Fe", "chemistry"),
    ("What is the chemical symbol for sodium?", "Na", "chemistry"),
    ("What is the chemical symbol for potassium?", "K", "chemistry"),
    ("What is the chemical symbol for helium?", "He", "chemistry"),
    ("What is the chemical symbol for lead?", "Pb", "chemistry"),
    ("What is the chemical symbol for copper?", "Cu", "chemistry"),
    ("What is the chemical symbol for mercury?", "Hg", "chemistry"),
    ("What is the chemical symbol for tin?", "Sn", "chemistry"),
    ("What is the chemical symbol for calcium?", "Ca", "chemistry"),
    ("What is the chemical symbol for zinc?", "Zn", "chemistry"),
    ("What is the chemical symbol for chlorine?", "Cl", "chemistry"),
    ("Which metal is liquid at room temperature?", "mercury", "chemistry"),
    ("What gas do plants take in from the air to make food?", "carbon dioxide", "science"),
    ("Which gas makes up most of Earth's atmosphere?", "nitrogen", "science"),
    ("Which gas do humans need to breathe in to stay alive?", "oxygen", "science"),
    ("What is the hardest natural substance?", "diamond", "science"),
    ("What is frozen water called?", "ice", "science"),
    ("What is the center of an atom called?", "nucleus", "science"),
    ("Which particle in an atom has a negative charge?", "electron", "science"),
    ("What force pulls objects toward the ground?", "gravity", "science"),
    ("What instrument measures temperature?", "thermometer", "science"),
    ("What instrument measures air pressure?", "barometer", "science"),
    ("What is the study of living things called?", "biology", "science"),
    ("What is it called when water vapor turns into liquid?", "condensation", "science"),
    ("What colour is chlorophyll?", "green", "science"),
    ("Which organ pumps blood through the body?", "heart", "science"),
    ("What is the largest organ of the human body?", "skin", "science"),
    ("What is the longest bone in the human body?", "femur", "science"),
    ("What type of animal is a frog?", "amphibian", "science"),
    ("What is the fastest land animal?", "cheetah", "science"),
    ("What is the largest mammal on Earth?", "blue whale", "science"),
    ("What sweet food do bees make?", "honey", "science"),
    ("Which planet is known as the Red Planet?", "Mars", "astronomy"),
    ("What is the largest planet in our solar system?", "Jupiter", "astronomy"),
    ("Which planet is closest to the Sun?", "Mercury", "astronomy"),
    ("Which planet is famous for its bright rings?", "Saturn", "astronomy"),
    ("What is the natural satellite of Earth called?", "Moon", "astronomy"),
    ("Which star is closest to Earth?", "Sun", "astronomy"),
    ("What is the name of the galaxy that contains our solar system?", "Milky Way", "astronomy"),
    ("What is the largest ocean on Earth?", "Pacific", "geography"),
    ("What is the longest river in Africa?", "Nile", "geography"),
    ("What is the longest river in South America?", "Amazon", "geography"),
    ("What is the tallest mountain on Earth above sea level?", "Everest", "geography"),
    ("What is the largest continent by area?", "Asia", "geography"),
    ("What is the largest country by area?", "Russia", "geography"),
    ("On which continent is Egypt?", "Africa", "geography"),
    ("In which country are the pyramids of Giza?", "Egypt", "geography"),
    ("Which country is home to the kangaroo?", "Australia", "geography"),
    ("What is the largest hot desert in the world?", "Sahara", "geography"),
    ("Which ocean lies between Africa and Australia?", "Indian", "geography"),
    ("What language is mainly spoken in Brazil?", "Portuguese", "geography"),
    ("What is the currency of Japan?", "yen", "geography"),
    ("Which city is known as the Big Apple?", "New York", "geography"),
    ("Who wrote the play Romeo and Juliet?", "Shakespeare", "general"),
    ("What shape has three sides?", "triangle", "general"),
    ("Which season comes after winter?", "spring", "general"),
    ("What is the opposite direction of north?", "south", "general"),
]

# Facts for the qa train split only: none of these questions is in FACTS.
TRAIN_FACTS: list[tuple[str, str, str]] = [
    ("What is the capital of Chile?", "Santiago", "capital"),
    ("What is the capital of Mexico?", "Mexico City", "capital"),
    ("What is the capital of India?", "New Delhi", "capital"),
    ("What is the capital of Switzerland?", "Bern", "capital"),
    ("What is the capital of the Netherlands?", "Amsterdam", "capital"),
    ("What is the capital of Colombia?", "Bogota", "capital"),
    ("What is the capital of Morocco?", "Rabat", "capital"),
    ("What is the capital of Ghana?", "Accra", "capital"),
    ("What is the capital of Indonesia?", "Jakarta", "capital"),
    ("What is the capital of Ukraine?", "Kyiv", "capital"),
    ("What is the capital of Romania?", "Bucharest", "capital"),
    ("What is the capital of Czechia?", "Prague", "capital"),
    ("What is the capital of Venezuela?", "Caracas", "capital"),
    ("What is the capital of Ethiopia?", "Addis Ababa", "capital"),
    ("What is the chemical symbol for oxygen?", "O", "chemistry"),
    ("What is the chemical symbol for carbon?", "C", "chemistry"),
    ("What is the chemical symbol for nitrogen?", "N", "chemistry"),
    ("What is the chemical symbol for hydrogen?", "H", "chemistry"),
    ("What is the chemical symbol for magnesium?", "Mg", "chemistry"),
    ("What is the chemical symbol for sulfur?", "S", "chemistry"),
    ("What is the chemical symbol for neon?", "Ne", "chemistry"),
    ("What is the chemical symbol for aluminium?", "Al", "chemistry"),
    ("What is it called when liquid water slowly turns into vapor?", "evaporation", "science"),
    ("What do caterpillars turn into?", "butterflies", "science"),
    ("Which organ do humans use to breathe?", "lungs", "science"),
    ("What is a baby cat called?", "kitten", "science"),
    ("What is the largest bird in the world?", "ostrich", "science"),
    ("Which planet is the largest rocky planet?", "Earth", "astronomy"),
    ("Which planet is farthest from the Sun?", "Neptune", "astronomy"),
    ("What is the longest river in Europe?", "Volga", "geography"),
    ("What is the smallest continent by area?", "Australia", "geography"),
    ("What language is mainly spoken in Mexico?", "Spanish", "geography"),
    ("What is the currency of the United Kingdom?", "pound", "geography"),
    ("Who painted the Mona Lisa?", "Leonardo", "general"),
    ("What shape has four equal sides?", "square", "general"),
    ("Which season comes after summer?", "autumn", "general"),
]

NAMES = [
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kemi", "Liam", "Maya", "Nikolai", "Olga", "Priya", "Quentin", "Rosa", "Sam", "Tara",
]  # fmt: skip
ITEMS = ["apples", "marbles", "pencils", "stickers", "cookies", "books", "coins", "stamps"]


def _word_problem(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    shape = rng.randrange(5)
    if shape == 0:
        a, b = rng.randint(3, 30), rng.randint(2, 30)
        return (
            f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?",
            a + b,
        )
    if shape == 1:
        a = rng.randint(10, 60)
        b = rng.randint(2, a - 2)
        return f"{name} had {a} {item} and gave away {b}. How many {item} are left?", a - b
    if shape == 2:
        a, b = rng.randint(2, 9), rng.randint(2, 12)
        return (
            f"There are {a} boxes with {b} {item} in each box. How many {item} are there in total?",
            a * b,
        )
    if shape == 3:
        each, friends = rng.randint(2, 9), rng.randint(2, 6)
        return (
            f"{name} shares {each * friends} {item} equally among {friends} friends. "
            f"How many {item} does each friend get?",
            each,
        )
    a, b = rng.randint(5, 40), rng.randint(5, 40)
    return (
        f"{name} reads {a} pages on Monday and {b} pages on Tuesday. How many pages is that in total?",
        a + b,
    )


def _arithmetic(rng: random.Random, op: str, level: str) -> tuple[str, int]:
    # Results stay non-negative and below 1000: normalized matching drops a minus sign
    # and a thousands separator, which would let wrong replies match.
    small = level == "easy"
    if op == "addition":
        a, b = (
            (rng.randint(1, 9), rng.randint(1, 9))
            if small
            else (rng.randint(10, 99), rng.randint(10, 99))
        )
        return f"What is {a} + {b}?", a + b
    if op == "subtraction":
        a = rng.randint(5, 18) if small else rng.randint(30, 99)
        b = rng.randint(1, a - 1)
        return f"What is {a} - {b}?", a - b
    if op == "multiplication":
        a, b = (
            (rng.randint(2, 9), rng.randint(2, 9))
            if small
            else (rng.randint(2, 9), rng.randint(11, 25))
        )
        return f"What is {a} times {b}?", a * b
    return _word_problem(rng)


ARITHMETIC_PLAN = [  # (operation, difficulty, how many)
    ("addition", "easy", 8),
    ("addition", "medium", 8),
    ("subtraction", "easy", 7),
    ("subtraction", "medium", 7),
    ("multiplication", "easy", 8),
    ("multiplication", "medium", 7),
    ("word-problem", "medium", 17),
]


def make_qa(
    rng: random.Random,
    *,
    facts: list[tuple[str, str, str]] = FACTS,
    plan: list[tuple[str, str, int]] = ARITHMETIC_PLAN,
    exclude: set[str] = frozenset(),
    id_prefix: str = "qa",
) -> list[dict]:
    """Arithmetic and factual questions, shuffled so any prefix holds both kinds.

    Questions in ``exclude`` (the test questions, when making the train split) are drawn
    again.
    """
    items: list[dict] = []
    seen: set[str] = set(exclude)
    for op, level, count in plan:
        made = 0
        while made < count:
            question, value = _arithmetic(rng, op, level)
            # A reply that echoes the question must not match by accident, so the
            # answer may not already appear in it.
            if question in seen or _contains(question, str(value)):
                continue
            seen.add(question)
            items.append(
                {
                    "question": question,
                    "answer": str(value),
                    "kind": "arithmetic",
                    "tags": ["arithmetic", op, level],
                }
            )
            made += 1
    for question, answer, category in facts:
        if question in exclude:
            raise ValueError(f"train fact {question!r} is a test question")
        items.append(
            {
                "question": question,
                "answer": answer,
                "kind": "factual",
                "tags": ["factual", category, "easy"],
            }
        )
    rng.shuffle(items)
    rows = []
    for i, item in enumerate(items, start=1):
        rows.append({"id": f"{id_prefix}-{i:04d}", **item})
    return rows


# Twice the test split's arithmetic, with every fact of TRAIN_FACTS.
TRAIN_ARITHMETIC_PLAN = [(op, level, 2 * count) for op, level, count in ARITHMETIC_PLAN]


# ------------------------------------------------------------------ json-extract

FIRST = [
    "Alice", "Bruno", "Chloe", "Daniel", "Emma", "Felix", "Hannah", "Ivan", "Julia", "Karl",
    "Laura", "Marco", "Nina", "Oscar", "Paula", "Rafael", "Sofia", "Tomas", "Uma", "Victor",
]  # fmt: skip
LAST = [
    "Adams", "Becker", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Novak", "Olsen", "Patel", "Rossi", "Silva",
]  # fmt: skip
CITIES = [
    "Lyon", "Porto", "Denver", "Osaka", "Krakow", "Leeds", "Austin", "Bergen", "Seville",
    "Turin", "Halifax", "Perth", "Ghent", "Malmo", "Dresden", "Cork", "Tampa", "Nagoya",
]  # fmt: skip
PRODUCTS = [
    "wireless mouse", "desk lamp", "coffee grinder", "yoga mat", "water bottle",
    "mechanical keyboard", "travel mug", "phone charger", "notebook", "backpack",
    "umbrella", "tea kettle", "bike helmet", "garden hose", "blender",
]  # fmt: skip
EVENT_ADJ = ["Spring", "Annual", "Summer", "Winter", "Community", "Open", "Regional", "Late"]
EVENT_NOUN = [
    "Jazz Night", "Robotics Fair", "Book Swap", "Film Festival", "Chess Open", "Food Market",
    "Poetry Reading", "Science Expo", "Charity Run", "Craft Show",
]  # fmt: skip
VENUES = [
    "Riverside Hall", "City Library", "Harbor Pavilion", "Oak Park", "Grand Theater",
    "Union Station", "Maple Community Center", "North Gym", "Lakeside Arena", "Old Mill",
]  # fmt: skip
TITLE_ADJ = ["Silent", "Hidden", "Broken", "Golden", "Distant", "Crimson", "Quiet", "Last"]
TITLE_NOUN = ["Harbor", "Garden", "Compass", "Orchard", "Lantern", "Valley", "Winter", "Signal"]


def _person(rng: random.Random) -> tuple[str, dict]:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    age, city = rng.randint(18, 85), rng.choice(CITIES)
    text = rng.choice(
        [
            f"{name} is {age} years old and lives in {city}.",
            f"Meet {name}, a {age}-year-old from {city}.",
            f"Our new member, {name}, moved to {city} last year. {name.split()[0]} is {age}.",
        ]
    )
    return text, {"name": name, "age": age, "city": city}


def _order(rng: random.Random) -> tuple[str, dict]:
    order_id = f"ORD-{rng.randint(10000, 99999)}"
    product, quantity = rng.choice(PRODUCTS), rng.randint(1, 24)
    text = rng.choice(
        [
            f"Order {order_id} contains {quantity} x {product}.",
            f"Please ship {quantity} units of {product} for order {order_id}.",
            f"Customer placed order {order_id}: {product}, quantity {quantity}.",
        ]
    )
    return text, {"order_id": order_id, "product": product, "quantity": quantity}


def _event(rng: random.Random) -> tuple[str, dict]:
    title = f"{rng.choice(EVENT_ADJ)} {rng.choice(EVENT_NOUN)}"
    # Dates are ISO so that the value to copy out of the text is unambiguous.
    date = f"{rng.randint(2024, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    venue = rng.choice(VENUES)
    text = rng.choice(
        [
            f"The {title} takes place on {date} at {venue}.",
            f"Join us at {venue} on {date} for the {title}!",
            f"Save the date: {title}, {date}, {venue}.",
        ]
    )
    return text, {"title": title, "date": date, "venue": venue}


def _book(rng: random.Random) -> tuple[str, dict]:
    title = f"{rng.choice(TITLE_ADJ)} {rng.choice(TITLE_NOUN)}"
    author = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    year = rng.randint(1950, 2023)
    text = rng.choice(
        [
            f"{title} is a novel by {author}, first published in {year}.",
            f"In {year}, {author} published the book {title}.",
            f"Book of the month: {title} ({year}), written by {author}.",
        ]
    )
    return text, {"title": title, "author": author, "year": year}


EXTRACT_KINDS: list[tuple[str, Callable[[random.Random], tuple[str, dict]], int]] = [
    ("person", _person, 32),
    ("order", _order, 32),
    ("event", _event, 32),
    ("book", _book, 32),
]


TRAIN_EXTRACT_PER_KIND = 64


def make_json_extract(
    rng: random.Random,
    *,
    per_kind: int | None = None,
    exclude: list[dict] = (),
    id_prefix: str = "je",
) -> list[dict]:
    """Template texts with the three-field object each one states.

    A text or an answer object of a row in ``exclude`` (the test rows, when making the
    train split) is drawn again.
    """
    items: list[dict] = []
    seen: set[str] = {row["text"] for row in exclude}
    seen_objects: set[str] = {row["expected"] for row in exclude}
    for kind, make, count in EXTRACT_KINDS:
        made = 0
        while made < (per_kind or count):
            text, obj = make(rng)
            if text in seen or json.dumps(obj, sort_keys=True) in seen_objects:
                continue
            seen.add(text)
            items.append(
                {
                    "text": text,
                    "schema_fields": ", ".join(obj),  # key order as the text introduces them
                    "expected": json.dumps(obj, sort_keys=True),
                    "tags": [kind],
                }
            )
            made += 1
    rng.shuffle(items)
    return [{"id": f"{id_prefix}-{i:04d}", **item} for i, item in enumerate(items, start=1)]


# ------------------------------------------------------------------------ output

_PUNCT = str.maketrans("", "", string.punctuation)


def _normalize(text: str) -> str:
    # Mirrors eval_pipeline.scoring._text.normalize_text without importing the package,
    # so the script runs with the standard library alone.
    text = re.sub(r"\b(a|an|the)\b", " ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def _contains(text: str, answer: str) -> bool:
    return f" {_normalize(answer)} " in f" {_normalize(text)} "


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _validate(qa: list[dict], extract: list[dict]) -> None:
    """Fail loudly if an edit to the lists breaks what the specs and scorers rely on."""
    for row in qa:
        if row["kind"] == "factual" and _is_number(row["answer"]):
            raise ValueError(f"factual answer {row['answer']!r} is numeric")
        if _contains(row["question"], row["answer"]):
            raise ValueError(f"answer {row['answer']!r} appears in {row['question']!r}")
        if not _normalize(row["answer"]):
            raise ValueError(f"answer {row['answer']!r} is empty once normalized")
    for row in extract:
        for key, value in json.loads(row["expected"]).items():
            if str(value) not in row["text"]:
                raise ValueError(f"{key}={value!r} is not verbatim in {row['text']!r}")
    for rows in (qa, extract):
        ids = [r["id"] for r in rows]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate ids")


def _check_disjoint(test: list[dict], train: list[dict], keys: tuple[str, ...]) -> None:
    for key in keys:
        shared = {r[key] for r in test} & {r[key] for r in train}
        if shared:
            raise ValueError(f"train and test share {key} {sorted(shared)[0]!r}")


def render_files() -> dict[Path, bytes]:
    """The generated files, relative to the project root, as bytes."""
    # One generator per dataset and split, so editing one leaves the others' rows
    # unchanged.
    qa = make_qa(random.Random(SEED))
    extract = make_json_extract(random.Random(SEED + 1))
    _validate(qa, extract)
    qa_train = make_qa(
        random.Random(SEED + 2),
        facts=TRAIN_FACTS,
        plan=TRAIN_ARITHMETIC_PLAN,
        exclude={r["question"] for r in qa},
        id_prefix="qa-train",
    )
    extract_train = make_json_extract(
        random.Random(SEED + 3),
        per_kind=TRAIN_EXTRACT_PER_KIND,
        exclude=extract,
        id_prefix="je-train",
    )
    _validate(qa_train, extract_train)
    _check_disjoint(qa, qa_train, ("id", "question"))
    _check_disjoint(extract, extract_train, ("id", "text", "expected"))
    return {
        Path("datasets/qa/data.jsonl"): _jsonl(qa),
        Path("datasets/qa/train.jsonl"): _jsonl(qa_train),
        Path("datasets/json-extract/data.jsonl"): _jsonl(extract),
        Path("datasets/json-extract/train.jsonl"): _jsonl(extract_train),
    }


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=True) + "\n" for row in rows).encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with the files on disk; exit 1 if they differ"
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="project root (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    stale = []
    for rel, content in render_files().items():
        path = args.root / rel
        if args.check:
            if not path.exists() or path.read_bytes() != content:
                stale.append(rel.as_posix())
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        rows = content.count(b"\n")
        print(f"wrote {rel.as_posix()} ({rows} rows)")
    if stale:
        print(
            f"out of date: {', '.join(stale)}; run python scripts/make_datasets.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
