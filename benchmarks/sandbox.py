"""Benchmark: what the sandbox costs per candidate, against calling the same function in-process.

Run after `snakemake --cores all` has built the default world:

    python benchmarks/sandbox.py [--config config/config.yaml] [--repeats 5]

Prints first what the kernel's file boundary (Landlock) costs per child: one trivial program run in a
fresh sandboxed child with and without the layer (the same child otherwise), and the time to compute
the boundary and apply it inside a child. `--layer-only` stops there (no world needed). Then, for each
reference program: the probe check sandboxed vs in-process, and a full merge of the world's task
vectors plus dev scoring sandboxed vs in-process. Targets: overhead <= 0.3 s per candidate and <= 1.5x
the in-process time for merge + score.
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


def _child_seconds(limits, repeats: int) -> float:
    """Median wall seconds of one sandboxed child running a trivial program on one small job."""
    import torch

    from selfdev.sandbox.run import run_jobs

    program = "def merge(t):\n    return t[0]\n"
    times = []
    for _ in range(repeats):
        out = run_jobs(program, [("x", lambda: [torch.ones(4), torch.ones(4)])], {"x": (4,)}, limits)
        assert out.ok, out
        times.append(out.seconds)
    return statistics.median(times)


def _layer_inside_child(repeats: int) -> tuple[float, float, int]:
    """Median seconds to compute the file boundary in a forked child that inherited it (as sandboxed
    children do) and to apply it with Landlock there, and the number of rules."""
    import json
    import os
    import tempfile

    from selfdev.sandbox import landlock
    from selfdev.sandbox.isolation import file_boundary

    compute, apply, rules = [], [], 0
    for _ in range(repeats):
        workdir = tempfile.mkdtemp(prefix="selfdev-bench-")
        file_boundary(workdir)  # the parent's, as run_jobs computes it before forking
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                t0 = time.perf_counter()
                b = file_boundary(workdir)
                t1 = time.perf_counter()
                landlock.restrict(list(b.readable), list(b.writable), list(b.read_files), list(b.write_files))
                n = len(b.readable) + len(b.writable) + len(b.read_files) + len(b.write_files)
                os.write(wfd, json.dumps([t1 - t0, time.perf_counter() - t1, n]).encode())
            finally:
                os._exit(0)
        os.close(wfd)
        c, a, rules = json.loads(os.read(rfd, 4096))
        os.close(rfd)
        os.waitpid(pid, 0)
        os.rmdir(workdir)
        compute.append(c)
        apply.append(a)
    return statistics.median(compute), statistics.median(apply), rules


def _boundary_in_parent() -> float:
    """Seconds to compute the boundary from scratch (once per process and working directory)."""
    import tempfile

    from selfdev.sandbox import isolation

    isolation._readable.cache_clear()
    t0 = time.perf_counter()
    isolation.file_boundary(tempfile.gettempdir())
    return time.perf_counter() - t0


def landlock_cost(config: dict, repeats: int) -> None:
    """Print the per-child cost of the Landlock layer."""
    import dataclasses

    from selfdev.sandbox import isolation, landlock

    abi = isolation.landlock_available()
    if not abi:
        print("Landlock: not offered by this kernel; nothing to measure")
        return
    limits = sandbox_limits(config, "probe")
    with_layer = _child_seconds(limits, repeats)
    real_abi = landlock.abi_version
    landlock.abi_version = lambda: 0  # the same child without the layer (as on a kernel without Landlock)
    isolation.landlock_available.cache_clear()
    try:
        without = _child_seconds(dataclasses.replace(limits, allow_without_landlock=True), repeats)
    finally:
        landlock.abi_version = real_abi
        isolation.landlock_available.cache_clear()
    compute, apply, rules = _layer_inside_child(repeats)
    once = _boundary_in_parent()
    print(f"Landlock v{abi}, median of {repeats}: one sandboxed child (trivial program) {with_layer * 1000:.1f} ms "
          f"with the layer, {without * 1000:.1f} ms without ({(with_layer - without) * 1000:+.1f} ms); inside the "
          f"child: boundary looked up {compute * 1000:.3f} ms, applied ({rules} rules) {apply * 1000:.3f} ms; "
          f"computed once per process in the parent: {once * 1000:.1f} ms")


def main(argv: list[str] | None = None) -> None:
    layer_only = "--layer-only" in (argv if argv is not None else sys.argv[1:])
    argv = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--layer-only"]
    args, config = load_bench_config(__doc__, 5, argv)
    landlock_cost(config, max(args.repeats, 20))
    if layer_only:
        return
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
