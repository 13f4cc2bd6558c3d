"""Generated GSM8K-style arithmetic word problems: the embedded default world's data.

Every row is in the real GSM8K format (`question`, `answer` whose last line is `#### <number>`)
plus a `skill` column. Each skill has its own question templates and its own facts, so that an
expert trained on one skill changes little of what the others need: merging then has something
to add up (see config/config.yaml for the measured recipe).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

NAMES = ["Ann", "Ben", "Cal", "Dee", "Eli", "Fay", "Gus", "Ida", "Jo", "Kim", "Lu", "Max"]
ITEMS = ["apple", "pen", "card", "egg", "book", "shell", "coin", "cup", "box", "kite"]


@dataclass(frozen=True)
class Range:
    """Inclusive integer range of one operand."""

    lo: int
    hi: int

    def draw(self, rng: random.Random) -> int:
        return rng.randint(self.lo, self.hi)


@dataclass(frozen=True)
class SkillSpec:
    """One skill: operand ranges for the full task and for the seed model's restricted curriculum."""

    name: str
    a: Range
    b: Range
    b_restricted: Range


# Operand ranges: the seed model M0 sees only `b_restricted`; experts see the full `b` range.
SKILLS: dict[str, SkillSpec] = {
    "add": SkillSpec("add", Range(10, 49), Range(1, 9), Range(1, 4)),
    "sub": SkillSpec("sub", Range(10, 49), Range(1, 9), Range(1, 4)),
    "mul": SkillSpec("mul", Range(2, 9), Range(2, 9), Range(2, 5)),
    "div": SkillSpec("div", Range(2, 9), Range(2, 9), Range(2, 5)),
}


def _add(rng: random.Random, a: int, b: int) -> tuple[str, str]:
    n, it = rng.choice(NAMES), rng.choice(ITEMS)
    return f"{n} has {a} {it}s and finds {b} more. How many {it}s now?", f"{a}+{b}={a + b}\n#### {a + b}"


def _sub(rng: random.Random, a: int, b: int) -> tuple[str, str]:
    n, it = rng.choice(NAMES), rng.choice(ITEMS)
    return f"A bag held {a} {it}s. {n} took {b} out. How many are left?", f"{a}-{b}={a - b}\n#### {a - b}"


def _mul(rng: random.Random, a: int, b: int) -> tuple[str, str]:
    it = rng.choice(ITEMS)
    return f"There are {a} rows of {b} {it}s. What is the total?", f"{a}*{b}={a * b}\n#### {a * b}"


def _div(rng: random.Random, a: int, b: int) -> tuple[str, str]:
    n, it = rng.choice(NAMES), rng.choice(ITEMS)
    total = a * b
    return f"{n} splits {total} {it}s into {b} equal piles. Each pile?", f"{total}/{b}={a}\n#### {a}"


_WRITERS: dict[str, Callable[[random.Random, int, int], tuple[str, str]]] = {
    "add": _add,
    "sub": _sub,
    "mul": _mul,
    "div": _div,
}


def make_problem(rng: random.Random, skill: str, restricted: bool = False) -> dict[str, str]:
    """One problem of `skill`; `restricted` draws the second operand from the seed's curriculum."""
    if skill not in SKILLS:
        raise ValueError(f"unknown skill {skill!r}; expected one of {sorted(SKILLS)}")
    spec = SKILLS[skill]
    a = spec.a.draw(rng)
    b = (spec.b_restricted if restricted else spec.b).draw(rng)
    question, answer = _WRITERS[skill](rng, a, b)
    return {"question": question, "answer": answer, "skill": skill}


def make_split(seed: int, skills: list[str], per_skill: int, restricted: bool = False) -> list[dict[str, str]]:
    """A deterministic, skill-balanced list of problems (interleaved so any prefix stays balanced)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(per_skill):
        for skill in skills:
            rows.append(make_problem(rng, skill, restricted))
    return rows
