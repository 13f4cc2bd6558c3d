"""Benchmark: what each setting of the CPU numerics costs, and which weights it trains.

Trains the default toy M0 for a few steps in a fresh process under each setting of the environment that
decides torch's, MKL's and oneDNN's code paths, at the default config's thread count, and prints
milliseconds per step and a digest of the weights (the first 16 hex digits of a sha256 over them). The
project's setting is `selfdev.PINNED_CPU_ENV`; the others are the alternatives measured for it. Two CPUs
whose digests agree under a setting train the same worlds under it.

    python benchmarks/cpu_pinning.py [--steps 100] [--only NAME ...]

Prints figures; asserts nothing. Run on an otherwise idle machine (the timings).

The references below are digests that another machine printed for the CHILD program of commit b3978cd
(the default config of that commit: 2-layer char-level M0, 100 steps): an Intel Xeon (Sapphire Rapids,
AMX). They are compared with this machine's only when the world is that commit's (`--steps 100` and the
program unchanged); the current default world has other digests everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys
import selfdev  # pins (or not) before torch loads
import torch
from selfdev.world.build import seed_weights_digest

r = seed_weights_digest(steps=int(sys.argv[1]), prompt=sys.argv[2])
print(json.dumps({**r, "capability": torch.backends.cpu.get_cpu_capability()}))
"""

# name -> the environment a setting sets (None: leave the variable unset). "project" is what importing
# selfdev sets (selfdev.PINNED_CPU_ENV).
def settings() -> dict[str, dict[str, str | None]]:
    import selfdev

    none = dict.fromkeys(selfdev.PINNED_CPU_ENV)
    avx2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    return {
        "project": dict(selfdev.PINNED_CPU_ENV),
        "avx2": {**avx2, "MKL_CBWR": "AVX2"},
        "avx2_strict": {**avx2, "MKL_CBWR": "AVX2,STRICT"},
        "compatible": {**avx2, "MKL_CBWR": "COMPATIBLE"},
        "compatible_strict": {**avx2, "MKL_CBWR": "COMPATIBLE,STRICT"},
        "compatible_aten_default": {**avx2, "MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default"},
        "native": {**none, "SELFDEV_NATIVE_CPU": "1"},
    }


# Digests of b3978cd's CHILD at 100 steps printed on an Intel Xeon (Sapphire Rapids, AMX) by another
# machine; "avx2" was that commit's pinning.
INTEL_SPR_B3978CD = {"avx2": "997a1b1ac44bb125", "avx2_strict": "29f4da415116a48b",
                     "compatible": "069fe323a43234d3", "compatible_strict": "069fe323a43234d3",
                     "compatible_aten_default": "ad056244dfc53608"}


def run_setting(env_over: dict[str, str | None], steps: int, prompt: str) -> dict:
    import selfdev

    env = {k: v for k, v in os.environ.items() if k not in (*selfdev.PINNED_CPU_ENV, "SELFDEV_NATIVE_CPU")}
    # Set explicitly, so that importing selfdev (whose defaults never override the environment) keeps them.
    env.update({k: v for k, v in env_over.items() if v is not None})
    if "SELFDEV_NATIVE_CPU" not in env_over:
        env["SELFDEV_NATIVE_CPU"] = "1"  # nothing set by selfdev beyond what this setting names
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps), prompt], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--only", nargs="*", help="settings to run (default: all)")
    args = p.parse_args(argv)
    from pathlib import Path

    prompt = str(Path(__file__).resolve().parents[1] / "config" / "prompts" / "toy.yaml")
    with open("/proc/cpuinfo") as fh:
        model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "?")
    print(f"CPU: {model}; {args.steps} M0 training steps at the default config's threads")
    results = {}
    table = settings()
    for name, env_over in table.items():
        if args.only and name not in args.only:
            continue
        r = results[name] = run_setting(env_over, args.steps, prompt)
        shown = " ".join(f"{k}={v}" for k, v in env_over.items() if v is not None)
        same_as = [n for n, e in table.items() if e == env_over and n in INTEL_SPR_B3978CD]
        ref = INTEL_SPR_B3978CD[same_as[0]] if same_as else "-"
        print(f"  {name:24s} {r['per_step_ms']:7.1f} ms/step  loss {r['loss_last']:.4f}  weights {r['weights']}"
              f"  (Intel SPR, b3978cd: {ref})  capability {r['capability']}  [{shown}]", flush=True)
    if "native" in results:
        base = results["native"]["seconds"]
        print(json.dumps({name: {"over_native": round(r["seconds"] / base - 1, 3), "weights": r["weights"]}
                          for name, r in results.items()}))


if __name__ == "__main__":
    main()
