"""Benchmark: the whole default run (world, warm-up, T iterations) and the loop's targets, per run.

    python benchmarks/loop.py --run [--workdir /tmp/selfdev-bench] [--configfile FILE]
        runs `snakemake --cores all` from scratch in WORKDIR and times it end to end;
    python benchmarks/loop.py [--results results]
        only reads an existing run.

Prints seconds per rule (Snakemake benchmark files), and per iteration: candidates, executable
rate, scored, mean/median/max dev accuracy, pairs, DPO loss; then the targets: end-to-end time
(the loop alone was <= 15 min on 2 cores; the full study is timed by benchmarks/study.py), executable rate at iteration 1 (>= 30% after warm-up), best discovered
program vs Task Arithmetic's best lambda on dev. Prints figures, asserts nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import parse_args, rule_seconds, run_workflow  # noqa: E402


def report(results: Path, wall: float | None) -> None:
    print("## Seconds per rule")
    for name, sec in rule_seconds(results / "benchmarks").items():
        print(f"  {name:28s} {sec:8.1f}")
    for path in sorted(results.glob("loop/*/seed*/summary.json")):
        run_report(json.loads(path.read_text()), wall)


def run_report(summary: dict, wall: float | None) -> None:
    print(f"\n## Per iteration: run {summary.get('run')}")
    print(f"  {'it':>2s} {'T':>6s} {'cand':>5s} {'exec%':>6s} {'scored':>6s} {'mean':>6s} {'median':>6s} "
          f"{'max':>6s} {'best so far':>11s} {'pairs':>5s}  DPO loss")
    for it in summary["iterations"]:
        s = it["stats"]
        pct = lambda x: "   -  " if x is None else f"{100 * x:6.1f}"  # noqa: E731
        loss = ("skipped" if s["dpo_skipped"] else "-" if s["dpo_loss_first"] is None
                else f"{s['dpo_loss_first']:.3f} -> {s['dpo_loss_last']:.3f}")
        print(f"  {it['iteration']:2d} {s['temperature']:6.3f} {s['candidates']:5d} {100 * s['executable_rate']:6.1f} "
              f"{s['scored']:6d} {pct(s['dev_mean'])} {pct(s['dev_median'])} {pct(s['dev_max'])} "
              f"{pct(it['best_so_far']):>11s} {s['pairs']:5d}  {loss}")
    print("\n## Targets")
    if wall is not None:
        print(f"  end to end (whole workflow): {wall / 60:.1f} min")
    first = summary["iterations"][0]["stats"]
    print(f"  executable rate at iteration 1: {100 * first['executable_rate']:.1f}% (target >= 30%)")
    best = summary["best"]
    ta = summary["ta_best_dev"]
    if best:
        print(f"  best discovered program: dev {100 * best['dev_accuracy']:.1f} vs Task Arithmetic best lambda "
              f"{100 * ta:.1f} ({100 * (best['dev_accuracy'] - ta):+.1f}); M0 {100 * summary['seed_dev']:.1f}")
    else:
        print("  no executable program was scored")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__, "/tmp/selfdev-bench", argv)
    wall = None
    if args.run:
        results, wall = run_workflow(args.workdir, args.configfile)
    else:
        results = Path(args.results)
    report(results, wall)


if __name__ == "__main__":
    main()
