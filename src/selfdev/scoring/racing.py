"""Racing evaluation with a hard bound: a candidate is scored on dev one chunk at a time and dropped
as soon as, even answering every remaining problem correctly, it could not reach the programs it
would have to beat. The top k by dev are then exactly those of exhaustive scoring.

Why exact: a program is cut when `correct + remaining < bar`, where `bar` is the k-th best *full*
correct count among distinct programs already scored. Scoring more programs only raises the k-th best,
so a cut program's full score (at most correct + remaining) stays strictly below k others: it is in
no top k, whatever the order of scoring or the tie-breaking. Its partial estimate correct / evaluated
is below bar / n as well (see `partial_estimate`), so ranking it by that estimate keeps it out too.

Why the chunks are the generation's own batches: greedy generation sorts a split's prompts by length
and decodes them in batches (selfdev.lm.greedy_generate). A chunk is one of those batches, handed over
in the same order, so every evaluated problem is decoded in exactly the batch (same padding, same
numerics) that exhaustive scoring would use: a program's bits on the problems it saw are identical.
The order of the chunks is a seeded permutation, so the problems seen first are not the shortest.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence


def chunk_plan(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Row indices of each chunk, in the order chunks are evaluated: the length-sorted generation
    batches of `lengths` (stable sort, as greedy generation does), shuffled as whole batches with `seed`."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    random.Random(seed).shuffle(batches)
    return batches


def kth_best(counts: Sequence[int], k: int) -> int | None:
    """The k-th largest count, or None when fewer than k are known (no bar yet)."""
    if k < 1 or len(counts) < k:
        return None
    return sorted(counts, reverse=True)[k - 1]


def partial_estimate(correct: int, evaluated: int) -> float:
    """Accuracy estimated from the problems a dropped program saw (chunks are a seeded draw of the
    generation batches). For a program cut by the bound it is below bar / n: correct < bar - n + evaluated
    gives correct / evaluated < 1 - (n - bar) / evaluated <= bar / n."""
    return correct / evaluated if evaluated else 0.0


@dataclass
class Race:
    """The bound of one scoring job.

    n: problems in dev. `pools`: (k, full correct counts known before this job) pairs, one per set the
    scores select from (the run's top `study.top_k` over every iteration; this iteration's chosen
    programs); programs this job scores fully join every pool. A program is cut only when it cannot
    reach any of them, i.e. below the lowest bar."""

    n: int
    pools: list[tuple[int, list[int]]]
    seed: int = 0
    scored: list[int] = field(default_factory=list)

    def bar(self) -> int | None:
        """The correct count a program must be able to reach to stay in the race (None: no bar yet)."""
        bars = [kth_best([*known, *self.scored], k) for k, known in self.pools]
        if not bars or any(b is None for b in bars):
            return None
        return min(bars)

    def cut(self, correct: int, evaluated: int) -> bool:
        """True when even every remaining problem right would leave the program below the bar."""
        bar = self.bar()
        return bar is not None and correct + (self.n - evaluated) < bar

    def finished(self, correct: int) -> None:
        """A program scored on all of dev joins the pools."""
        self.scored.append(correct)


def race_program(race: Race, plan: Sequence[Sequence[int]], evaluate_chunk) -> tuple[list, int]:
    """One program through the race: `evaluate_chunk(rows)` gives its 0/1 answers on those row
    indices; chunks in `plan` order until the bound cuts it. Returns its answers (None where not
    evaluated) and the problems evaluated; a program that saw all of dev joins the race's pools."""
    correct: list = [None] * race.n
    evaluated = hits = 0
    for chunk in plan:
        for i, ok in zip(chunk, evaluate_chunk(chunk)):
            correct[i] = bool(ok)
            hits += bool(ok)
        evaluated += len(chunk)
        if evaluated < race.n and race.cut(hits, evaluated):
            break
    if evaluated == race.n:
        race.finished(hits)
    return correct, evaluated
