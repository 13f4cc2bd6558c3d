"""GSM8K loading: the Hugging Face hub id `openai/gsm8k` (config `main`) or a local jsonl/parquet file.

Rows are dicts with `question` and `answer` (the answer's last line is `#### <number>`), exactly as
the hub serves them, so the toy world, the shared real files and the hub are interchangeable.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from selfdev.scoring.answer import reference_answer
from selfdev.io import read_jsonl

HUB_ID = "openai/gsm8k"


def _validate(rows: list[dict], origin: str) -> list[dict]:
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not isinstance(row.get("answer"), str):
            raise ValueError(f"{origin}: row {i} needs string fields 'question' and 'answer', got {str(row)[:120]!r}")
        try:
            reference_answer(row["answer"])
        except ValueError as exc:
            raise ValueError(f"{origin}: row {i}: {exc}") from None
    return rows


def load_rows(source: str, split: str = "test", config: str = "main") -> list[dict]:
    """Rows from a local .jsonl/.parquet file, a local folder holding `{split}.jsonl`/`.parquet`,
    or else a Hugging Face hub dataset id (needs the `hub` extra and network access)."""
    path = Path(source)
    if path.is_dir():
        for ext in (".jsonl", ".parquet"):
            if (path / f"{split}{ext}").is_file():
                return load_rows(str(path / f"{split}{ext}"), split, config)
        raise FileNotFoundError(f"{path}: no {split}.jsonl or {split}.parquet in this folder")
    if path.suffix == ".jsonl":
        if not path.is_file():
            raise FileNotFoundError(f"GSM8K file not found: {path}")
        return _validate(read_jsonl(path), str(path))
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        if not path.is_file():
            raise FileNotFoundError(f"GSM8K file not found: {path}")
        return _validate(pq.read_table(path).to_pylist(), str(path))
    if path.suffix or source.startswith((".", "/")):
        raise ValueError(f"{source}: expected a .jsonl or .parquet file, a folder, or a hub id like {HUB_ID!r}")
    try:
        import datasets
    except ImportError:
        raise ImportError(f"loading {source!r} from the Hugging Face hub needs the `datasets` package") from None
    ds = datasets.load_dataset(source, config, split=split)
    return _validate([{"question": r["question"], "answer": r["answer"]} for r in ds], f"{source}[{config}/{split}]")


def subsample(rows: Sequence[dict], n: int | None, seed: int) -> list[dict]:
    """A deterministic subset of n rows (all when n is None or >= len)."""
    if n is None or n >= len(rows):
        return list(rows)
    return random.Random(seed).sample(list(rows), n)


def split_dev_test(rows: Sequence[dict], dev_size: int, test_size: int | None, seed: int) -> tuple[list[dict], list[dict]]:
    """Disjoint dev and test subsets of one split (the paper draws GSM8K dev 100 / test 1,220 from test)."""
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    if dev_size > len(shuffled):
        raise ValueError(f"dev_size {dev_size} exceeds the {len(shuffled)} rows available")
    dev = shuffled[:dev_size]
    rest = shuffled[dev_size:]
    test = rest if test_size is None else rest[:test_size]
    return dev, test
