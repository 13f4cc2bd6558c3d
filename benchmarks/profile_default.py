"""Benchmark: where the default run's time goes, from the run's own records.

    python benchmarks/profile_default.py --run [--workdir /tmp/selfdev-profile] [--configfile FILE]
        runs `snakemake --cores all` from scratch in WORKDIR, then profiles it;
    python benchmarks/profile_default.py --workdir DIR
        profiles a finished run in DIR (its results/benchmarks/*.tsv and newest .snakemake/log);
    python benchmarks/profile_default.py --workdir AFTER --before BEFORE --markdown
        the before/after table for the README (stage wall and CPU seconds, critical path, idle cores).

Reads Snakemake's per-job benchmark files (wall `s`), each job's log (its last line: the job's CPU
seconds, selfdev.io.logged) and Snakemake's log (start and finish of each job at one-second
resolution, its threads, inputs and outputs). Prints wall and CPU seconds
per rule and per stage, the critical path (the chain of dependent jobs with the largest summed wall
time: no scheduling can finish sooner on any number of cores), and idle-core time: core-seconds with
no job scheduled (cores x wall - sum of threads x job wall) and core-seconds with no CPU work
(cores x wall - summed CPU time). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LOG_STAMP, finished_logs, run_workflow, stamp_seconds  # noqa: E402

# Stages by rule name (the first matching prefix of the benchmark file's stem wins).
STAGES = (
    ("world", ("world_", "expert_data_", "task_vector_")),
    ("reference programs", ("check_", "score_mean", "score_task", "score_ties", "score_tsv", "score_iso",
                            "algorithms_")),
    ("factory warm-up", ("factory_",)),
    ("sampling", ("sample_",)),
    ("filter (sandbox)", ("filter_",)),
    ("scoring", ("score_",)),
    ("pairs + DPO", ("pairs_", "dpo_")),
    ("baselines", ("baseline_", "singles_")),
    ("final test + transfer", ("final_test_", "transfer")),
    ("study, plots, report", ("study", "plots", "report_html", "summary_", "run_summary")),
)


@dataclass
class Job:
    """One job of the run: as the log states it, with its benchmark file's figures when it has one."""

    jobid: int
    rule: str
    start: float
    end: float | None = None
    threads: int = 1
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    benchmark: str | None = None
    log: str | None = None
    wall: float | None = None
    cpu: float | None = None

    @property
    def seconds(self) -> float:
        """Wall seconds: the benchmark file's (sub-second), else the log's (whole seconds)."""
        if self.wall is not None:
            return self.wall
        return 0.0 if self.end is None else self.end - self.start

    @property
    def name(self) -> str:
        return Path(self.benchmark).stem if self.benchmark else self.rule


def parse_log(text: str) -> tuple[list[Job], int]:
    """Jobs of one Snakemake log (start, finish, threads, files) and the cores it was given."""
    cores = int(m.group(1)) if (m := re.search(r"^Provided cores: (\d+)", text, re.M)) else 1
    jobs: dict[int, Job] = {}
    stamp: float | None = None
    current: Job | None = None
    for line in text.splitlines():
        if m := LOG_STAMP.match(line):
            stamp = stamp_seconds(m.group(1))
            continue
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            current = Job(-1, m.group(1), stamp or 0.0)
            continue
        if m := re.match(r"^Finished jobid: (\d+)", line):
            if int(m.group(1)) in jobs:
                jobs[int(m.group(1))].end = stamp
            current = None
            continue
        if current is None:
            continue
        key, _, value = line.strip().partition(": ")
        if key == "jobid":
            current.jobid = int(value)
            jobs[current.jobid] = current
        elif key == "threads":
            current.threads = int(value)
        elif key in ("input", "output"):
            setattr(current, key + "s", [v.strip() for v in value.split(",") if v.strip()])
        elif key == "benchmark":
            current.benchmark = value
        elif key == "log":
            current.log = value.split(",")[0].strip()
    return [j for j in jobs.values() if j.end is not None], cores


