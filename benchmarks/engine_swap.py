"""Benchmark: scoring candidates with vLLM by (a) re-creating the engine for each candidate and (b)
swapping each candidate's merged weights into one live engine (what `eval.engine: vllm` does), over
the same candidates; then vLLM vs transformers generation throughput on the same prompts.

Needs vLLM (on a CPU: `make vllm-env`, then run with .venv-vllm/bin/python) and a built world (the
default toy M0: `snakemake --cores all results/world/task_vectors/price.safetensors ...`, or any config's
world with --config):

    VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python benchmarks/engine_swap.py [--config config/config.yaml]

Prints figures; the last line is one JSON object
{"engine": "vllm", "reinit_s": ..., "swap_s": ..., "speedup": ..., "candidates": ...} where reinit_s and
swap_s are the seconds per candidate of (a) and (b) (merge in the sandbox, weights into the engine,
greedy decoding of the dev set, restore), and speedup their ratio. Time it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

# The programs scored: the shipped references and a few rescaled sums (all valid merges).
EXTRA = {f"ta_{lam}": f"def merge(t):\n    return {lam} * sum(t)\n" for lam in (0.3, 0.5, 0.7, 1.0, 1.5)}


def candidates(n: int) -> dict[str, str]:
    from pathlib import Path

    from selfdev.algorithms import reference_paths

    progs = {k: Path(v).read_text() for k, v in sorted(reference_paths().items())}
    progs.update(EXTRA)
    return dict(list(progs.items())[:n])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--candidates", type=int, default=6)
    args = ap.parse_args(argv)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

    import torch

    from selfdev.config import load_config, validate_config
    from selfdev.scoring.programs import make_scorer, world_inputs

    config = load_config(args.config)
    torch.set_num_threads(config["threads"])
    files = world_inputs(config, "dev")
    progs = candidates(args.candidates)

    def scorer(engine: str):
        c = validate_config({**config, "eval": {**config["eval"], "engine": engine}})
        return make_scorer(c, files["seed_dir"], files["task_vectors"], files["rows"], files["shots"])

    def score(s, code: str) -> float:
        with s.merged_program(code) as outcome:
            assert outcome.ok, outcome.reason
            return s.evaluate().accuracy

    print(f"world {config['results']}: {len(progs)} candidates, {config['threads']} thread(s), "
          f"torch {torch.__version__}")
    # (a) a new engine for every candidate
    reinit, init_times, acc_a = [], [], {}
    for name, code in progs.items():
        t0 = time.perf_counter()
        s = scorer("vllm")
        init_times.append(time.perf_counter() - t0)
        acc_a[name] = score(s, code)
        s.engine.close()
        del s
        reinit.append(time.perf_counter() - t0)
        print(f"  reinit  {name:18s} {reinit[-1]:7.2f} s (engine start {init_times[-1]:.2f} s)  dev {acc_a[name]:.3f}")
    # (b) one live engine, weights swapped in place
    t0 = time.perf_counter()
    s = scorer("vllm")
    start_s = time.perf_counter() - t0
    swap, acc_b = [], {}
    for name, code in progs.items():
        t1 = time.perf_counter()
        before = s.engine.swap_s
        acc_b[name] = score(s, code)
        swap.append(time.perf_counter() - t1)
        print(f"  swap    {name:18s} {swap[-1]:7.2f} s (weights in and out {s.engine.swap_s - before:.3f} s)  "
              f"dev {acc_b[name]:.3f}")
    assert acc_a == acc_b, (acc_a, acc_b)  # same engine, same weights: same scores

    # Generation throughput on the same prompts: M0 with each engine.
    gen = {}
    for engine in ("transformers", "vllm"):
        e = s if engine == "vllm" else scorer(engine)
        result = e.evaluate()
        tokens = sum(len(e.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in result.completions)
        gen[engine] = {"tokens": tokens, "seconds": result.generation_s, "tok_per_s": tokens / result.generation_s,
                       "accuracy": result.accuracy}
        print(f"generation {engine:12s} {len(result.completions)} prompts, {tokens} new tokens in "
              f"{result.generation_s:.2f} s = {tokens / result.generation_s:,.0f} tok/s (M0 dev {result.accuracy:.3f})")
    s.engine.close()

    reinit_s, swap_s = statistics.mean(reinit), statistics.mean(swap)
    print(f"engine start {statistics.mean(init_times):.2f} s per candidate in (a), once ({start_s:.2f} s) in (b); "
          f"per candidate: reinit {reinit_s:.2f} s, swap {swap_s:.2f} s")
    print(json.dumps({"engine": "vllm", "reinit_s": round(reinit_s, 3), "swap_s": round(swap_s, 3),
                      "speedup": round(reinit_s / swap_s, 1), "candidates": len(progs),
                      "engine_start_s": round(start_s, 2),
                      "gen_tok_per_s": {k: round(v["tok_per_s"], 1) for k, v in gen.items()}}))


if __name__ == "__main__":
    main()
