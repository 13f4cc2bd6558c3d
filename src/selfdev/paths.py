"""Where every artifact lives under the results folder: one source of truth for the Snakefile and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    results: str = "results"

    def _p(self, *parts: str) -> str:
        return str(Path(self.results, *parts))

    # World
    def data(self, name: str) -> str:
        return self._p("world", "data", f"{name}.jsonl")

    def data_dir(self) -> str:
        return self._p("world", "data")

    def seed_model(self) -> str:
        return self._p("world", "seed", "model.safetensors")

    def seed_dir(self) -> str:
        return self._p("world", "seed")

    def expert_model(self, expert: str) -> str:
        return self._p("world", "experts", expert, "model.safetensors")

    def expert_dir(self, expert: str) -> str:
        return self._p("world", "experts", expert)

    def task_vector(self, expert: str) -> str:
        return self._p("world", "task_vectors", f"{expert}.safetensors")

    def world_report(self, ext: str) -> str:
        return self._p("world", f"report.{ext}")

    # Algorithms scored directly (the reference set until the loop exists)
    def verdict(self, algo: str) -> str:
        return self._p("algorithms", algo, "verdict.json")

    def score(self, algo: str) -> str:
        return self._p("algorithms", algo, "score.json")

    def algorithms_summary(self, ext: str) -> str:
        return self._p("algorithms", f"summary.{ext}")

    # Factory and loop
    def factory_initial(self) -> str:
        return self._p("factory", "initial", "model.safetensors")

    def factory_warmup(self) -> str:
        return self._p("factory", "warmup", "model.safetensors")

    def iteration(self, it, name: str) -> str:
        return self._p("loop", f"iter{it}", name)

    def candidates(self, it) -> str:
        return self.iteration(it, "candidates.parquet")

    def executable(self, it) -> str:
        return self.iteration(it, "executable.parquet")

    def scores(self, it) -> str:
        return self.iteration(it, "scores.parquet")

    def pairs(self, it) -> str:
        return self.iteration(it, "pairs.jsonl")

    def factory(self, it) -> str:
        return self.iteration(it, "factory/model.safetensors")

    def summary(self, ext: str) -> str:
        return self._p(f"summary.{ext}")

    def log(self, *parts: str) -> str:
        return self._p("logs", *parts)

    def benchmark(self, *parts: str) -> str:
        return self._p("benchmarks", *parts)
