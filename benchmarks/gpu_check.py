"""One prepared check of the CUDA path, for a GPU machine that may lack some of the project's packages.

    python benchmarks/gpu_check.py prepare OUT   # here (CPU): micro world, tiny factory, CPU scores
    python benchmarks/gpu_check.py run OUT       # there (GPU): the same on cuda, compared

`run` reports what the machine has, then: the toy world's training on cuda (seed model, a few steps),
scoring M0 and the reference merges on cuda in float32 and bfloat16 against the CPU's scores, DPO
with TRL on cuda (bf16, via selfdev.device.trainer_flags), and the vLLM engine when vLLM is there.
Each step records its error instead of stopping; the last line is one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from world_fixture import HEAD32_WORLD, build_world  # noqa: E402

WORLD = {**HEAD32_WORLD, "data": {**HEAD32_WORLD["data"], "dev_per_skill": 25}}


def config(out: Path, device: str, **eval_keys) -> dict:
    from selfdev.config import validate_config

    return validate_config({"results": str(out / "results"), "device": device, "world": WORLD,
                            "eval": {"prompt": str(REPO / "config" / "prompts" / "toy.yaml"), "max_new_tokens": 12,
                                     **eval_keys}})


def scores(cfg: dict) -> dict:
    from selfdev.algorithms import reference_paths
    from selfdev.scoring.programs import make_scorer, world_inputs

    f = world_inputs(cfg, "dev")
    s = make_scorer(cfg, f["seed_dir"], f["task_vectors"], f["rows"], f["shots"])
    out = {"M0": s.evaluate().completions}
    for name, path in sorted(reference_paths().items()):
        with s.merged_program(Path(path).read_text()) as outcome:
            out[name] = s.evaluate().completions if outcome.ok else outcome.reason
    return out


def prepare(out: Path) -> None:
    from factory_fixture import build_tiny_factory

    cfg = build_world(config(out, "cpu"))
    build_tiny_factory(out / "factory", heads=2)
    (out / "cpu_scores.json").write_text(json.dumps(scores(cfg)))
    print("prepared", out)


def run(out: Path) -> None:
    report: dict = {}

    def step(name, fn):
        t0 = time.perf_counter()
        try:
            report[name] = {"ok": True, "result": fn()}
        except Exception as exc:  # recorded, the next step still runs
            report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                            "trace": traceback.format_exc()[-1500:]}
        report[name]["seconds"] = round(time.perf_counter() - t0, 2)
        print(name, json.dumps(report[name])[:2000], flush=True)

    def machine():
        import importlib

        import torch

        have = {}
        for mod in ("transformers", "peft", "trl", "accelerate", "safetensors", "pyarrow", "jsonschema", "yaml",
                    "math_verify", "mergekit", "snakemake", "vllm", "datasets"):
            try:
                have[mod] = getattr(importlib.import_module(mod), "__version__", "?")
            except Exception as exc:
                have[mod] = f"missing ({type(exc).__name__})"
        return {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "packages": have}

    def device():
        from selfdev.device import resolve_device, trainer_flags

        return {"auto": resolve_device("auto"), "cuda_flags": trainer_flags("cuda"), "cpu_flags": trainer_flags("cpu")}

    def world_training():
        from selfdev.paths import Paths
        from selfdev.world import build

        cfg = config(out / "gpu", "cuda")
        cfg["world"]["seed_training"]["steps"] = 50
        p = Paths(cfg["results"])
        build.write_split(split="seed_train", config=cfg, out=p.data("seed_train"), prompt=cfg["eval"]["prompt"])
        log = build.seed_step(config=cfg, prompt=cfg["eval"]["prompt"], data=p.data("seed_train"), out_dir=p.seed_dir())
        return {k: v for k, v in (log or {}).items() if k in ("device", "seconds", "final_loss", "steps")}

    def compare(dtype):
        def fn():
            cpu = json.loads((out / "cpu_scores.json").read_text())
            gpu = scores(config(out, "cuda", dtype=dtype))
            same = {k: sum(a == b for a, b in zip(cpu[k], gpu[k])) / len(cpu[k]) for k in cpu}
            return {"identical_completions": same}
        return fn

    def dpo():
        from selfdev.loop.finetune import DpoSpec, train_dpo
        from selfdev.config import validate_config

        prompt = (out / "factory" / "prompt.txt").read_text().rstrip()
        pairs = [{"prompt": prompt, "chosen": "\n    return sum(task_vectors) / len(task_vectors)\n",
                  "rejected": "\n    return task_vectors[0] * 100\n", "chosen_score": 0.5, "rejected_score": 0.0}] * 4
        spec = DpoSpec.from_config(validate_config({"dpo": {"epochs": 1, "batch_size": 2, "lora_r": 4,
                                                            "lora_alpha": 8}})["dpo"], 0)
        log = train_dpo(str(out / "factory"), pairs, spec, str(out / "dpo_out"), 2, "pairs.jsonl", "cuda")
        return {k: log.get(k) for k in ("device", "bf16", "seconds", "pairs", "loss", "final_loss") if k in log}

    def vllm_engine():
        import vllm  # noqa: F401

        cpu = json.loads((out / "cpu_scores.json").read_text())
        gpu = scores(config(out, "cuda", engine="vllm", vllm={"gpu_memory_utilization": 0.3}))
        return {"identical_completions": {k: sum(a == b for a, b in zip(cpu[k], gpu[k])) / len(cpu[k]) for k in cpu}}

    step("machine", machine)
    step("device", device)
    step("world_training_cuda", world_training)
    step("scoring_cuda_float32", compare("float32"))
    step("scoring_cuda_bfloat16", compare("bfloat16"))
    step("dpo_cuda", dpo)
    step("vllm_engine_cuda", vllm_engine)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "trace"} for k, v in report.items()}))


if __name__ == "__main__":
    {"prepare": prepare, "run": run}[sys.argv[1]](Path(sys.argv[2]).resolve())
