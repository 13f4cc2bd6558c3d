"""Data-driven prompt templates (lm-eval style): a YAML file under config/prompts/ says how a
question is shown, how k worked examples are laid out and where generation stops."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class PromptTemplate:
    """How to turn dataset rows into a generation prompt and a training target."""

    name: str
    query: str = "Question: {question}\nAnswer:"
    target: str = " {answer}"
    preamble: str = ""
    shot_separator: str = "\n\n"
    num_shots: int = 0
    shots_seed: int = 1234
    stop: tuple[str, ...] = field(default_factory=lambda: ("\n\nQuestion:",))

    def render_query(self, question: str, shots: Sequence[dict] = ()) -> str:
        parts = [self.query.format(question=s["question"]) + self.target.format(answer=s["answer"]) for s in shots]
        parts.append(self.query.format(question=question))
        return self.preamble + self.shot_separator.join(parts)

    def render_target(self, answer: str) -> str:
        return self.target.format(answer=answer)

    def pick_shots(self, pool: Sequence[dict]) -> list[dict]:
        """The same k training examples for every question (fixed by `shots_seed`), as in the paper's 5-shot."""
        if self.num_shots == 0:
            return []
        if len(pool) < self.num_shots:
            raise ValueError(f"prompt {self.name!r} needs {self.num_shots} shots but the shot pool has {len(pool)} rows")
        return random.Random(self.shots_seed).sample(list(pool), self.num_shots)

    def cut(self, completion: str) -> str:
        """Drop whatever the model wrote after a stop string (e.g. the next few-shot question)."""
        for stop in self.stop:
            idx = completion.find(stop)
            if idx != -1:
                completion = completion[:idx]
        return completion


_KEYS = {"name", "query", "target", "preamble", "shot_separator", "num_shots", "shots_seed", "stop"}


def load_template(path: str | Path) -> PromptTemplate:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt template file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of template keys, got {type(data).__name__}")
    unknown = set(data) - _KEYS
    if unknown:
        raise ValueError(f"{path}: unknown template keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    for key in ("query",):
        if "{question}" not in data.get(key, "{question}"):
            raise ValueError(f"{path}: key {key!r} must contain the placeholder {{question}}")
    if "{answer}" not in data.get("target", "{answer}"):
        raise ValueError(f"{path}: key 'target' must contain the placeholder {{answer}}")
    if "stop" in data:
        data["stop"] = tuple(data["stop"])
    data.setdefault("name", path.stem)
    return PromptTemplate(**data)
