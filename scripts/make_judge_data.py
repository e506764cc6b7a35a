#!/usr/bin/env python3
"""Generate the judged dataset ``open-qa`` and the judge calibration set ``judge-labels``.

Writes ``datasets/open-qa/data.jsonl`` and ``datasets/judge-labels/labels.jsonl`` from the
lists below, using the standard library only. The output is byte-identical on every run.

Run from anywhere::

    python scripts/make_judge_data.py            # (re)write both files
    python scripts/make_judge_data.py --check    # exit 1 if the committed files differ

How the labels are made (read this before trusting them): nobody rated these responses.
For each calibration question the script writes seven responses of a known kind
(``ideal``, ``terse``, ``partial``, ``wrong``, ``garbled``, ``off_topic``,
``ungrammatical``) from hand-written parts, and the label of each response on each rubric
is looked up in ``LABELS`` below: a fixed table from response kind to 1-5 score per
rubric, written by hand to follow the anchors of the rubric templates in ``prompts/``.
The labels are therefore rule-assigned stand-ins for human ratings, exact by
construction for the property each kind varies and a judgement call for the others.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 20240612

# --------------------------------------------------------------------------- open-qa

# (question, reference answer, topic). Answers a person would accept in one or two
# sentences; the judge compares the model's answer with the reference.
OPEN_QA: list[tuple[str, str, str]] = [
    (
        "Why does ice float on water?",
        "Ice is less dense than liquid water: when water freezes, hydrogen bonds hold its molecules in an open crystal lattice that takes up more space.",
        "science",
    ),
    (
        "What causes the seasons on Earth?",
        "The tilt of Earth's axis: as Earth orbits the Sun, each hemisphere in turn leans towards the Sun and gets more direct sunlight and longer days.",
        "science",
    ),
    (
        "Why is the sky blue?",
        "Air molecules scatter short (blue) wavelengths of sunlight much more than long (red) ones, so scattered blue light reaches our eyes from every direction of the sky.",
        "science",
    ),
    (
        "How do vaccines protect against disease?",
        "A vaccine shows the immune system a harmless form or part of a pathogen, so it builds antibodies and memory cells that fight the real pathogen quickly later.",
        "health",
    ),
    (
        "What does a thermostat do?",
        "It measures the temperature and switches heating or cooling on and off to keep the temperature near a set value.",
        "technology",
    ),
    (
        "Why do we have leap years?",
        "A year is about 365.24 days long, so adding a day to February every fourth year (with some century exceptions) keeps the calendar in step with the seasons.",
        "science",
    ),
    (
        "What is photosynthesis?",
        "The process by which plants, algae and some bacteria use light energy to turn carbon dioxide and water into sugars, releasing oxygen.",
        "science",
    ),
    (
        "Why should you wash your hands with soap?",
        "Soap molecules bind to oils and break up the fatty membranes of many germs, so rinsing washes dirt, viruses and bacteria off the skin.",
        "health",
    ),
    (
        "What is inflation in economics?",
        "A general rise in prices over time, which means each unit of money buys fewer goods and services.",
        "economics",
    ),
    (
        "How does a compass work?",
        "Its magnetized needle lines up with Earth's magnetic field, so one end points towards magnetic north.",
        "science",
    ),
    (
        "What is the purpose of a password manager?",
        "It stores your passwords in an encrypted vault and can generate strong, unique passwords, so you only need to remember one master password.",
        "technology",
    ),
    (
        "Why do leaves change colour in autumn?",
        "Trees stop making green chlorophyll as days shorten, revealing yellow and orange pigments, and some trees make red pigments as well.",
        "science",
    ),
    (
        "What is a budget?",
        "A plan that lists expected income and spending over a period, used to decide how money will be used.",
        "economics",
    ),
    (
        "How does a refrigerator keep food cold?",
        "A refrigerant absorbs heat inside the fridge as it evaporates, and a compressor pumps it outside where it releases the heat as it condenses.",
        "technology",
    ),
    (
        "Why is sleep important?",
        "During sleep the body and brain recover: memories are consolidated, tissues repair and hormones are regulated; too little sleep harms attention, mood and health.",
        "health",
    ),
    (
        "What is the difference between weather and climate?",
        "Weather is the state of the atmosphere over hours or days; climate is the average pattern of weather in a place over decades.",
        "science",
    ),
    (
        "What does a central bank do?",
        "It sets interest rates and manages the money supply to keep prices stable, and supervises and lends to banks.",
        "economics",
    ),
    (
        "How do noise-cancelling headphones work?",
        "Microphones pick up outside sound and the headphones play an inverted copy of it, so the two sound waves cancel each other out.",
        "technology",
    ),
    (
        "Why do we need to drink water?",
        "Water carries nutrients, regulates body temperature and removes waste; the body loses water constantly and must replace it.",
        "health",
    ),
    (
        "What is an ecosystem?",
        "A community of living things together with their physical environment, linked by flows of energy and nutrients.",
        "science",
    ),
    (
        "What is compound interest?",
        "Interest calculated on the original amount plus the interest already earned, so savings or debts grow faster over time.",
        "economics",
    ),
    (
        "What does a web browser do?",
        "It requests web pages from servers and displays them, running their code and showing text, images and links.",
        "technology",
    ),
    (
        "Why is exercise good for the heart?",
        "Regular exercise strengthens the heart muscle, lowers blood pressure and improves cholesterol, reducing the risk of heart disease.",
        "health",
    ),
    (
        "What causes tides?",
        "Mainly the Moon's gravity, with help from the Sun's, pulling on Earth's oceans and creating bulges of water that move as Earth rotates.",
        "science",
    ),
]

# --------------------------------------------------------------------------- judge-labels

# Calibration questions (not in open-qa, so the judge is never calibrated on the items
# it scores): question, reference, a plausible but false answer, and an off-topic reply.
CALIBRATION: list[tuple[str, str, str, str]] = [
    (
        "Why do boats float?",
        "A boat floats because it pushes aside water weighing as much as the boat itself, and the water pushes back up with that buoyant force.",
        "Boats float because wood and steel are lighter than air.",
        "My favourite colour is green and I like long walks.",
    ),
    (
        "What is a vaccine booster?",
        "A later dose of a vaccine that reminds the immune system of the pathogen, raising protection that has waned since the first doses.",
        "A booster is an antibiotic that kills the virus directly after infection.",
        "The train to the city leaves every twenty minutes.",
    ),
    (
        "Why does metal feel colder than wood?",
        "Metal conducts heat away from your skin much faster than wood, so it feels colder even at the same temperature.",
        "Metal feels colder because it is always at a lower temperature than wood.",
        "Pancakes are best served with maple syrup.",
    ),
    (
        "What is a recession?",
        "A significant decline in economic activity across the economy lasting months, often measured as two quarters of falling GDP.",
        "A recession is when the stock market reaches a record high.",
        "The museum is closed on Mondays.",
    ),
    (
        "How does a solar panel make electricity?",
        "Its photovoltaic cells absorb light, and the energy frees electrons in the semiconductor, creating an electric current.",
        "Solar panels make electricity by burning a small amount of fuel with sunlight.",
        "Cats usually sleep for more than twelve hours a day.",
    ),
    (
        "Why do we get fevers?",
        "A fever is the body raising its temperature in response to infection, which helps the immune system and slows some pathogens.",
        "Fevers happen because the heart stops pumping blood to the skin.",
        "The recipe needs two cups of flour and an egg.",
    ),
]

KINDS = ("ideal", "terse", "partial", "wrong", "garbled", "off_topic", "ungrammatical")
RUBRIC_ORDER = ("coherence", "relevance", "factual-accuracy", "grammar", "helpfulness")

# The label of each kind of response on each rubric (see the module docstring).
LABELS: dict[str, dict[str, int]] = {
    "ideal": {
        "coherence": 5,
        "relevance": 5,
        "factual-accuracy": 5,
        "grammar": 5,
        "helpfulness": 5,
    },
    "terse": {
        "coherence": 5,
        "relevance": 5,
        "factual-accuracy": 5,
        "grammar": 5,
        "helpfulness": 3,
    },
    "partial": {
        "coherence": 4,
        "relevance": 4,
        "factual-accuracy": 3,
        "grammar": 5,
        "helpfulness": 3,
    },
    "wrong": {
        "coherence": 4,
        "relevance": 5,
        "factual-accuracy": 1,
        "grammar": 5,
        "helpfulness": 1,
    },
    "garbled": {
        "coherence": 1,
        "relevance": 2,
        "factual-accuracy": 2,
        "grammar": 1,
        "helpfulness": 1,
    },
    "off_topic": {
        "coherence": 4,
        "relevance": 1,
        "factual-accuracy": 1,
        "grammar": 5,
        "helpfulness": 1,
    },
    "ungrammatical": {
        "coherence": 4,
        "relevance": 5,
        "factual-accuracy": 5,
        "grammar": 2,
        "helpfulness": 4,
    },
}


def _terse(reference: str) -> str:
    # The reference's first clause: still right, but without the explanation.
    for sep in (":", ",", ";", " because ", " so "):
        head = reference.split(sep)[0]
        if 3 <= len(head.split()) < len(reference.split()):
            return head.strip().rstrip(".") + "."
    return " ".join(reference.split()[:6]) + "."


def _partial(reference: str) -> str:
    # Half of the explanation, then a vague hedge instead of the rest.
    words = reference.rstrip(".").split()
    return (
        " ".join(words[: max(4, len(words) // 2)]) + ", or something along those lines, it depends."
    )


def _garbled(reference: str, rng: random.Random) -> str:
    words = reference.lower().replace(",", "").replace(".", "").replace(":", "").split()
    rng.shuffle(words)
    return " ".join(words[: max(6, len(words) // 2)])


def _ungrammatical(reference: str) -> str:
    # Deterministic errors: no capital, articles dropped, a verb agreement slip, no stop.
    text = reference[0].lower() + reference[1:]
    for article in (" the ", " a ", " an "):
        text = text.replace(article, " ")
    for right, wrong in (
        (" is ", " are "),
        (" are ", " is "),
        (" does ", " do "),
        (" has ", " have "),
    ):
        if right in text:
            text = text.replace(right, wrong, 1)
            break
    return text.rstrip(".") + " and and"


def open_qa_rows() -> list[dict]:
    return [
        {"id": f"oq-{i:04d}", "question": q, "reference": ref, "tags": [topic]}
        for i, (q, ref, topic) in enumerate(OPEN_QA, start=1)
    ]


def label_rows() -> list[dict]:
    rng = random.Random(SEED)
    rows = []
    n = 0
    for qi, (question, reference, wrong, off_topic) in enumerate(CALIBRATION, start=1):
        answers = {
            "ideal": reference,
            "terse": _terse(reference),
            "partial": _partial(reference),
            "wrong": wrong,
            "garbled": _garbled(reference, rng),
            "off_topic": off_topic,
            "ungrammatical": _ungrammatical(reference),
        }
        for kind in KINDS:
            n += 1
            for rubric in RUBRIC_ORDER:
                rows.append(
                    {
                        "id": f"jl-{qi:02d}-{kind}",
                        "rubric": rubric,
                        "question": question,
                        "reference": reference,
                        "answer": answers[kind],
                        "label": LABELS[kind][rubric],
                        "kind": kind,
                        "labelled_by": "rule",
                    }
                )
    return rows


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    args = parser.parse_args(argv)
    outputs = {
        ROOT / "datasets" / "open-qa" / "data.jsonl": _jsonl(open_qa_rows()),
        ROOT / "datasets" / "judge-labels" / "labels.jsonl": _jsonl(label_rows()),
    }
    stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)} ({text.count(chr(10))} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
