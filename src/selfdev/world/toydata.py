"""Generated GSM8K-style word problems whose step needs a recalled fact: the embedded default world's data.

Every row is in the real GSM8K format (`question`, `answer` whose last line is `#### <number>`) plus a
`skill` column. A skill is a domain of facts (a price list, animals' weights, distances, books' pages):
each of its questions names an entity whose fact (1..9) is added to a count given in the question.

    Ann has 3 coins and sells a pen . Coins now ?      ->   pen 4 , 3 + 4 = 7 \\n #### 7

The answer first copies the entity and then recalls its fact, so the fact is predicted from the entity
(a key-value recall, which MLPs store) and the arithmetic is the same for every skill. Each skill has
`KNOWN` entities whose facts M0 learns; the rest are new entities, whose facts M0 believes wrongly: its curriculum
shows each new entity's fact with a fixed wrong value more often than the true one (`prior_counts`), so M0
answers them wrongly and deterministically. An expert learns the true facts of its skill's new entities;
dev and test ask for new entities only, with names no expert trained on. Experts that add different facts
interfere less than experts that rewire an algorithm: merging them has something to add up.

The facts are fixed (not drawn from the master seed): the master seed varies the data drawn, the
initialisation and the training order, so a recipe is judged over seeds on the same knowledge.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

# Names in training problems and names in dev/test problems (held out from every expert's data).
TRAIN_NAMES = ("Ann", "Ben", "Cal", "Dee", "Eli", "Fay", "Gus", "Ida", "Jo", "Kim", "Lu", "Max")
EVAL_NAMES = ("Ned", "Olga", "Pat", "Quin", "Rex", "Sue", "Tom", "Uma", "Val", "Wes", "Xia", "Yan")
KNOWN = 6  # entities per skill whose facts M0 learns; the rest are the experts' (new) entities
MAX_FACT = 9
ANSWER = "{e} {f} , {n} + {f} = {s}\n#### {s}"  # every answer: the entity, its fact, the sum


@dataclass(frozen=True)
class SkillSpec:
    """One domain of facts: its entities and how a fact is stated and asked."""

    name: str
    entities: tuple[str, ...]
    given: str  # states a fact in the question text: "{e}", "{f}"
    question: str  # asks for a count plus the entity's fact: "{N}", "{n}", "{e}"

    @property
    def known(self) -> tuple[str, ...]:
        return self.entities[:KNOWN]

    @property
    def new(self) -> tuple[str, ...]:
        return self.entities[KNOWN:]


SKILLS: dict[str, SkillSpec] = {s.name: s for s in (
    SkillSpec("price", tuple("pen cup hat jar fan mug rug kit map box lamp sock bell drum vase comb".split()),
              "A {e} costs {f} .", "{N} has {n} coins and sells a {e} . Coins now ?"),
    SkillSpec("weight", tuple("ram ox hen pig ewe cow yak elk emu gnu mole seal crab lynx wolf bear".split()),
              "A {e} weighs {f} kg .", "{N} lifts {n} kg and a {e} . Kg lifted ?"),
    SkillSpec("distance", tuple("Rome Oslo Bern Kiev Riga Baku Lima Doha Suva Apia Nice Bonn Pisa Graz Linz Ulm".split()),
              "{e} is {f} km away .", "{N} walks {n} km , then to {e} . Km walked ?"),
    SkillSpec("pages", tuple("Odes Saga Epic Lore Myth Tale Poem Hymn Fable Verse Song Ballad Rhyme Sonnet Elegy Dirge"
                             .split()),
              "{e} has {f} pages .", "{N} reads {n} pages and {e} . Pages read ?"),
)}


def _facts(skill: SkillSpec) -> tuple[dict[str, int], dict[str, int]]:
    """The true fact of every entity (each value about equally often among known and among new entities)
    and M0's wrong belief about each new entity (never its true value)."""
    rng = random.Random(f"facts-{skill.name}")
    known = [1 + j % MAX_FACT for j in range(len(skill.known))]
    new = [1 + j % MAX_FACT for j in range(len(skill.new))]
    rng.shuffle(known)
    rng.shuffle(new)
    true = dict(zip(skill.entities, known + new))
    wrong = {e: 1 + (true[e] + rng.randint(0, MAX_FACT - 2)) % MAX_FACT for e in skill.new}
    return true, wrong


