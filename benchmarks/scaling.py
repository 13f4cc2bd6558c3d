"""Benchmark: how one iteration's stages grow with the number of candidates N.

    python benchmarks/scaling.py [--workdir /tmp/selfdev-scaling] [--n 48 96 192] [--configfile FILE]
                                 [--no-exhaustive]

In one working directory (the world and the warmed-up factory are built once), runs iteration 1 of
the dpo arm (sampling, filter, scoring, pairs) for each N in turn (`loop.n_samples`; the rules whose
params hold N rerun), keeping each N's Snakemake benchmark files. Prints, per N: seconds of sampling,
filtering and scoring, programs scored, problem evaluations on dev and the fraction racing saved.
Unless --no-exhaustive, each iteration is also scored again without racing in-process (same engine,
one thread), which gives the exhaustive scoring seconds and checks that the top programs
(study.top_k) and the chosen ones are the same. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, exhaustive_check, rule_seconds  # noqa: E402


def _snakemake(workdir: Path, configfile: Path, target: str) -> None:
    subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                    "--cores", "all", "--configfile", str(configfile), "--", target], check=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/selfdev-scaling")
    ap.add_argument("--n", type=int, nargs="+", default=[48, 96, 192])
    ap.add_argument("--configfile", default=None, help="a config to start from (default: the defaults)")
    ap.add_argument("--no-exhaustive", action="store_true", help="skip the exhaustive re-scoring")
    args = ap.parse_args(argv)

    from selfdev import io
    from selfdev.config import validate_config
    from selfdev.loop import tables as loop

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    base = yaml.safe_load(Path(args.configfile).read_text()) if args.configfile else {}
    rows = []
    for n in args.n:
        cfg = {**base, "loop": {**base.get("loop", {}), "n_samples": n, "iterations": 1}}
        configfile = work / f"n{n}.yaml"
        configfile.write_text(yaml.safe_dump(cfg))
        t0 = time.perf_counter()
        _snakemake(work, configfile, "results/loop/dpo/seed0/iter1/pairs.jsonl")
        wall = time.perf_counter() - t0
        shutil.copytree(work / "results" / "benchmarks", work / f"benchmarks_n{n}")
        secs = rule_seconds(work / f"benchmarks_n{n}")
        it_dir = work / "results" / "loop" / "dpo" / "seed0" / "iter1"
        scores = io.read_table(it_dir / "scores.parquet", loop.SCORES_V)
        execs = io.read_table(it_dir / "executable.parquet", loop.EXECUTABLE_V)
        row = {"n": n, "wall_s": wall, "sample_s": secs.get("sample_dpo_s0_it1"), "filter_s": secs.get("filter_dpo_s0_it1"),
               "score_s": secs.get("score_dpo_s0_it1"), "executable": sum(e["executable"] for e in execs),
               "behaviours": len({e["behaviour"] for e in execs if e["executable"] and e.get("behaviour")}),
               **loop.evaluations_saved(scores)}
        if not args.no_exhaustive:
            config = validate_config({**cfg, "results": str(work / "results")})
            cwd = Path.cwd()
            try:  # the config's relative paths (the shipped prompts) are the repository's, as in common.smk
                os.chdir(REPO)
                row.update(exhaustive_check(config, it_dir, [], work / f"exhaustive_n{n}.parquet", 1))
            finally:
                os.chdir(cwd)
        rows.append(row)
        print(json.dumps(row), flush=True)
    (work / "scaling.json").write_text(json.dumps(rows, indent=1))
    print("\n| N | sampling s | filter s | scoring s (racing) | scoring s (exhaustive) | executable | behaviours "
          "| scored | dropped | dev problem evals | saved % | same top-k / chosen |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    fmt = lambda x: "-" if x is None else f"{x:.0f}"  # noqa: E731
    for r in rows:
        agree = "-" if "same_top_k" not in r else " / ".join("yes" if r[k] else "NO" for k in ("same_top_k", "same_chosen"))
        print(f"| {r['n']} | {fmt(r['sample_s'])} | {fmt(r['filter_s'])} | {fmt(r['score_s'])} | "
              f"{fmt(r.get('exhaustive_s'))} | {r['executable']} | {r['behaviours']} | {r['scored_now']} | "
              f"{r['partial']} | {r['dev_evaluations']} | {100 * r['dev_evaluations_saved']:.0f} | {agree} |")

if __name__ == "__main__":
    main()
