"""Benchmark: what pinning the CPU numerics (selfdev.PINNED_CPU_ENV) costs, and what it changes.

Trains the default toy M0 for a few hundred steps twice in fresh processes, once with torch/MKL/oneDNN
pinned to AVX2 (the default) and once left to pick their kernels (SELFDEV_NATIVE_CPU=1), with the
default config's thread count, and prints seconds per step and a digest of the weights of each.

    python benchmarks/cpu_pinning.py [--steps 200]

Prints figures; asserts nothing. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import hashlib, json, sys, time
import selfdev  # pins (or not) before torch loads
import torch
from selfdev.config import validate_config
from selfdev.lm import train_causal_lm, build_tiny_llama, set_threads
from selfdev.scoring.prompts import load_template
from selfdev.world.build import split_rows, tiny_llama_spec, train_spec
from selfdev.world.chartok import build_char_tokenizer

steps = int(sys.argv[1])
cfg = validate_config({})
w = cfg["world"]
set_threads(w["seed_training"]["threads"])
tok = build_char_tokenizer()
rows = split_rows("seed_train", seed=0, skills=w["skills"], data=w["data"])
model = build_tiny_llama(tiny_llama_spec(w["model"]), tok, 1)
spec = train_spec({**w["seed_training"], "steps": steps}, 2, warmup_steps=20)
tpl = load_template(sys.argv[2])
t0 = time.perf_counter()
losses = train_causal_lm(model, tok, tpl, rows, spec)
sec = time.perf_counter() - t0
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()[:16]
print(json.dumps({"seconds": sec, "per_step_ms": 1000 * sec / steps, "loss_last": losses[-1], "weights": digest,
                  "capability": torch.backends.cpu.get_cpu_capability()}))
"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    args = p.parse_args(argv)
    from pathlib import Path

    prompt = str(Path(__file__).resolve().parents[1] / "config" / "prompts" / "toy.yaml")
    with open("/proc/cpuinfo") as fh:
        model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "?")
    print(f"CPU: {model}; {args.steps} M0 training steps at the default config's threads")
    results = {}
    for mode in ("pinned", "native"):
        env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
        if mode == "native":
            env["SELFDEV_NATIVE_CPU"] = "1"
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.steps), prompt], env=env, capture_output=True,
                             text=True, check=True)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[mode]
        print(f"  {mode:7s} capability {r['capability']:7s} {r['per_step_ms']:7.1f} ms/step  "
              f"loss {r['loss_last']:.4f}  weights {r['weights']}")
    cost = results["pinned"]["seconds"] / results["native"]["seconds"] - 1
    same = results["pinned"]["weights"] == results["native"]["weights"]
    print(json.dumps({"pinned_over_native": round(cost, 3), "same_weights": same}))


if __name__ == "__main__":
    main()