FACTS: dict[str, dict[str, int]] = {}
BELIEFS: dict[str, dict[str, int]] = {}
for _name, _spec in SKILLS.items():
    FACTS[_name], BELIEFS[_name] = _facts(_spec)


def _check_skill(skill: str) -> SkillSpec:
    if skill not in SKILLS:
        raise ValueError(f"unknown skill {skill!r}; expected one of {sorted(SKILLS)}")
    return SKILLS[skill]


def _row(spec: SkillSpec, name: str, n: int, e: str, f: int, given: bool) -> dict[str, str]:
    question = spec.question.format(N=name, n=n, e=e)
    if given:
        question = spec.given.format(e=e, f=f) + " " + question
    return {"question": question, "answer": ANSWER.format(e=e, f=f, n=n, s=n + f), "skill": spec.name}


def make_problem(rng: random.Random, skill: str, kind: str = "new", names: Sequence[str] = TRAIN_NAMES) -> dict:
    """One problem of `skill`. `kind`: `new` (recall a new entity's true fact: the experts' skill, dev and
    test), `known` (recall a known entity's fact), `given` (any entity, a random fact stated in the text)."""
    spec = _check_skill(skill)
    name, n = rng.choice(list(names)), rng.randint(1, MAX_FACT)
    if kind == "given":
        return _row(spec, name, n, rng.choice(spec.entities), rng.randint(1, MAX_FACT), True)
    if kind not in ("new", "known"):
        raise ValueError(f"unknown problem kind {kind!r}; expected new, known or given")
    e = rng.choice(spec.new if kind == "new" else spec.known)
    return _row(spec, name, n, e, FACTS[skill][e], False)


def make_split(seed: int, skills: Sequence[str], per_skill: int, names: Sequence[str] = EVAL_NAMES,
               kind: str = "new") -> list[dict[str, str]]:
    """A deterministic, skill-balanced list of problems (interleaved so any prefix stays balanced)."""
    rng = random.Random(seed)
    return [make_problem(rng, skill, kind, names) for _ in range(per_skill) for skill in skills]


def prior_rows(seed: int, skills: Sequence[str], counts: Sequence[int]) -> list[dict[str, str]]:
    """M0's belief about each new entity of `skills`, as exposures: `counts` = (wrong, true, other): its
    wrong value `wrong` times, its true value `true` times, every other value `other` times."""
    n_wrong, n_true, n_other = counts
    rng = random.Random(seed)
    rows = []
    for skill in skills:
        spec = _check_skill(skill)
        for e in spec.new:
            t, w = FACTS[skill][e], BELIEFS[skill][e]
            values = [w] * n_wrong + [t] * n_true + [v for v in range(1, MAX_FACT + 1) if v not in (t, w)
                                                     for _ in range(n_other)]
            rows += [_row(spec, rng.choice(TRAIN_NAMES), rng.randint(1, MAX_FACT), e, f, False) for f in values]
    return rows


def curriculum(seed: int, skills: Sequence[str], per_skill: int, prior_skills: Sequence[str],
               prior_counts: Sequence[int]) -> list[dict[str, str]]:
    """M0's training data: `per_skill` problems of each skill, half with the fact given in the text and
    half recalling a known entity, plus the prior exposures of `prior_skills`' new entities; shuffled."""
    rng = random.Random(seed)
    rows = [make_problem(rng, skill, "given" if i % 2 == 0 else "known", TRAIN_NAMES + EVAL_NAMES)
            for i in range(per_skill) for skill in skills]
    rows += prior_rows(seed + 1, prior_skills, prior_counts)
    rng.shuffle(rows)
    return rows


def vocabulary() -> list[str]:
    """Every word the toy world's problems use (for its word-level tokenizer), sorted."""
    words = set(TRAIN_NAMES) | set(EVAL_NAMES) | {str(i) for i in range(2 * MAX_FACT + 1)} | set(ANSWER.split())
    for spec in SKILLS.values():
        words |= set(spec.entities) | set(spec.given.split()) | set(spec.question.split())
    return sorted(w for w in words if "{" not in w)


def distinct_questions() -> int:
    """How many different dev/test questions one skill has (entities x names x counts)."""
    return len(next(iter(SKILLS.values())).new) * len(EVAL_NAMES) * MAX_FACT
