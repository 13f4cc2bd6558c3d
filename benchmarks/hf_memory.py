"""Benchmark: peak memory of streaming task vectors and of one sandboxed merge on a real checkpoint,
and generation throughput (the figure the README's GPU-hour estimates scale from).

    python benchmarks/hf_memory.py --model results_smollm/world/seed [--experts 3] [--workdir /tmp/hfmem]
    python benchmarks/hf_memory.py --gguf qwen2.5-coder-1.5b-instruct-q4_k_m.gguf --model /tmp/qwen15

The model is any checkpoint folder (the largest here: SmolLM2-135M-Instruct imported by
config/smollm.yaml; a Qwen2.5-Coder GGUF converted the same way would be 0.5B/1.5B). Experts are made
from it by moving its MLP weights (same architecture, as fine-tuning would), saved in 4 shards.
Each measurement runs in its own process; the peak is the kernel's VmHWM after resetting it
(/proc/self/clear_refs), so it is the process's real resident peak, page cache excluded.
Prints figures; asserts nothing. Time it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

_CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path

    def mb(key):
        return int(next(l for l in open("/proc/self/status") if l.startswith(key + ":")).split()[1]) / 1024

    def reset():
        open("/proc/self/clear_refs", "w").write("5")
        return mb("VmRSS")

    import torch
    torch.set_num_threads(1)
    from selfdev.world.taskvectors import write_task_vector
    what, work, model = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    out = {}
    if what == "task_vector":
        base = reset()
        t0 = time.perf_counter()
        write_task_vector(model, work / "expert0", work / "tv0.safetensors", [r"\\.mlp\\."])
        out = {"seconds": time.perf_counter() - t0, "peak_increase_mb": mb("VmHWM") - base, "base_mb": base}
    elif what == "merge":
        from selfdev.config import sandbox_limits, validate_config
        from selfdev.lm import GenerationSpec
        from selfdev.scoring.merge import MergeScorer
        from selfdev.scoring.prompts import load_template
        from selfdev.algorithms import reference_paths
        base = reset()
        tvs = sorted(str(p) for p in work.glob("tv*.safetensors"))
        limits = sandbox_limits(validate_config({"sandbox": {"memory_mb": 8192, "merge_wall_s": 600, "cpu_s": 600}}), "merge")
        tpl = load_template(Path(sys.argv[4]) / "config" / "prompts" / "toy_chat.yaml")
        rows = [{"question": f"What is {i} + {i}?", "answer": f"#### {2 * i}"} for i in range(16)]
        scorer = MergeScorer(model, tvs, rows, tpl, GenerationSpec(16, 16), limits)
        loaded = mb("VmRSS")
        code = reference_paths()["task_arithmetic"].read_text()
        t0 = time.perf_counter()
        with scorer.merged_program(code) as outcome:
            merged_at = time.perf_counter() - t0
            merge_peak = mb("VmHWM") - base
            assert outcome.ok, outcome.reason
            t1 = time.perf_counter()
            result = scorer.evaluate()
            gen_s = time.perf_counter() - t1
        new_tokens = sum(len(scorer.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in result.completions)
        out = {"load_mb": loaded - base, "merge_peak_mb": merge_peak, "peak_increase_mb": mb("VmHWM") - base, "merge_seconds": merged_at,
               "generation_seconds": gen_s, "new_tokens": new_tokens, "batch": 16}
    print(json.dumps(out))
""")


def make_experts(model: Path, work: Path, n: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfdev.world.checkpoints import Checkpoint

    m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    size = sum(p.numel() * p.element_size() for p in m.parameters())
    for j in range(n):
        if (work / f"expert{j}" / "config.json").is_file():
            continue
        gen = torch.Generator().manual_seed(j)
        copy = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
        with torch.no_grad():
            for name, p in copy.named_parameters():
                if ".mlp." in name:
                    p.add_(1e-3 * torch.randn(p.shape, generator=gen))
        copy.save_pretrained(work / f"expert{j}", max_shard_size=f"{size // 4 // 2**20 + 1}MB")
        AutoTokenizer.from_pretrained(model).save_pretrained(work / f"expert{j}")
    ck = Checkpoint(model)
    mlp = [n for n in ck.names if ".mlp." in n]
    largest = max(torch.Size(ck.shape(n)).numel() for n in mlp) * 4
    mlp_params = sum(torch.Size(ck.shape(n)).numel() for n in mlp)
    return {"model_mb": size / 2**20, "mlp_parameters": len(mlp), "largest_mlp_parameter_mb": largest / 2**20,
            "mlp_mb": mlp_params * 4 / 2**20, "params": sum(p.numel() for p in m.parameters()),
            "mlp_params": mlp_params}


def convert_gguf(gguf: Path, out: Path) -> None:
    """A GGUF file as a plain fp32 checkpoint folder (as selfdev.world.checkpoints does for smollm2-gguf)."""
    from selfdev.world.checkpoints import load_gguf

    model, tok = load_gguf(gguf.parent, gguf.name)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint folder (M0)")
    ap.add_argument("--gguf", default=None, help="convert this GGUF file into --model first (dequantised, fp32)")
    ap.add_argument("--experts", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/selfdev_hf_memory")
    ap.add_argument("--json", default=None, help="also write the figures here (read by benchmarks/paper_cost.py)")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    if args.gguf and not (Path(args.model) / "config.json").is_file():
        convert_gguf(Path(args.gguf), Path(args.model))
    sizes = make_experts(Path(args.model), work, args.experts)
    tv = run_child("task_vector", str(work), args.model)
    from selfdev.world.taskvectors import write_task_vector

    for j in range(1, args.experts):
        write_task_vector(args.model, work / f"expert{j}", work / f"tv{j}.safetensors", [r"\.mlp\."])
    merge = run_child("merge", str(work), args.model, str(Path(__file__).resolve().parents[1]))
    stack = sizes["largest_mlp_parameter_mb"] * args.experts
    print(f"model {args.model}: {sizes['model_mb']:.0f} MiB fp32, MLP {sizes['mlp_mb']:.0f} MiB in "
          f"{sizes['mlp_parameters']} parameters (largest {sizes['largest_mlp_parameter_mb']:.1f} MiB)")
    print(f"task vector (streamed, one expert): {tv['seconds']:.1f} s, peak +{tv['peak_increase_mb']:.0f} MiB "
          f"over the process (a whole-model difference would hold {2 * sizes['model_mb']:.0f} MiB)")
    print(f"one sandboxed merge of {args.experts} task vectors into the loaded M0: scoring process peak "
          f"+{merge['merge_peak_mb']:.0f} MiB after the merge (target: M0 + one parameter's stack = "
          f"{sizes['model_mb']:.0f} + {stack:.0f} MiB; M0 is paged in lazily), +{merge['peak_increase_mb']:.0f} MiB "
          f"once generation ran (its KV cache and logits); merge {merge['merge_seconds']:.1f} s")
    rate = merge["new_tokens"] / merge["generation_seconds"]
    print(f"greedy generation, batch {merge['batch']}: {merge['new_tokens']} new tokens in "
          f"{merge['generation_seconds']:.1f} s = {rate:.0f} tokens/s")
    if args.json:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from readme_figures import _machine

        Path(args.json).write_text(json.dumps({
            "model": str(args.model), "machine": _machine().split(";")[0], "params": sizes["params"],
            "mlp_params": sizes["mlp_params"], "tokens_per_s": rate, "batch": merge["batch"],
            "merge_seconds": merge["merge_seconds"], "task_vector": tv, "merge": merge, "sizes": sizes}, indent=2))


if __name__ == "__main__":
    main()