def attach_benchmarks(jobs: list[Job], workdir: Path) -> None:
    """Each job's wall seconds from its benchmark TSV, and its CPU seconds from the last line its log
    ends on (`selfdev: cpu_seconds X`, written by selfdev.io.logged: this process and its sandboxes).
    Snakemake's own `cpu_time` samples every 30 s after the first few and misses the end of longer
    jobs, so it is used only for a job whose log lacks the line."""
    from selfdev.io import CPU_LINE

    for j in jobs:
        tsv = workdir / j.benchmark if j.benchmark else None
        if tsv is not None and tsv.is_file():
            head, row = tsv.read_text().splitlines()[:2]
            vals = dict(zip(head.split("\t"), row.split("\t")))
            j.wall = float(vals["s"])
            j.cpu = float(vals["cpu_time"]) if vals.get("cpu_time", "NA") not in ("NA", "-") else None
        log = workdir / j.log if j.log else None
        if log is not None and log.is_file():
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith(CPU_LINE)]
            if lines:
                j.cpu = float(lines[-1].split()[-1])


def critical_path(jobs: list[Job]) -> list[Job]:
    """The chain of dependent jobs (a job depends on the producers of its inputs) with the largest
    summed wall time, first job first."""
    producer = {o: j for j in jobs for o in j.outputs}
    best: dict[int, tuple[float, Job | None]] = {}
    for j in sorted(jobs, key=lambda j: (j.end, j.start)):  # producers finish before consumers
        preds = [producer[i] for i in j.inputs if i in producer and producer[i].jobid in best]
        prev = max(preds, key=lambda p: best[p.jobid][0], default=None)
        best[j.jobid] = (j.seconds + (best[prev.jobid][0] if prev else 0.0), prev)
    if not best:
        return []
    by_id = {j.jobid: j for j in jobs}
    last: Job | None = by_id[max(best, key=lambda i: best[i][0])]
    path = []
    while last is not None:
        path.append(last)
        last = best[last.jobid][1]
    return path[::-1]


def stage_of(name: str) -> str:
    return next((s for s, prefixes in STAGES if name.startswith(prefixes)), "other")


