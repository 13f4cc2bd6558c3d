"""Where every artifact lives under the results folder: one source of truth for the Snakefile and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


SHARED_FIRST_ITERATION = ("nodpo", "evolve", "evolve_dpo")
DPO_ARMS = ("dpo", "evolve_dpo")  # arms whose factory DPO trains (pairs and dpo rules)


def iteration_owner(arm: str, it) -> str:
    """The arm whose files hold iteration `it` of `arm`: every arm's iteration 1 is dpo's (same factory,
    base prompt, temperature and seed; evolve_dpo's pairs and DPO of iteration 1 are dpo's too), every
    other iteration its own."""
    return "dpo" if arm in SHARED_FIRST_ITERATION and str(it) == "1" else arm


@dataclass(frozen=True)
class Paths:
    results: str = "results"

    def _p(self, *parts: str) -> str:
        return str(Path(self.results, *parts))

    # World
    def data(self, name: str) -> str:
        return self._p("world", "data", f"{name}.jsonl")

    # A checkpoint folder is written atomically (selfdev.io.atomic_dir), so its config.json stands for
    # the whole folder; weights may be one file or shards (model-0000k-of-0000n.safetensors).
    def seed_model(self) -> str:
        return self._p("world", "seed", "config.json")

    def seed_dir(self) -> str:
        return self._p("world", "seed")

    def expert_model(self, expert: str) -> str:
        return self._p("world", "experts", expert, "config.json")

    def expert_dir(self, expert: str) -> str:
        return self._p("world", "experts", expert)

    def multitask_model(self) -> str:
        """The upper bound: M0 fine-tuned on every expert's data at once (world.multitask)."""
        return self._p("world", "multitask", "config.json")

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

    # Factory and loop. Loop files live per arm (`dpo`: the paper's loop; `nodpo`: the same sampling
    # schedule from the initial factory, never updated) and per repeat seed. Iteration 1 of `nodpo`
    # is iteration 1 of `dpo` (same factory, temperature and seed), so the arms share it.
    def factory_initial(self) -> str:
        return self._p("factory", "initial", "config.json")

    def factory_warmup(self) -> str:
        return self._p("factory", "warmup", "config.json")

    def iteration(self, arm: str, seed, it, name: str) -> str:
        return self._p("loop", iteration_owner(arm, it), f"seed{seed}", f"iter{it}", name)

    def candidates(self, arm: str, seed, it) -> str:
        return self.iteration(arm, seed, it, "candidates.parquet")

    def executable(self, arm: str, seed, it) -> str:
        return self.iteration(arm, seed, it, "executable.parquet")

    def scores(self, arm: str, seed, it) -> str:
        return self.iteration(arm, seed, it, "scores.parquet")

    def score_shard(self, arm: str, seed, it, shard, shards) -> str:
        """Shard `shard` (0-based) of `shards` of an iteration's scoring (eval.shards > 1)."""
        return self.iteration(arm, seed, it, f"shards/scores.{shard}-of-{shards}.parquet")

    def pairs(self, arm: str, seed, it) -> str:
        return self.iteration(arm, seed, it, "pairs.jsonl")

    def factory(self, arm: str, seed, it) -> str:
        return self.iteration(arm, seed, it, "factory/config.json")

    @staticmethod
    def train_log(model_file: str) -> str:
        """The `train_log.json` saved beside a checkpoint's weights (its lineage: parent, pairs)."""
        return str(Path(model_file).with_name("train_log.json"))

    def run_summary(self, arm: str, seed, ext: str) -> str:
        return self._p("loop", arm, f"seed{seed}", f"summary.{ext}")

    def tuned(self, arm: str, seed) -> str:
        """The run's best programs with their scale tuned on dev (rule `tune`), a scores table."""
        return self._p("loop", arm, f"seed{seed}", "tuned.parquet")

    # Final study: held-out evaluation, baselines, transfer, arms, plots, report
    def final(self, *parts: str) -> str:
        return self._p("final", *parts)

    def final_test(self, arm: str, seed) -> str:
        return self.final("programs", arm, f"seed{seed}", "test.parquet")

    def final_test_shard(self, arm: str, seed, shard, shards) -> str:
        return self.final("programs", arm, f"seed{seed}", "shards", f"test.{shard}-of-{shards}.parquet")

    def baseline(self, family: str, method: str, mode: str) -> str:
        return self.final("baselines", family, method, f"{mode}.json")

    def singles(self, family: str) -> str:
        return self.final("baselines", family, "singles.json")

    def transfer_programs(self) -> str:
        return self.final("transfer", "programs.parquet")

    def plot(self, name: str) -> str:
        return self.final("plots", f"{name}.png")

    def summary(self, ext: str) -> str:
        return self._p(f"summary.{ext}")

    def report_html(self) -> str:
        return self._p("report.html")

    def log(self, *parts: str) -> str:
        return self._p("logs", *parts)

    def benchmark(self, *parts: str) -> str:
        return self._p("benchmarks", *parts)
