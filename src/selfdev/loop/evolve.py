"""Evolutionary prompting (arms `evolve` and `evolve_dpo`): each prompt shows k parent programs drawn
from the run's archive of scored programs, with their dev scores, worst to best, and asks for the
next version (FunSearch's best-shot prompting; EvoTune adds DPO on top, as `evolve_dpo` does here).

Diversity device: the archive holds one program per *behaviour* (what it computes, see
`selfdev.loop.tables.Behaviours`), so five spellings of the mean are one parent, not five; parents
are drawn without replacement with probability proportional to exp(dev / temperature), so the best
programs are likely and weaker, different ones still get shown.

The factory only writes the new function's body; the stored program is the base prompt with that
body (as in every arm), so a body that calls a parent (`merge_v0`) does not run, and code hashes,
behaviours and DPO pairs (which use the base prompt) compare across arms.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass
from typing import Sequence

from selfdev.loop.tables import best_programs

EVOLVE_ARMS = ("evolve", "evolve_dpo")


@dataclass(frozen=True)
class EvolveSpec:
    """Config `evolve.*` (defaults in the schema only)."""

    parents: int
    temperature: float
    rows_per_prompt: int

    @classmethod
    def from_config(cls, evolve: dict) -> "EvolveSpec":
        return cls(evolve["parents"], evolve["temperature"], evolve["rows_per_prompt"])


def archive(score_tables: Sequence[Sequence[dict]]) -> list[dict]:
    """The run's scored executable programs so far, one per behaviour, best first."""
    rows = [r for table in score_tables for r in table]
    return best_programs(rows, len(rows))


def select_parents(programs: Sequence[dict], k: int, temperature: float, rng: random.Random) -> list[dict]:
    """k distinct programs drawn without replacement, P proportional to exp(dev / temperature), returned
    worst to best (the order the prompt shows them in). Fewer than k when the archive is smaller."""
    pool = list(programs)
    top = max((p["dev_accuracy"] for p in pool), default=0.0)
    weights = [math.exp((p["dev_accuracy"] - top) / temperature) for p in pool]
    picked = []
    for _ in range(min(k, len(pool))):
        i = rng.choices(range(len(pool)), weights=weights)[0]
        picked.append(pool.pop(i))
        weights.pop(i)
    return sorted(picked, key=lambda p: (p["dev_accuracy"], p["candidate_id"]))


# The `def merge(` line of a factory prompt (the function the factory completes); the last one counts.
MERGE_DEF = re.compile(r"^def merge\((?P<args>.*)$", re.M)


def split_prompt(base_prompt: str) -> tuple[str, str]:
    """The base prompt's file header (everything before its first `merge...` function: imports and the
    building blocks a program may call, which every program file keeps) and the rest of the `def merge(`
    line (arguments and return annotation)."""
    first_def = re.search(r"^def merge", base_prompt, re.M)
    merge_def = list(MERGE_DEF.finditer(base_prompt))
    if first_def is None or not merge_def:
        raise ValueError("the factory prompt has no `def merge(` line to evolve from")
    return base_prompt[: first_def.start()].rstrip() + "\n", merge_def[-1].group("args")


def skill_scores(parent: dict) -> str:
    """A parent's dev accuracy per skill, as the prompt shows it (` (price 80.0, weight 40.0)`), so the
    factory sees which expert's skill a merge loses; empty where the table has none (an older table, or a
    task without skills). A program racing dropped has per-skill accuracies over the problems it saw."""
    raw = parent.get("per_skill")
    per = json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
    if not per or set(per) == {"all"}:
        return ""
    return " (" + ", ".join(f"{k} {100 * v:.1f}" for k, v in sorted(per.items())) + ")"


def evolve_prompt(base_prompt: str, parents: Sequence[dict]) -> str:
    """The prompt of one evolve sample: the header, each parent as `merge_v<i>` with its dev score and
    its per-skill scores in its docstring (worst to best), then `merge_v<k>` to improve on the best,
    ending on its docstring's closing quotes (the body-completion shape every factory prompt has)."""
    if not parents:
        return base_prompt
    header, args = split_prompt(base_prompt)
    parts = [header]
    for i, p in enumerate(parents):
        parts.append(f'\ndef merge_v{i}({args}\n    """Version {i}: dev accuracy {100 * p["dev_accuracy"]:.1f}%'
                     f'{skill_scores(p)}."""\n{p["body"].rstrip()}\n\n')
    k = len(parents)
    parts.append(f'\ndef merge_v{k}({args}\n    """Version {k}: improves on merge_v{k - 1} (higher dev accuracy); '
                 f'a different algorithm, not a copy."""')
    return "".join(parts)


def prompt_groups(n: int, rows_per_prompt: int) -> list[range]:
    """Candidates 0..n-1 in groups that share one parent draw and prompt."""
    return [range(s, min(n, s + rows_per_prompt)) for s in range(0, n, rows_per_prompt)]
