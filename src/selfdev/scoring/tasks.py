"""Evaluation tasks as data (lm-eval style): where a task's rows come from, its gold answer, its check.

- `toy`: the embedded world's generated arithmetic word problems (GSM8K format, numeric exact match).
- `gsm8k`: GSM8K from the hub (`openai/gsm8k`, config `main`) or local jsonl/parquet files; the gold
  is the number after `####`, checked by numeric exact match.
- `math`: MATH (Hendrycks et al.) from the hub (`EleutherAI/hendrycks_math`, one config per subject)
  or local jsonl/parquet with `problem` and `solution`; the gold is the last `\\boxed{}` of the
  solution, checked with the `math-verify` package (symbolic equivalence, not string match).

Rows are normalised to `question`, `answer` (the full worked solution, used for few-shot examples and
training) and `skill` (GSM8K: `gsm8k`; MATH: its subject).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from selfdev.scoring.answer import is_correct, reference_answer

MATH_HUB_ID = "EleutherAI/hendrycks_math"
MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                 "prealgebra", "precalculus")


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, braces balanced; None if absent."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start == -1:
        return None
    i = text.find("{", start)
    if i == -1:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


def math_gold(solution: str) -> str:
    gold = last_boxed(solution)
    if gold is None:
        raise ValueError(f"MATH solution has no \\boxed{{}} answer: {solution[-80:]!r}")
    return gold


def math_correct(completion: str, gold: str) -> bool:
    """math-verify's verdict on the completion's final answer (its last boxed or last expression)."""
    from math_verify import parse, verify

    boxed = last_boxed(completion)
    predicted = parse(f"${boxed}$" if boxed is not None else completion)
    return bool(predicted) and bool(verify(parse(f"${gold}$"), predicted))


@dataclass(frozen=True)
class Task:
    name: str
    hub_id: str | None
    gold: Callable[[str], str]  # the answer field of a row -> its gold answer
    correct: Callable[[str, str], bool]  # (completion, gold) -> right or not
    fields: tuple[str, str] = ("question", "answer")  # the source's field names for question and answer


TASKS: dict[str, Task] = {
    "toy": Task("toy", None, reference_answer, is_correct),
    "gsm8k": Task("gsm8k", "openai/gsm8k", reference_answer, is_correct),
    "math": Task("math", MATH_HUB_ID, math_gold, math_correct, ("problem", "solution")),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"eval.task: unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]


def _normalise(task: Task, raw: list, origin: str) -> list[dict]:
    q, a = task.fields
    rows = []
    for i, row in enumerate(raw):
        if not isinstance(row, dict):
            raise ValueError(f"{origin}: row {i} is not a mapping")
        for field in (q, a):
            if not isinstance(row.get(field), str):
                raise ValueError(f"{origin}: row {i} lacks the string field {field!r} that {task.name} rows need")
        try:
            task.gold(row[a])
        except ValueError as exc:
            raise ValueError(f"{origin}: row {i}: {exc}") from None
        rows.append({"question": row[q], "answer": row[a], "skill": str(row.get("type") or task.name)})
    return rows


def _read_file(path: Path) -> list:
    from selfdev.io import read_jsonl

    if path.suffix == ".jsonl":
        return read_jsonl(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise ValueError(f"{path}: expected a .jsonl or .parquet file")


def load_task_rows(task_name: str, source: str, split: str) -> list[dict]:
    """The `split` (train | test) rows of a task from `source`: a folder holding `{split}.jsonl` or
    `{split}.parquet`, or a hub dataset id (empty source: the task's own hub id)."""
    task = get_task(task_name)
    if task.hub_id is None:
        raise ValueError(f"eval.task {task_name!r} generates its rows; it has no source to load")
    source = source or task.hub_id
    folder = Path(source).expanduser()
    if folder.is_dir():
        for ext in (".jsonl", ".parquet"):
            if (folder / f"{split}{ext}").is_file():
                path = folder / f"{split}{ext}"
                return _normalise(task, _read_file(path), str(path))
        raise FileNotFoundError(f"eval.source: {folder} has no {split}.jsonl or {split}.parquet")
    if folder.suffix in (".jsonl", ".parquet") or source.startswith((".", "/", "~")):
        raise FileNotFoundError(f"eval.source: folder not found: {source} (expected a folder with "
                                f"{split}.jsonl or {split}.parquet, or a hub id like {task.hub_id!r})")
    try:
        import datasets

        configs = MATH_SUBJECTS if task.name == "math" and source == MATH_HUB_ID else ["main"]
        raw = [dict(r) for c in configs for r in datasets.load_dataset(source, c, split=split)]
    except Exception as exc:
        raise FileNotFoundError(f"eval.source: dataset {source!r} could not be loaded from the Hugging Face hub "
                                f"({type(exc).__name__}); it needs the hub (network or a filled HF cache) or a "
                                "local folder with train/test jsonl or parquet files") from None
    return _normalise(task, raw, f"{source}[{split}]")


def task_split(task_name: str, source: str, split: str, *, seed: int, dev_size: int, test_size: int | None,
               num_shots: int) -> list[dict]:
    """One split of a real task. Dev comes from the *train* split (the official test set stays whole
    and untouched by selection), the few-shot examples from the rest of train, test from test:

    - dev: `dev_size` train rows drawn by the seed;
    - shots: `num_shots` other train rows drawn by the seed (never a dev row);
    - test: `test_size` test rows drawn by the seed, or all of them (None)."""
    import random

    from selfdev.seeds import derive_seed

    if split == "test":
        rows = load_task_rows(task_name, source, "test")
        if test_size is None or test_size >= len(rows):
            return rows
        return random.Random(derive_seed(seed, "data", task_name, "test")).sample(rows, test_size)
    if split not in ("dev", "shots"):
        raise ValueError(f"split must be dev, shots or test, got {split!r}")
    train = load_task_rows(task_name, source, "train")
    order = list(range(len(train)))
    random.Random(derive_seed(seed, "data", task_name, "dev")).shuffle(order)
    if dev_size + num_shots > len(train):
        raise ValueError(f"eval.dev_size {dev_size} + {num_shots} shots exceed the {len(train)} train rows")
    if split == "dev":
        return [train[i] for i in order[:dev_size]]
    return [train[i] for i in order[dev_size : dev_size + num_shots]]
