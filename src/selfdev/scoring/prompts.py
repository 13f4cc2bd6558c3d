"""Data-driven prompt templates (lm-eval style): a YAML file under config/prompts/ says how a
question is shown, how k worked examples are laid out, whether the model's chat template wraps them,
and where generation stops. The k examples themselves are a data split (`shots`, drawn from the
task's training rows by the workflow's seed), so every question sees the same ones."""

from __future__ import annotations

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
    chat: bool = False  # wrap in the model's chat template (when it has one): shots become turns
    stop: tuple[str, ...] = field(default_factory=lambda: ("\n\nQuestion:",))

    def render_query(self, question: str, shots: Sequence[dict] = ()) -> str:
        parts = [self.query.format(question=s["question"]) + self.target.format(answer=s["answer"]) for s in shots]
        parts.append(self.query.format(question=question))
        return self.preamble + self.shot_separator.join(parts)

    def render_target(self, answer: str) -> str:
        return self.target.format(answer=answer)

    def uses_chat(self, tokenizer) -> bool:
        return self.chat and tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))

    def render(self, question: str, shots: Sequence[dict] = (), tokenizer=None) -> str:
        """The prompt the model sees: plain text, or with `chat` and a tokenizer that has a chat
        template, the shots as user/assistant turns and the question as the last user turn."""
        if not self.uses_chat(tokenizer):
            return self.render_query(question, shots)
        messages: list[dict] = []
        for s in shots:
            messages += [{"role": "user", "content": self.query.format(question=s["question"])},
                         {"role": "assistant", "content": self.target.format(answer=s["answer"]).strip()}]
        messages.append({"role": "user", "content": self.query.format(question=question)})
        if self.preamble:
            messages[0] = {"role": "user", "content": self.preamble + messages[0]["content"]}
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def training_target(self, answer: str, tokenizer=None) -> str:
        """What a model is trained to write after `render(question)` (EOS is appended by the trainer)."""
        target = self.render_target(answer)
        return target.strip() if self.uses_chat(tokenizer) else target

    def cut(self, completion: str) -> str:
        """Drop whatever the model wrote after a stop string (e.g. the next few-shot question)."""
        for stop in self.stop:
            idx = completion.find(stop)
            if idx != -1:
                completion = completion[:idx]
        return completion


_KEYS = {"name", "query", "target", "preamble", "shot_separator", "num_shots", "chat", "stop"}


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
