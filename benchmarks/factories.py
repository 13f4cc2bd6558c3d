"""Benchmark: the factories side by side on iteration 1 (same prompt file, seed and N).

    python benchmarks/factories.py --run [--workdir /tmp/selfdev-factories] [--n 32]
        [--factories default,qwen05_chat,qwen15_chat] [--parallel 2]

For each factory (`default`: the default config, SmolLM2-135M warmed up; otherwise
config/factories/<name>.yaml), runs the real workflow up to iteration 1's executable.parquet
(factory conversion, warm-up if on, sampling, filter: no world needed) in its own folder, then
prints candidates, parseable, executable rate, distinct runnable programs (code, behaviours,
algorithms), novel behaviours (unlike the prompt's example and the warm-up library), sampling
seconds and tokens. Prints figures, asserts nothing. Time it on an idle machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, rule_seconds  # noqa: E402

TARGET = "results/loop/dpo/seed0/iter1/executable.parquet"


def run_one(name: str, work: Path, n: int) -> tuple[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    cfg = {} if name == "default" else yaml.safe_load((REPO / "config" / "factories" / f"{name}.yaml").read_text())
    cfg.setdefault("loop", {})["n_samples"] = n
    (work / "bench.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--configfile",
           str(work / "bench.yaml"), "--cores", "1", TARGET]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return name, time.perf_counter() - t0


def report(name: str, work: Path, wall: float | None) -> None:
    from selfdev import io
    from selfdev.loop import tables as loop

    res = work / "results"
    cands = io.read_table(res / "loop/dpo/seed0/iter1/candidates.parquet", loop.CANDIDATES_V)
    execs = io.read_table(res / TARGET.removeprefix("results/"), loop.EXECUTABLE_V)
    stats = loop.iteration_stats(cands, execs, [], [], {})
    secs = rule_seconds(res / "benchmarks")
    parsed = sum(1 for e in execs if e["code_hash"])
    runnable_code = len({e["code_hash"] for e in execs if e["executable"]})
    print(f"| {name} | {stats['candidates']} | {parsed} | {100 * stats['executable_rate']:.0f}% | {runnable_code} | "
          f"{stats['behaviours']} | {stats['algorithms']} | {stats['novel_behaviours']} | "
          f"{secs.get('sample_dpo_s0_it1', float('nan')):.0f} | {secs.get('factory_initial', 0):.0f} | "
          f"{secs.get('factory_warmup', 0):.0f} | {'-' if wall is None else f'{wall:.0f}'} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true")
    ap.add_argument("--workdir", default="/tmp/selfdev-factories")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--factories", default="default,qwen05_chat,qwen15_chat")
    ap.add_argument("--parallel", type=int, default=2, help="factories run side by side (1 core each)")
    args = ap.parse_args(argv)
    names = args.factories.split(",")
    walls: dict[str, float] = {}
    if args.run:
        with ThreadPoolExecutor(args.parallel) as pool:
            walls = dict(pool.map(lambda nm: run_one(nm, Path(args.workdir) / nm, args.n), names))
    print("| factory | candidates | parsed | executable | distinct runnable (code) | behaviours | algorithms "
          "| novel behaviours | sampling s | conversion s | warm-up s | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        report(name, Path(args.workdir) / name, walls.get(name))


if __name__ == "__main__":
    main()
