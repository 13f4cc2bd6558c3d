"""Benchmark: racing against exhaustive scoring on a finished run.

    python benchmarks/racing_agreement.py --workdir DIR [--configfile FILE]

For every arm and seed of the run in DIR (its results/ and the config it ran with: the defaults, or
FILE), scores every iteration again without racing, in-process and in order (each iteration's earlier
iterations are the exhaustive tables, as in a run without racing), then prints per iteration: programs
scored, dropped by racing, problem evaluations raced and exhaustive, the fraction saved, the seconds of
the exhaustive re-scoring, and whether the iteration's top programs (study.top_k) and chosen programs are
racing's; per run, whether the top programs over every iteration (what the study tests) are the same.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, exhaustive_check  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True, help="a finished run's working directory (holds results/)")
    ap.add_argument("--configfile", default=None, help="the config the run used (default: the defaults)")
    args = ap.parse_args(argv)

    from selfdev import io
    from selfdev.config import validate_config
    from selfdev.loop import tables as loop
    from selfdev.paths import Paths

    work = Path(args.workdir).resolve()
    base = yaml.safe_load(Path(args.configfile).read_text()) if args.configfile else {}
    config = validate_config({**base, "results": str(work / "results")})
    paths = Paths(config["results"])
    out_dir = work / "racing_agreement"
    out_dir.mkdir(exist_ok=True)
    os.chdir(REPO)  # the config's relative paths (the shipped prompts) are the repository's, as in common.smk
    k = config["study"]["top_k"]
    exhaustive: dict[str, Path] = {}  # raced scores.parquet -> its exhaustive table (dpo's iteration 1 is shared)
    rows, runs = [], []
    for seed in range(config["study"]["seeds"]):
        for arm in config["study"]["arms"]:
            raced_paths: list[Path] = []
            for it in range(1, config["loop"]["iterations"] + 1):
                scores = Path(paths.scores(arm, seed, it))
                if str(scores) not in exhaustive:
                    out = out_dir / f"{arm}_s{seed}_it{it}.parquet"
                    check = exhaustive_check(config, scores.parent, [exhaustive[str(p)] for p in raced_paths], out,
                                             it, raced_paths)
                    exhaustive[str(scores)] = out
                    saved = loop.evaluations_saved(io.read_table(scores, loop.SCORES_V))
                    rows.append({"arm": arm if it > 1 else "all", "seed": seed, "iteration": it, **saved, **check})
                    print(json.dumps(rows[-1]), flush=True)
                raced_paths.append(scores)
            raced = [r for p in raced_paths for r in io.read_table(p, loop.SCORES_V)]
            full = [r for p in raced_paths for r in io.read_table(exhaustive[str(p)], loop.SCORES_V)]
            same = ([r["candidate_id"] for r in loop.best_programs(raced, k)]
                    == [r["candidate_id"] for r in loop.best_programs(full, k)])
            runs.append({"arm": arm, "seed": seed, "same_run_top_k": same})
    (out_dir / "agreement.json").write_text(json.dumps({"iterations": rows, "runs": runs}, indent=1))

    yes = lambda b: "yes" if b else "NO"  # noqa: E731
    print("\n| arm | seed | iteration | scored | dropped | dev problem evals (raced / exhaustive) | saved % "
          "| exhaustive re-scoring s | same top-k / chosen |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['arm']} | {r['seed']} | {r['iteration']} | {r['scored_now']} | {r['partial']} | "
              f"{r['dev_evaluations']} / {r['dev_evaluations_exhaustive']} | {100 * r['dev_evaluations_saved']:.1f} | "
              f"{r['exhaustive_s']:.0f} | {yes(r['same_top_k'])} / {yes(r['same_chosen'])} |")
    done = sum(r["dev_evaluations"] for r in rows)
    full = sum(r["dev_evaluations_exhaustive"] for r in rows)
    print(f"\nAll iterations: {done} of {full} problem evaluations ({100 * (1 - done / full):.1f}% saved); "
          f"top {k} over each run's iterations the same as exhaustive scoring's in "
          f"{sum(r['same_run_top_k'] for r in runs)} of {len(runs)} runs.")


if __name__ == "__main__":
    main()
