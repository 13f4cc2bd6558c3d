"""Shared by the benchmark scripts: running the workflow from scratch and reading its benchmark files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This checkout's package first, as the Snakefile does for its jobs: a benchmark run from a clone reads
# the tables its jobs wrote with the same code (not an editable install of another checkout).
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))


# A timestamp line of a Snakemake log, e.g. "[Fri Nov 27 23:25:39 2026]".
LOG_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", re.M)


def stamp_seconds(stamp: str) -> float:
    """A Snakemake log timestamp (the text inside the brackets) as seconds since the epoch."""
    from datetime import datetime

    return datetime.strptime(stamp, "%a %b %d %H:%M:%S %Y").timestamp()


def finished_logs(workdir: Path) -> list[Path]:
    """Snakemake logs of the runs in `workdir` that finished, oldest first (the HTML report's inner
    `snakemake --report` runs no job, so it never logs "(100%) done")."""
    return [p for p in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
            if "(100%) done" in p.read_text()]


def wall_from_log(workdir: Path) -> float | None:
    """Wall seconds of the newest finished run in `workdir`: its first to its last timestamp."""
    for log in reversed(finished_logs(workdir)):
        stamps = LOG_STAMP.findall(log.read_text())
        if len(stamps) >= 2:
            return stamp_seconds(stamps[-1]) - stamp_seconds(stamps[0])
    return None


def rule_seconds(bench_dir: Path) -> dict[str, float]:
    """Wall seconds per finished rule, from Snakemake's benchmark TSV files."""
    out = {}
    for tsv in sorted(bench_dir.glob("*.tsv")):
        lines = tsv.read_text().splitlines()
        if len(lines) >= 2:
            out[tsv.stem] = float(lines[1].split("\t")[0])
    return out


def run_workflow(workdir: str | Path, configfile: str | None) -> tuple[Path, float]:
    """`snakemake --cores all` from scratch in `workdir`: (results folder, wall seconds)."""
    work = Path(workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "all"]
    if configfile:
        cmd += ["--configfile", configfile]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return work / "results", time.perf_counter() - t0


def parse_args(doc: str, default_workdir: str, argv: list[str] | None):
    """The benchmark scripts' shared options: --run (from scratch in --workdir) or --results."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true", help="run the workflow from scratch first")
    ap.add_argument("--workdir", default=default_workdir)
    ap.add_argument("--results", default="results")
    ap.add_argument("--configfile", default=None)
    return ap.parse_args(argv)


def load_bench_config(doc: str, repeats: int, argv: list[str] | None):
    """(args, config) for the per-candidate benchmarks: --config and --repeats; torch threads as the config's."""
    import argparse

    import torch

    from selfdev.config import load_config

    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--repeats", type=int, default=repeats)
    args = ap.parse_args(argv)
    config = load_config(args.config)
    torch.set_num_threads(config["threads"])
    return args, config


def exhaustive_check(config: dict, it_dir: Path, earlier: list[Path], out: Path, iteration: int,
                     earlier_raced: list[Path] | None = None) -> dict:
    """One raced iteration (`it_dir`) scored again without racing, in-process (same engine, the config's
    threads), with `earlier` the exhaustive tables of its earlier iterations: seconds, problem evaluations,
    and whether this iteration's top programs (study.top_k) and chosen programs equal racing's (racing's
    chosen computed with `earlier_raced`, the run's own earlier tables)."""
    from selfdev import io
    from selfdev.loop import tables as loop
    from selfdev.loop.steps import score_step
    from selfdev.scoring.programs import world_inputs

    files = world_inputs(config, "dev")
    t0 = time.perf_counter()
    score_step(config={**config, "loop": {**config["loop"], "racing": False}},
               candidates=str(it_dir / "candidates.parquet"), executable=str(it_dir / "executable.parquet"),
               earlier_scores=[str(p) for p in earlier], seed_dir=files["seed_dir"],
               task_vectors=files["task_vectors"], rows=files["rows"], shots=files["shots"], out_path=str(out),
               threads=config["threads"])
    seconds = time.perf_counter() - t0
    raced, full = io.read_table(it_dir / "scores.parquet", loop.SCORES_V), io.read_table(out, loop.SCORES_V)
    read = lambda paths: [io.read_table(p, loop.SCORES_V) for p in paths]  # noqa: E731
    k = config["study"]["top_k"]
    spec = loop.PairSpec.from_config(config["loop"], 0)
    ids = lambda rows: [r["candidate_id"] for r in rows]  # noqa: E731
    chosen_raced = loop.chosen_and_rejected(raced, read(earlier_raced or []), spec, iteration)[0]
    chosen_full = loop.chosen_and_rejected(full, read(earlier), spec, iteration)[0]
    return {"exhaustive_s": seconds, "same_top_k": ids(loop.best_programs(raced, k)) == ids(loop.best_programs(full, k)),
            "same_chosen": ids(chosen_raced) == ids(chosen_full),
            "exhaustive_evaluations": loop.evaluations_saved(full)["dev_evaluations"]}
