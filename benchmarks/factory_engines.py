"""Benchmark: one factory checkpoint sampled by each engine through the project's own `sample` and
`filter` steps (the rules' functions), iteration 1, chat format: seconds per program and what comes out.

    .venv-vllm/bin/python benchmarks/factory_engines.py --factory results/factory/initial \
        [--factory-config config/factories/qwen15_chat.yaml] [--variants vllm-bf16,vllm-fp32,transformers-fp32]
        [--n 32] [--n-transformers 8] [--workdir /tmp/selfdev-engines]

`--factory` is a converted checkpoint (a `factory_initial` output; e.g. build one with
`snakemake --configfile config/factories/qwen15_chat.yaml results/factory/initial/model.safetensors`).
Variants (VARIANTS): vLLM on the CPU in bf16 or fp32 as a sample job with 2 threads (worker bound to
both cores) or 1 (`-1c`: vLLM binds its worker to one core and keeps the other for its scheduler), and
transformers with 2 torch threads. Each is its own process, started from the same
environment as a workflow job (selfdev imported first, so the toy world's CPU pinning is set; the vLLM
engines take it away for their worker). Run it in the environment that has vLLM. Prints a table,
asserts nothing; time it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO  # noqa: E402

# threads: the sample job's threads (its rule's `threads:`); a vLLM engine given 2 binds its worker to both
# cores, given 1 lets vLLM bind (one core for its worker, one kept for its scheduler).
VARIANTS = {
    "vllm-bf16": {"engine": "vllm", "dtype": "bfloat16", "threads": 2},
    "vllm-bf16-1c": {"engine": "vllm", "dtype": "bfloat16", "threads": 1},
    "vllm-fp32": {"engine": "vllm", "dtype": "float32", "threads": 2},
    "vllm-fp32-1c": {"engine": "vllm", "dtype": "float32", "threads": 1},
    "transformers-fp32": {"engine": "transformers", "dtype": "float32", "threads": 2},
    "transformers-bf16": {"engine": "transformers", "dtype": "bfloat16", "threads": 2},
}

CHILD = r"""
import json, sys, time
import selfdev  # the workflow's environment: the CPU pinning is set as in every job
import yaml
from selfdev.config import validate_config
from selfdev.loop import steps
from selfdev.loop import tables as loop
from selfdev import io

args = json.loads(sys.argv[1])
cfg = yaml.safe_load(open(args["factory_config"])) or {}
cfg.setdefault("factory", {}).update(engine=args["engine"], dtype=args["dtype"])
cfg.setdefault("loop", {}).update(n_samples=args["n"], batch_size=args["n"])
cfg = validate_config(cfg)
t0 = time.perf_counter()
info = steps.sample(config=cfg, arm="dpo", rep=0, iteration=1, factory_dir=args["factory"],
                    out_path=args["out"] + "/candidates.parquet", threads=args["threads"])
wall = time.perf_counter() - t0
steps.filter_step(config=cfg, candidates=args["out"] + "/candidates.parquet", earlier_scores=[],
                  out_path=args["out"] + "/executable.parquet")
cands = io.read_table(args["out"] + "/candidates.parquet", loop.CANDIDATES_V)
execs = io.read_table(args["out"] + "/executable.parquet", loop.EXECUTABLE_V)
stats = loop.iteration_stats(cands, execs, [], [], {})
print("RESULT " + json.dumps({"wall": wall, "parsed": sum(1 for e in execs if e["code_hash"]),
      "runnable_code": len({e["code_hash"] for e in execs if e["executable"]}), **{k: stats[k] for k in
      ("candidates", "executable_rate", "behaviours", "novel_behaviours", "layer_aware_behaviours")}}))
"""


def run_variant(name: str, args, python: str) -> dict:
    v = VARIANTS[name]
    out = Path(args.workdir) / name
    out.mkdir(parents=True, exist_ok=True)
    n = args.n_transformers if v["engine"] == "transformers" else args.n
    payload = {"factory": str(Path(args.factory).resolve()), "factory_config": str(Path(args.factory_config).resolve()),
               "engine": v["engine"], "dtype": v["dtype"], "n": n, "threads": v["threads"], "out": str(out)}
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    t0 = time.perf_counter()
    proc = subprocess.run([python, "-c", CHILD, json.dumps(payload)], env=env, capture_output=True, text=True, cwd=REPO)
    (out / "log.txt").write_text(proc.stdout + proc.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"name": name, "error": f"exit {proc.returncode}, see {out / 'log.txt'}"}
    res = json.loads(lines[-1][len("RESULT "):])
    fallback = "Failed to create oneDNN linear" in proc.stdout + proc.stderr
    return {"name": name, "process_s": time.perf_counter() - t0, "onednn_fallback": fallback, **res}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--factory", required=True)
    ap.add_argument("--factory-config", default=str(REPO / "config" / "factories" / "qwen15_chat.yaml"))
    ap.add_argument("--variants", default="vllm-bf16,vllm-fp32,transformers-fp32")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--n-transformers", type=int, default=8)
    ap.add_argument("--workdir", default="/tmp/selfdev-engines")
    args = ap.parse_args(argv)
    rows = [run_variant(name, args, sys.executable) for name in args.variants.split(",")]
    print("| engine | samples | s per program (sampling step) | process s | parsed | executable | distinct runnable | "
          "behaviours | layer-aware | oneDNN fallback |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['name']} | error: {r['error']} |")
            continue
        print(f"| {r['name']} | {r['candidates']} | {r['wall'] / r['candidates']:.1f} | {r['process_s']:.0f} | {r['parsed']} | "
              f"{100 * r['executable_rate']:.0f}% | {r['runnable_code']} | {r['behaviours']} | "
              f"{r['layer_aware_behaviours']} | {'yes' if r['onednn_fallback'] else 'no'} |")


if __name__ == "__main__":
    main()