@dataclass
class Profile:
    wall: float
    cores: int
    jobs: list[Job]

    @property
    def scheduled_idle(self) -> float:
        """Core-seconds with no job on them: cores x wall - sum of min(threads, cores) x job wall."""
        return self.cores * self.wall - sum(min(j.threads, self.cores) * j.seconds for j in self.jobs)

    @property
    def cpu_idle(self) -> float | None:
        """Core-seconds without CPU work: cores x wall - summed CPU seconds of the jobs."""
        if any(j.cpu is None for j in self.jobs if j.benchmark):
            return None
        return self.cores * self.wall - sum(j.cpu or 0.0 for j in self.jobs)

    def by_stage(self) -> dict[str, tuple[int, float, float]]:
        """Stage -> (jobs, summed wall seconds, summed CPU seconds), in STAGES order."""
        out: dict[str, list] = {s: [0, 0.0, 0.0] for s, _ in STAGES}
        for j in self.jobs:
            if j.rule == "all":
                continue
            acc = out.setdefault(stage_of(j.name), [0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += j.seconds
            acc[2] += j.cpu or 0.0
        return {s: tuple(v) for s, v in out.items() if v[0]}


def load_profile(workdir: Path) -> Profile:
    """The profile of the newest finished run in `workdir` (its log that reached 100%)."""
    logs = finished_logs(workdir)
    if not logs:
        raise FileNotFoundError(f"no finished Snakemake log in {workdir}/.snakemake/log")
    jobs, cores = parse_log(logs[-1].read_text())
    if not jobs:
        raise ValueError(f"{logs[-1]}: no finished jobs in the log")
    attach_benchmarks(jobs, workdir)
    wall = max(j.end for j in jobs) - min(j.start for j in jobs)
    return Profile(wall, cores, jobs)


def print_profile(p: Profile, top: int = 15) -> None:
    cpu_idle = p.cpu_idle
    print(f"## Run: {p.wall / 60:.1f} min wall on {p.cores} cores, {len(p.jobs)} jobs")
    print(f"  idle cores: {p.scheduled_idle / 60:.1f} core-min with no job scheduled "
          f"({100 * p.scheduled_idle / (p.cores * p.wall):.0f}% of {p.cores} x wall)"
          + ("" if cpu_idle is None else f"; {cpu_idle / 60:.1f} core-min without CPU work "
             f"({100 * cpu_idle / (p.cores * p.wall):.0f}%)"))
    print("\n## Stages (sum over jobs)\n  stage                      jobs   wall s    CPU s")
    for stage, (n, wall, cpu) in p.by_stage().items():
        print(f"  {stage:24s} {n:6d} {wall:8.1f} {cpu:8.1f}")
    rules: dict[str, list] = {}
    for j in p.jobs:
        acc = rules.setdefault(j.rule, [0, 0.0, 0.0, j.threads])
        acc[0] += 1
        acc[1] += j.seconds
        acc[2] += j.cpu or 0.0
    print("\n## Rules (sum over jobs; threads as scheduled)\n  rule                  jobs threads   wall s    CPU s")
    for rule, (n, wall, cpu, threads) in sorted(rules.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {rule:20s} {n:5d} {threads:7d} {wall:8.1f} {cpu:8.1f}")
    path = critical_path(p.jobs)
    total = sum(j.seconds for j in path)
    print(f"\n## Work / cores: {_work(p) / 60:.1f} min (the jobs' core-seconds on {p.cores} cores, none idle)")
    print(f"\n## Critical path: {total / 60:.1f} min of {p.wall / 60:.1f} min wall ({len(path)} jobs)")
    for j in path:
        if j.seconds >= 1.0:
            print(f"  {j.name:40s} {j.seconds:8.1f}")


def _work(p: Profile) -> float:
    """Wall seconds the jobs' core-seconds (threads x wall) need on the run's cores with no core ever
    idle: with the critical path, the bound no schedule of these jobs can beat."""
    return (p.cores * p.wall - p.scheduled_idle) / p.cores


def markdown_table(before: Profile, after: Profile) -> str:
    """Before/after per stage (wall and CPU seconds summed over jobs) and the run-level figures."""
    b, a = before.by_stage(), after.by_stage()
    lines = ["| stage | before wall s | before CPU s | after wall s | after CPU s |", "|---|---:|---:|---:|---:|"]
    for stage in dict.fromkeys([*b, *a]):
        bw, bc = b.get(stage, (0, 0.0, 0.0))[1:]
        aw, ac = a.get(stage, (0, 0.0, 0.0))[1:]
        lines.append(f"| {stage} | {bw:.0f} | {bc:.0f} | {aw:.0f} | {ac:.0f} |")
    cp_b, cp_a = (sum(j.seconds for j in critical_path(p.jobs)) for p in (before, after))
    lines += [f"| **end to end (min)** | {before.wall / 60:.1f} | | {after.wall / 60:.1f} | |",
              f"| critical path (min) | {cp_b / 60:.1f} | | {cp_a / 60:.1f} | |",
              f"| core-min with no job | {before.scheduled_idle / 60:.1f} | | {after.scheduled_idle / 60:.1f} | |",
              f"| work / cores (min) | {_work(before) / 60:.1f} | | {_work(after) / 60:.1f} | |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true", help="run the workflow from scratch in --workdir first")
    ap.add_argument("--workdir", default="/tmp/selfdev-profile")
    ap.add_argument("--configfile", default=None)
    ap.add_argument("--before", default=None, help="a finished run's working directory to compare with")
    ap.add_argument("--markdown", action="store_true", help="print the before/after table (needs --before)")
    args = ap.parse_args(argv)
    if args.run:
        run_workflow(args.workdir, args.configfile)
    after = load_profile(Path(args.workdir))
    if args.before:
        before = load_profile(Path(args.before))
        if args.markdown:
            print(markdown_table(before, after))
            return
        print("# before"), print_profile(before), print("\n# after")
    print_profile(after)


if __name__ == "__main__":
    main()
