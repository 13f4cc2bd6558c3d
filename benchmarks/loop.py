"""Benchmark: the whole default run (world, warm-up, T iterations) and the loop's targets.

    python benchmarks/loop.py --run [--workdir /tmp/selfdev-bench] [--configfile FILE]
        runs `snakemake --cores all` from scratch in WORKDIR and times it end to end;
    python benchmarks/loop.py [--results results]
        only reads an existing run.

Prints seconds per rule (Snakemake benchmark files), and per iteration: candidates, executable
rate, scored, mean/median/max dev accuracy, pairs, DPO loss; then the targets: end-to-end time
(<= 15 min on 2 cores), executable rate at iteration 1 (>= 30% after warm-up), best discovered
program vs Task Arithmetic's best lambda on dev. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rule_seconds(bench_dir: Path) -> dict[str, float]:
    out = {}
    for tsv in sorted(bench_dir.glob("*.tsv")):
        lines = tsv.read_text().splitlines()
        if len(lines) >= 2:
            out[tsv.stem] = float(lines[1].split("\t")[0])
    return out


def report(results: Path, wall: float | None) -> None:
    print("## Seconds per rule")
    for name, sec in _rule_seconds(results / "benchmarks").items():
        print(f"  {name:28s} {sec:8.1f}")
    summary = json.loads((results / "summary.json").read_text())
    print("\n## Per iteration")
    print(f"  {'it':>2s} {'T':>6s} {'cand':>5s} {'exec%':>6s} {'scored':>6s} {'mean':>6s} {'median':>6s} "
          f"{'max':>6s} {'best so far':>11s} {'pairs':>5s}  DPO loss")
    for it in summary["iterations"]:
        s = it["stats"]
        pct = lambda x: "   -  " if x is None else f"{100 * x:6.1f}"  # noqa: E731
        loss = "skipped" if s["dpo_skipped"] else f"{s['dpo_loss_first']:.3f} -> {s['dpo_loss_last']:.3f}"
        print(f"  {it['iteration']:2d} {s['temperature']:6.3f} {s['candidates']:5d} {100 * s['executable_rate']:6.1f} "
              f"{s['scored']:6d} {pct(s['dev_mean'])} {pct(s['dev_median'])} {pct(s['dev_max'])} "
              f"{pct(it['best_so_far']):>11s} {s['pairs']:5d}  {loss}")
    print("\n## Targets")
    if wall is not None:
        print(f"  end to end: {wall / 60:.1f} min (target <= 15)")
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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true", help="run the workflow from scratch first")
    ap.add_argument("--workdir", default="/tmp/selfdev-bench")
    ap.add_argument("--results", default="results")
    ap.add_argument("--configfile", default=None)
    args = ap.parse_args(argv)
    wall = None
    if args.run:
        work = Path(args.workdir)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "all"]
        if args.configfile:
            cmd += ["--configfile", args.configfile]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        results = work / "results"
    else:
        results = Path(args.results)
    report(results, wall)


if __name__ == "__main__":
    main()
