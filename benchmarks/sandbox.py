"""Benchmark: what the sandbox costs per candidate, against calling the same function in-process.

Run after `snakemake --cores all` has built the default world:

    python benchmarks/sandbox.py [--config config/config.yaml] [--repeats 5]

Prints, for each reference program: the probe check sandboxed vs in-process, and a full merge of the
world's task vectors plus dev scoring sandboxed vs in-process. Targets (issue: sandbox): overhead
<= 0.3 s per candidate and <= 1.5x the in-process time for merge + score.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from selfdev.algorithms import reference_paths
from selfdev.scoring.programs import make_scorer, world_inputs
from selfdev.config import sandbox_limits
from selfdev.sandbox.probe import _cases, check_program, probe_inputs
from selfdev.sandbox.program import load_merge
from selfdev.world.taskvectors import merge_in_sandbox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_bench_config  # noqa: E402


def _in_process_probe(merge) -> None:
    for _, n, shape, seed in _cases():
        merge([t.clone() for t in probe_inputs(n, shape, seed)])
        merge([t.clone() for t in probe_inputs(n, shape, seed)])


def main(argv: list[str] | None = None) -> None:
    args, config = load_bench_config(__doc__, 5, argv)
    files = world_inputs(config, "dev")
    scorer = make_scorer(config, files["seed_dir"], files["task_vectors"], files["rows"], files["shots"])
    probe_limits, merge_limits = sandbox_limits(config, "probe"), sandbox_limits(config, "merge")
    print(f"world: {len(scorer.tvs.names)} merged parameters, {len(scorer.rows)} dev problems; "
          f"median of {args.repeats} runs, seconds")
    print(f"{'program':16s} {'probe sb':>9s} {'probe in':>9s} {'overhead':>9s} | "
          f"{'merge+score sb':>15s} {'in-process':>11s} {'overhead':>9s} {'ratio':>6s}")
    for name, path in reference_paths().items():
        source = path.read_text()
        merge = load_merge(source)  # trusted reference code, in this process, for the baseline only
        sb_probe, in_probe, sb_full, in_full = [], [], [], []
        for _ in range(args.repeats):
            sb_probe.append(check_program(source, probe_limits).seconds)
            t0 = time.perf_counter()
            _in_process_probe(merge)
            in_probe.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            out = merge_in_sandbox(source, scorer.tvs, merge_limits)
            scorer.evaluate_merged(out.merged)
            sb_full.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            merged = {n: merge([t.clone() for t in scorer.tvs.get(n)]) for n in scorer.tvs.names}
            scorer.evaluate_merged(merged)
            in_full.append(time.perf_counter() - t0)
        sp, ip, sf, inf = (statistics.median(x) for x in (sb_probe, in_probe, sb_full, in_full))
        print(f"{name:16s} {sp:9.3f} {ip:9.3f} {sp - ip:9.3f} | {sf:15.3f} {inf:11.3f} {sf - inf:9.3f} {sf / inf:6.2f}")


if __name__ == "__main__":
    main()
