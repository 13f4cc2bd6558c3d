"""Benchmark: the generation choices of the performance work, each measured alone on a finished run.

    python benchmarks/generation.py --results DIR/results [--batches 2]

With the run's warmed-up factory (results/factory/warmup) and its world, one thread, the default config:
1. factory sampling of `--batches` batches of loop.batch_size at iteration 1's temperature, with the shared
   prompt prefilled once per batch and without (seconds per batch, and whether the samples are the same);
2. the same with the factory in bfloat16 against float32 (seconds, samples that differ);
3. M0 scoring of dev at eval.batch_size 25, 50, 100 and 400 (seconds, and whether every completion equals
   the completion at the config's batch size).
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO  # noqa: E402


def _sample(model, tok, prompt: str, spec, share_prefix: bool) -> tuple[list[str], float]:
    from selfdev.loop.factory import sample_completions

    t0 = time.perf_counter()
    out = sample_completions(model, tok, prompt, spec, share_prefix=share_prefix)
    return [c for c, _ in out], time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="a finished default run's results folder")
    ap.add_argument("--batches", type=int, default=2, help="sampling batches per variant")
    args = ap.parse_args(argv)

    import torch

    from selfdev.config import validate_config
    from selfdev.lm import GenerationSpec
    from selfdev.loop.factory import SamplingSpec, load_factory, load_prompt, temperature_at
    from selfdev.scoring.evaluate import evaluate
    from selfdev.scoring.programs import make_scorer, world_inputs

    results = Path(args.results).resolve()
    os.chdir(REPO)  # the config's relative paths (the shipped prompts) are the repository's
    config = validate_config({"results": str(results)})
    torch.set_num_threads(1)
    lp = config["loop"]
    spec = SamplingSpec(lp["batch_size"] * args.batches, temperature_at(1, lp["t1"], lp["beta"]), lp["top_p"],
                        lp["max_new_tokens"], lp["batch_size"], seed=0)
    prompt = load_prompt(config["factory"]["prompt"])
    factory = results / "factory" / "warmup"
    per_batch = lambda s: s / args.batches  # noqa: E731

    model, tok = load_factory(factory, "float32")
    shared, t_shared = _sample(model, tok, prompt, spec, True)
    plain, t_plain = _sample(model, tok, prompt, spec, False)
    print(f"1. sampling, {args.batches} batches of {spec.batch_size} (T {spec.temperature:.2f}, 1 thread): "
          f"prompt prefilled once {per_batch(t_shared):.1f} s per batch, per row {per_batch(t_plain):.1f} s; "
          f"samples the same: {shared == plain} ({sum(a == b for a, b in zip(shared, plain))} of {spec.n})")

    bf_model, bf_tok = load_factory(factory, "bfloat16")
    bf16, t_bf16 = _sample(bf_model, bf_tok, prompt, spec, True)
    print(f"2. sampling in bfloat16 {per_batch(t_bf16):.1f} s per batch against float32 {per_batch(t_shared):.1f} "
          f"({t_bf16 / t_shared:.2f}x); samples that differ: {sum(a != b for a, b in zip(bf16, shared))} of {spec.n}")
    del model, bf_model

    files = world_inputs(config, "dev")
    scorer = make_scorer(config, files["seed_dir"], files["task_vectors"], files["rows"], files["shots"])
    ev = config["eval"]
    def run(batch: int) -> tuple[list[str], float]:
        t0 = time.perf_counter()
        done = evaluate(scorer.engine.model, scorer.tokenizer, scorer.rows, scorer.template,
                        GenerationSpec(ev["max_new_tokens"], batch), scorer.shots, scorer.task)
        return done.completions, time.perf_counter() - t0

    ref, _ = run(ev["batch_size"])  # also warms the model up before the timed runs
    timed = {batch: run(batch) for batch in (25, 50, 100, 400)}
    print(f"3. M0 on {len(ref)} dev problems (1 thread), against eval.batch_size {ev['batch_size']}: " + "; ".join(
        f"batch {b} {s:.2f} s, same completions {c == ref}" for b, (c, s) in timed.items())
          + f"; {len(set(ref))} distinct completions")

if __name__ == "__main__":
    main()
