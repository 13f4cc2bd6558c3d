"""Accuracy of a model on a math split: greedy generation, answer extraction, exact match."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

from selfdev.lm import GenerationSpec, greedy_generate
from selfdev.scoring.prompts import PromptTemplate
from selfdev.scoring.tasks import Task, get_task


@dataclass
class EvalResult:
    accuracy: float
    n: int
    correct: list[bool]
    per_skill: dict[str, float] = field(default_factory=dict)
    generation_s: float = 0.0
    checking_s: float = 0.0
    completions: list[str] = field(default_factory=list)  # what the model wrote, row by row

    @property
    def evaluated(self) -> int:
        """Problems answered: n, or fewer when racing dropped the model (`correct` None elsewhere)."""
        return sum(c is not None for c in self.correct)

    def summary(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "n": self.n,
            "per_skill": self.per_skill,
            "generation_s": round(self.generation_s, 4),
            "checking_s": round(self.checking_s, 4),
        }


def evaluate(
    model,
    tokenizer,
    rows: Sequence[dict],
    template: PromptTemplate,
    gen: GenerationSpec,
    shots: Sequence[dict] = (),
    task: Task | str = "toy",
) -> EvalResult:
    """Greedy completions of `template` over `rows` (with the few-shot `shots`, through the model's chat
    template when the template asks for it), each checked by `task`'s answer check. `model` is a
    transformers model or a scoring engine (selfdev.scoring.engines), which generates itself."""
    task = get_task(task) if isinstance(task, str) else task
    prompts = [template.render(r["question"], shots, tokenizer) for r in rows]
    if hasattr(model, "kind"):  # an engine (built with its own GenerationSpec)
        completions, gen_s = model.generate(prompts)
    else:
        completions, gen_s = greedy_generate(model, tokenizer, prompts, gen)
    t0 = time.perf_counter()
    correct = []
    for row, completion in zip(rows, completions):
        correct.append(task.correct(template.cut(completion), task.gold(row["answer"])))
    by_skill: dict[str, list[bool]] = defaultdict(list)
    for row, ok in zip(rows, correct):
        by_skill[row.get("skill", "all")].append(ok)
    per_skill = {k: sum(v) / len(v) for k, v in sorted(by_skill.items())}
    acc = sum(correct) / len(correct) if correct else 0.0
    return EvalResult(acc, len(correct), correct, per_skill, gen_s, time.perf_counter() - t0, completions)
