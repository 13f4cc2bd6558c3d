"""Scoring a merging program: M0 + merge(task vectors) -> greedy generation -> the task's answer check.

The seed model is loaded once into a generation engine (`eval.engine`, on the configured device); for
each program the merged parameters are overwritten as the sandbox returns them, and restored afterwards
from M0's checkpoint on disk (read parameter by parameter). With the transformers engine scoring holds
M0, one parameter's stack of task vectors and that parameter's merge — never a second copy of the merged
parameters; the vLLM engine also buffers up to one chunk (`eval.vllm.swap_chunk_mb`) of merged layers.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from selfdev.scoring.evaluate import EvalResult, evaluate
from selfdev.lm import GenerationSpec
from selfdev.scoring.engines import make_engine
from selfdev.sandbox.probe import check_program
from selfdev.scoring.prompts import PromptTemplate
from selfdev.sandbox.run import SandboxLimits
from selfdev.world.taskvectors import MergeOutcome, TaskVectorSet, merge_in_sandbox


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
    # Problems evaluated: n, or fewer when racing dropped the program (accuracy is then the partial
    # estimate on those problems and `correct` holds None for the others).
    evaluated: int | None = None

    @property
    def partial(self) -> bool:
        return self.evaluated is not None and self.evaluated < self.n

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class LazyMerge(Mapping):
    """Merged task vectors computed parameter by parameter when read (trusted merges such as the
    mergekit baselines): applying one to the scorer never holds more than one merged parameter."""

    def __init__(self, names: Sequence[str], compute):
        self._names, self._compute = list(names), compute

    def __getitem__(self, name: str):
        if name not in self._names:
            raise KeyError(name)
        return self._compute(name)

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class MergeScorer:
    """Scores programs (or trusted merges) against one world and one split."""

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
        task: str = "toy",
        device: str = "cpu",
        engine: str = "transformers",
        engine_options: dict | None = None,
    ):
        from selfdev.world.checkpoints import Checkpoint

        if not Path(seed_dir).is_dir():
            raise FileNotFoundError(f"seed model folder not found: {seed_dir} (build the world first: snakemake --cores all)")
        self.seed = Checkpoint(seed_dir, "M0")
        self.tvs = TaskVectorSet(task_vector_paths)
        self.engine = make_engine(engine, seed_dir, dtype, device, gen, engine_options)
        self.tokenizer = self.engine.tokenizer
        self.rows, self.template, self.gen, self.limits, self.shots = list(rows), template, gen, limits, list(shots)
        self.task = task
        self.device = device
        self.dtype = dtype
        missing = [n for n in self.tvs.names if n not in self.seed or not self.engine.has(n)]
        if missing:
            raise ValueError(f"task vectors name parameters the seed model lacks: {missing[:5]}")
        from selfdev.params import layer_count

        # What a two-argument program is told about each parameter (selfdev.params): the seed's depth.
        self.n_layers = layer_count(self.tvs.names, seed_dir)
        self._dirty: set[str] = set()
        self._plans: dict[int, list[list[int]]] = {}

    @property
    def model(self):
        """The transformers model (transformers engine only)."""
        return self.engine.model

    def base(self, name: str):
        """M0's value of a merged parameter in the scoring dtype (read from M0's checkpoint)."""
        import torch

        return self.seed.get(name).to(getattr(torch, self.dtype))

    def _apply(self, name: str, delta) -> None:
        import torch

        with torch.no_grad():
            # A parameter not yet overwritten holds M0's value already (when the engine can show it):
            # no need to read it from disk.
            live = self.engine.live(name) if name not in self._dirty else None
            base = live if live is not None else self.base(name)
            self.engine.write(name, base.float() + delta.to(base.device).float())
        self._dirty.add(name)

    def restore(self) -> None:
        """Every overwritten parameter back to M0's value."""
        for name in sorted(self._dirty):
            self.engine.write(name, self.base(name))
        self.engine.flush()
        self._dirty.clear()

    def evaluate(self, rows: Sequence[dict] | None = None) -> EvalResult:
        """Accuracy of the model as it is now on the scorer's rows (or `rows`)."""
        self.engine.flush()
        return evaluate(self.engine, self.tokenizer, self.rows if rows is None else rows, self.template, self.gen,
                        self.shots, self.task)

    def evaluate_merged(self, merged: Mapping | None, rows: Sequence[dict] | None = None, race=None) -> EvalResult:
        """Accuracy of M0 + merged (M0 itself when merged is None) on the scorer's rows (or `rows`);
        parameters are written one at a time (a LazyMerge computes each when read) and restored after.
        With a `race` (scorer's rows only), chunk by chunk until its bound drops the merge."""
        if race is not None and rows is not None:
            raise ValueError("a race runs on the scorer's own rows")
        try:
            for name in merged or {}:
                self._apply(name, merged[name])
            return self._race(race) if race is not None else self.evaluate(rows)
        finally:
            self.restore()

    @contextlib.contextmanager
    def merged_program(self, source: str) -> Iterator[MergeOutcome]:
        """M0 + the program's merge, written into the model parameter by parameter as the sandbox
        returns it; inside the block the model is the merged one (when the outcome is ok)."""
        if self.limits is None:
            raise ValueError("this scorer has no sandbox limits: it scores trusted merges only")
        try:
            yield merge_in_sandbox(source, self.tvs, self.limits, sink=self._apply, n_layers=self.n_layers)
        finally:
            self.restore()

    def chunk_plan(self, seed: int) -> list[list[int]]:
        """Racing's chunks of the scorer's rows: the generation batches of exhaustive scoring (prompts
        sorted by length as greedy generation sorts them), in a seeded order (selfdev.scoring.racing)."""
        from selfdev.scoring.racing import chunk_plan

        if seed not in self._plans:
            lengths = [len(self.template.render(r["question"], self.shots, self.tokenizer)) for r in self.rows]
            self._plans[seed] = chunk_plan(lengths, self.gen.batch_size, seed)
        return self._plans[seed]

    def _race(self, race) -> EvalResult:
        """The model as it is now on the race's chunks until the bound cuts it: accuracy over the
        evaluated rows, `correct` aligned to all rows with None where not evaluated."""
        from selfdev.scoring.racing import partial_estimate, race_program

        if race.n != len(self.rows):
            raise ValueError(f"the race is over {race.n} problems, the scorer has {len(self.rows)}")
        seconds = [0.0, 0.0]

        def chunk_bits(chunk):
            # Rows in the order of the plan (the length order of exhaustive generation): the same batch.
            res = self.evaluate([self.rows[i] for i in chunk])
            seconds[0] += res.generation_s
            seconds[1] += res.checking_s
            return res.correct

        correct, evaluated = race_program(race, self.chunk_plan(race.seed), chunk_bits)
        by_skill: dict[str, list[bool]] = {}
        for row, ok in zip(self.rows, correct):
            if ok is not None:
                by_skill.setdefault(row.get("skill", "all"), []).append(ok)
        per_skill = {k: sum(v) / len(v) for k, v in sorted(by_skill.items())}
        hits = sum(1 for ok in correct if ok)
        return EvalResult(partial_estimate(hits, evaluated), len(self.rows), correct, per_skill, *seconds)

    def score_program(self, source: str, probe_first: bool = True, race=None) -> ScoreRecord:
        """M0 + the program's merge scored on the scorer's rows; with a `race`
        (selfdev.scoring.racing.Race) chunk by chunk until its bound drops the program."""
        if self.limits is None:
            raise ValueError("this scorer has no sandbox limits: it scores trusted merges only")
        timings: dict[str, float] = {}
        code_hash = None
        if probe_first:
            verdict = check_program(source, self.limits, n_layers=self.n_layers)
            timings["probe_s"] = verdict.seconds
            code_hash = verdict.code_hash
            if not verdict.executable:
                return ScoreRecord(False, verdict.category, verdict.reason, None, len(self.rows), timings=timings,
                                   code_hash=code_hash)
        with self.merged_program(source) as outcome:
            timings["merge_s"] = outcome.seconds
            if not outcome.ok:
                return ScoreRecord(False, outcome.category, outcome.reason, None, len(self.rows), timings=timings,
                                   code_hash=code_hash)
            t0 = time.perf_counter()
            result = self._race(race) if race is not None else self.evaluate()
        timings["eval_s"] = time.perf_counter() - t0
        timings["generation_s"] = result.generation_s
        timings["checking_s"] = result.checking_s
        return ScoreRecord(True, "ok", "", result.accuracy, result.n, result.per_skill, timings, code_hash,
                           result.correct, result.evaluated)
