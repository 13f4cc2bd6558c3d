"""Scoring a merging program: M0 + merge(task vectors) -> greedy generation -> exact match.

The seed model is loaded once; for each program only the merged parameters are overwritten
(and restored afterwards), so scoring many programs costs one model load.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from selfdev.scoring.evaluate import EvalResult, evaluate
from selfdev.lm import GenerationSpec, load_causal_lm
from selfdev.sandbox.probe import check_program
from selfdev.scoring.prompts import PromptTemplate
from selfdev.sandbox.run import SandboxLimits
from selfdev.world.taskvectors import TaskVectorSet, merge_in_sandbox


@dataclass
class ScoreRecord:
    """One program's score; `accuracy` is None when the program was rejected."""

    executable: bool
    category: str
    reason: str
    accuracy: float | None
    n: int
    per_skill: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    code_hash: str | None = None
    correct: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class MergeScorer:
    """Scores programs (or precomputed merges) against one world and one split."""

    def __init__(
        self,
        seed_dir: str | Path,
        task_vector_paths: Sequence[str | Path],
        rows: Sequence[dict],
        template: PromptTemplate,
        gen: GenerationSpec,
        limits: SandboxLimits | None,
        dtype: str = "float32",
        shots: Sequence[dict] = (),
    ):
        if not Path(seed_dir).is_dir():
            raise FileNotFoundError(f"seed model folder not found: {seed_dir} (build the world first: snakemake --cores all)")
        self.model, self.tokenizer = load_causal_lm(seed_dir, dtype)
        self.tvs = TaskVectorSet(task_vector_paths)
        self.rows, self.template, self.gen, self.limits, self.shots = list(rows), template, gen, limits, list(shots)
        params = dict(self.model.named_parameters())
        missing = [n for n in self.tvs.names if n not in params]
        if missing:
            raise ValueError(f"task vectors name parameters the seed model lacks: {missing[:5]}")
        self._params = {n: params[n] for n in self.tvs.names}
        self._base = {n: p.detach().clone() for n, p in self._params.items()}

    def base(self, name: str):
        """M0's value of a merged parameter (a copy kept at load time)."""
        return self._base[name]

    def evaluate_merged(self, merged: dict | None, rows: Sequence[dict] | None = None) -> EvalResult:
        """Accuracy of M0 + merged (M0 itself when merged is None) on the scorer's rows (or `rows`);
        parameters are restored after."""
        import torch

        try:
            if merged:
                with torch.no_grad():
                    for name, delta in merged.items():
                        self._params[name].copy_((self._base[name].float() + delta.float()).to(self._base[name].dtype))
            return evaluate(self.model, self.tokenizer, self.rows if rows is None else rows, self.template, self.gen,
                            self.shots)
        finally:
            with torch.no_grad():
                for name, p in self._params.items():
                    p.copy_(self._base[name])

    def score_program(self, source: str, probe_first: bool = True) -> ScoreRecord:
        if self.limits is None:
            raise ValueError("this scorer has no sandbox limits: it scores trusted merges only")
        timings: dict[str, float] = {}
        code_hash = None
        if probe_first:
            verdict = check_program(source, self.limits)
            timings["probe_s"] = verdict.seconds
            code_hash = verdict.code_hash
            if not verdict.executable:
                return ScoreRecord(False, verdict.category, verdict.reason, None, len(self.rows), timings=timings,
                                   code_hash=code_hash)
        outcome = merge_in_sandbox(source, self.tvs, self.limits)
        timings["merge_s"] = outcome.seconds
        if not outcome.ok:
            return ScoreRecord(False, outcome.category, outcome.reason, None, len(self.rows), timings=timings,
                               code_hash=code_hash)
        t0 = time.perf_counter()
        result = self.evaluate_merged(outcome.merged)
        timings["eval_s"] = time.perf_counter() - t0
        timings["generation_s"] = result.generation_s
        timings["checking_s"] = result.checking_s
        return ScoreRecord(True, "ok", "", result.accuracy, result.n, result.per_skill, timings, code_hash,
                           result.correct)
