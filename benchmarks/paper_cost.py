"""What config/paper.yaml costs, derived from figures measured by benchmarks/hf_memory.py.

    python benchmarks/hf_memory.py --model results_smollm/world/seed --json /tmp/hf_memory.json
    python benchmarks/paper_cost.py --measured /tmp/hf_memory.json [--config config/paper.yaml]

Measured: greedy tokens/s and the time of one sandboxed merge of three task vectors, on a model of
known size here. Scaled: by parameter count (generation, whose cost per token grows with the
weights read) and by MLP size (the merge). The GPU figure is *not* measured (no GPU was available):
it is the memory-bandwidth bound of decoding at the stated efficiency, and says so. Workload sizes
(programs per iteration that run, tokens per answer) are assumptions stated in the output.
Prints markdown; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MISTRAL_7B = {"params": 7.24e9, "mlp_params": 32 * 3 * 14336 * 4096, "bf16_gb": 14.5}
H100 = {"name": "H100 SXM", "bandwidth_tb_s": 3.35, "bf16_tflops": 989}


def estimate(cfg: dict, measured: dict, *, executable: float, answer_tokens: int, program_tokens: int,
             prompt_tokens: int, efficiency: float) -> dict:
    lp, ev, st = cfg["loop"], cfg["eval"], cfg["study"]
    runs = lp["iterations"] + (lp["iterations"] - 1 if "nodpo" in st.get("arms", ["dpo", "nodpo"]) else 0)
    samples = runs * lp["n_samples"]
    programs = samples * executable
    scoring_tokens = programs * ev["dev_size"] * answer_tokens
    prefill_tokens = programs * ev["dev_size"] * prompt_tokens
    top = st.get("top_k", 15)
    test_tokens = (2 * top + cfg.get("transfer", {}).get("top_k", 5)) * ev["test_size"] * answer_tokens
    # Single models (M0 and every expert) on dev and test; grid-tuned baselines on dev, for both families.
    from selfdev.study.baselines import grid

    w, b = cfg["world"], cfg["baselines"]
    models = 1 + len(w["experts"]) + len(w["transfer_experts"])
    grid_evals = sum(len(grid(m, b["grid_size"], b["lambda_range"], b["density_range"])) for m in b["methods"])
    families = 2 if w["transfer_experts"] else 1
    other_tokens = (models * (ev["dev_size"] + ev["test_size"]) + families * grid_evals * ev["dev_size"]) * answer_tokens
    gen_tokens = samples * program_tokens + scoring_tokens + test_tokens + other_tokens
    scale = MISTRAL_7B["params"] / measured["params"]
    cpu_tok_s = measured["tokens_per_s"] / scale
    gpu_tok_s = efficiency * H100["bandwidth_tb_s"] * 1e12 / (MISTRAL_7B["bf16_gb"] * 1e9) * ev["batch_size"]
    prefill_s = 2 * MISTRAL_7B["params"] * prefill_tokens / (0.5 * H100["bf16_tflops"] * 1e12)
    merge_s = measured["merge_seconds"] * MISTRAL_7B["mlp_params"] / measured["mlp_params"]
    return {"runs": runs, "samples": samples, "programs": programs, "gen_tokens": gen_tokens,
            "scoring_tokens": scoring_tokens, "prefill_tokens": prefill_tokens, "cpu_tok_s": cpu_tok_s,
            "gpu_tok_s": gpu_tok_s, "gpu_gen_h": gen_tokens / gpu_tok_s / 3600, "gpu_prefill_h": prefill_s / 3600,
            "merge_s": merge_s, "merge_cpu_h": programs * merge_s / 3600, "scale": scale,
            "budget_extra_h": 4 * scoring_tokens / gpu_tok_s / 3600}


def main(argv: list[str] | None = None) -> None:
    import yaml

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measured", required=True, help="JSON written by benchmarks/hf_memory.py --json")
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config" / "paper.yaml"))
    ap.add_argument("--executable", type=float, default=0.5, help="assumed fraction of samples scored (runs, new)")
    ap.add_argument("--answer-tokens", type=int, default=150, help="assumed tokens per GSM8K answer")
    ap.add_argument("--program-tokens", type=int, default=150, help="assumed tokens per sampled program")
    ap.add_argument("--prompt-tokens", type=int, default=900, help="assumed tokens of a 5-shot prompt")
    ap.add_argument("--efficiency", type=float, default=0.25, help="assumed fraction of the bandwidth bound")
    args = ap.parse_args(argv)
    measured = json.loads(Path(args.measured).read_text())
    from selfdev.config import validate_config

    cfg = validate_config(yaml.safe_load(Path(args.config).read_text()), args.config)
    e = estimate(cfg, measured, executable=args.executable, answer_tokens=args.answer_tokens,
                 program_tokens=args.program_tokens, prompt_tokens=args.prompt_tokens, efficiency=args.efficiency)
    m = measured
    print(f"Measured here ({m['machine']}): {m['model']} ({m['params'] / 1e6:.0f}M parameters) generates "
          f"{m['tokens_per_s']:.0f} tokens/s greedy at batch {m['batch']} on one core; one sandboxed merge of "
          f"three task vectors over its {m['mlp_params'] / 1e6:.0f}M MLP weights takes {m['merge_seconds']:.1f} s.")
    print()
    print(f"Workload of `{Path(args.config).name}` (assumptions: {args.executable:.0%} of samples are new runnable "
          f"programs, {args.program_tokens} tokens per program, {args.answer_tokens} per answer, "
          f"{args.prompt_tokens}-token 5-shot prompts): {e['runs']} sampling runs x {cfg['loop']['n_samples']:,} = "
          f"{e['samples']:,} programs sampled, about {e['programs']:,.0f} scored on {cfg['eval']['dev_size']} dev "
          f"problems; {e['gen_tokens'] / 1e6:.0f}M generated tokens in all ({e['scoring_tokens'] / 1e6:.0f}M of "
          f"them scoring) and {e['prefill_tokens'] / 1e6:.0f}M prompt tokens.")
    print()
    print("| stage | derived cost |")
    print("|---|---|")
    print(f"| generation on this CPU (measured rate / {e['scale']:.0f}, the parameter ratio) | "
          f"{e['cpu_tok_s']:.2f} tokens/s: {e['gen_tokens'] / e['cpu_tok_s'] / 3600 / 24 / 365:.0f} CPU-core-years: "
          "not an option |")
    print(f"| generation on one {H100['name']} (not measured: {args.efficiency:.0%} of the bandwidth bound, "
          f"batch {cfg['eval']['batch_size']}) | {e['gpu_tok_s']:,.0f} tokens/s: **{e['gpu_gen_h']:.0f} GPU-hours** |")
    print(f"| 5-shot prompt prefill (compute bound, 50% of bf16 peak; no prefix cache) | "
          f"**{e['gpu_prefill_h']:.0f} GPU-hours** |")
    print(f"| sandboxed merges on the CPU (measured merge x {MISTRAL_7B['mlp_params'] / m['mlp_params']:.0f}, the "
          f"MLP ratio) | {e['merge_s']:.0f} s per program: **{e['merge_cpu_h']:.0f} CPU-core-hours** "
          f"({e['merge_cpu_h'] / 16:.0f} h on 16 cores: eval.shards 16 runs 16 scoring jobs side by side; "
          "within one job programs are merged one after another) |")
    print("| DPO, 3 rounds of <= 1,000 pairs (6 x 7.24B x tokens FLOPs at 200 TFLOP/s; not measured) | "
          "about 0.2 GPU-hours |")
    print(f"| budget-matched baselines, if switched on (four methods x the discovery's evaluations) | "
          f"+{e['budget_extra_h']:.0f} GPU-hours |")


if __name__ == "__main__":
    main()
