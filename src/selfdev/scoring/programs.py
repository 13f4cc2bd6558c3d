"""High-level operations shared by the CLI and the workflow scripts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from selfdev.config import expert_names, sandbox_limits
from selfdev.io import read_jsonl
from selfdev.lm import GenerationSpec
from selfdev.paths import Paths
from selfdev.sandbox.probe import check_program
from selfdev.scoring.prompts import load_template

SCORE_FORMAT = "selfdev.score.v1"
VERDICT_FORMAT = "selfdev.verdict.v1"


def read_program(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"algorithm file not found: {path}")
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None


def check_file(path: str | Path, config: dict, n_layers: int | None = None) -> dict:
    """The probe verdict of one program file (executable or not, with a reason category); the layer
    sweep of a two-argument program covers `n_layers` (the world's depth, selfdev.params.world_depth)."""
    verdict = check_program(read_program(path), sandbox_limits(config, "probe"), n_layers=n_layers).to_dict()
    return {"format": VERDICT_FORMAT, "program": str(path), **verdict}


def world_inputs(config: dict, split: str) -> dict:
    """The files of the built world a score needs, checked to exist."""
    if split not in ("dev", "test"):
        raise ValueError(f"split must be 'dev' or 'test', got {split!r}")
    p = Paths(config["results"])
    experts = expert_names(config)
    files = {"seed_dir": p.seed_dir(), "task_vectors": [p.task_vector(e) for e in experts], "rows": p.data(split),
             "shots": p.data("shots")}
    for f in [p.seed_model(), *files["task_vectors"], files["rows"], files["shots"]]:
        if not Path(f).is_file():
            raise FileNotFoundError(f"{f} is missing: build the world first (snakemake --cores all)")
    return files


def make_scorer(config: dict, seed_dir: str, task_vectors: Sequence[str], rows_path: str, shots_path: str):
    """A scorer for `config` (`device`, its `eval` section, and `sandbox` when it runs untrusted programs:
    a rule that only scores trusted merges does not read the sandbox keys, so changing them does not
    rerun it). `shots_path` holds the few-shot examples every prompt shows (the `shots` split)."""
    from selfdev.device import resolve_device
    from selfdev.scoring.merge import MergeScorer

    ev = config["eval"]
    limits = sandbox_limits(config, "merge") if "sandbox" in config else None
    return MergeScorer(seed_dir, task_vectors, read_jsonl(rows_path), load_template(ev["prompt"]),
                       GenerationSpec(ev["max_new_tokens"], ev["batch_size"]), limits, ev["dtype"],
                       shots=read_jsonl(shots_path), task=ev["task"], device=resolve_device(config["device"]),
                       engine=ev.get("engine", "transformers"), engine_options=engine_options(ev))


def engine_options(ev: dict) -> dict:
    """The engine's own options from the `eval` section (vLLM only; a rule's params leave the
    engine keys out when they hold the default transformers engine)."""
    if ev.get("engine", "transformers") != "vllm":
        return {}
    opts = dict(ev["vllm"])
    if opts["tensor_parallel_size"] == 1:
        del opts["tensor_parallel_size"]
    return opts


def score_file(path: str | Path, config: dict, split: str, seed_dir: str, task_vectors: Sequence[str],
               rows_path: str, shots_path: str, verdict: dict | None = None, threads: int | None = None) -> dict:
    """Accuracy of M0 + merge on `split`; a program whose verdict says not executable is not run."""
    import torch

    torch.set_num_threads(threads or config["threads"])
    source = read_program(path)
    t0 = time.perf_counter()
    if verdict is not None and not verdict.get("executable"):
        record = {"executable": False, "category": verdict.get("category"), "reason": verdict.get("reason"),
                  "accuracy": None}
    else:
        scorer = make_scorer(config, seed_dir, task_vectors, rows_path, shots_path)
        from selfdev.study.stats import bits

        record = scorer.score_program(source, probe_first=verdict is None).to_dict()
        record["correct"] = bits(record["correct"])  # one 0/1 per problem, for confidence intervals
    return {"format": SCORE_FORMAT, "program": str(path), "split": split, **record,
            "seconds": time.perf_counter() - t0}
