"""Benchmark: world build time per rule, and the cost of scoring one candidate, split by stage.

Run after `snakemake --cores all` has built the default world:

    python benchmarks/score_one.py [--config config/config.yaml] [--repeats 3]

Prints figures; asserts nothing (speed targets live here, not in timed tests).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from selfdev.algorithms import reference_paths
from selfdev.scoring.programs import make_scorer, world_inputs
from selfdev.config import sandbox_limits
from selfdev.paths import Paths
from selfdev.sandbox.probe import check_program
from selfdev.sandbox.run import run_jobs
from selfdev.world.taskvectors import merge_in_sandbox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_bench_config, rule_seconds  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    args, config = load_bench_config(__doc__, 3, argv)
    paths = Paths(config["results"])

    print("## World build, seconds per rule (Snakemake benchmark files)")
    times = rule_seconds(Path(paths.benchmark("")))
    world = {k: v for k, v in times.items() if k.startswith(("world", "expert_data", "task_vector"))}
    for name, sec in world.items():
        print(f"{name:32s} {sec:8.1f}")
    if world:
        print(f"{'sum of world rules':32s} {sum(world.values()):8.1f}")

    files = world_inputs(config, "dev")
    t0 = time.perf_counter()
    scorer = make_scorer(config, files["seed_dir"], files["task_vectors"], files["rows"], files["shots"])
    print(f"\nscorer set-up (load M0, open task vectors): {time.perf_counter() - t0:.2f} s; "
          f"{len(scorer.tvs.names)} merged parameters, {len(scorer.rows)} dev problems")

    trivial = "def merge(t):\n    return t[0]\n"
    starts = []
    for _ in range(args.repeats):
        out = run_jobs(trivial, [], {}, sandbox_limits(config, "probe"))
        starts.append(out.seconds)
    print(f"process start (fork + load program + exit, no work): {statistics.median(starts) * 1000:.1f} ms")

    print("\n## Per candidate, median of", args.repeats, "runs (seconds)")
    print(f"{'program':18s} {'probe':>7s} {'merge':>7s} {'generate':>9s} {'check':>7s} {'total':>7s} {'dev acc':>8s}")
    for name, path in reference_paths().items():
        source = path.read_text()
        rows = []
        for _ in range(args.repeats):
            probe = check_program(source, sandbox_limits(config, "probe")).seconds
            merged = merge_in_sandbox(source, scorer.tvs, sandbox_limits(config, "merge"))
            result = scorer.evaluate_merged(merged.merged)
            rows.append((probe, merged.seconds, result.generation_s, result.checking_s, result.accuracy))
        med = [statistics.median(c) for c in zip(*rows)]
        total = sum(med[:4])
        print(f"{name:18s} {med[0]:7.3f} {med[1]:7.3f} {med[2]:9.3f} {med[3]:7.4f} {total:7.3f} {100 * med[4]:7.1f}%")


if __name__ == "__main__":
    main()
