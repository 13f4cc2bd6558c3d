"""Training the factory: the optional warm-up (LoRA SFT on the example library) and DPO (TRL).

Both train a LoRA adapter on the previous factory and save the adapter *and* the merged weights.
The merge happens in float32: merging a small LoRA update into bf16 weights loses most of it.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class LoraSpec:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str | tuple[str, ...] = "all-linear"


def _lora_config(spec: LoraSpec):
    from peft import LoraConfig

    target = spec.target_modules if isinstance(spec.target_modules, str) else list(spec.target_modules)
    return LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=target,
                      task_type="CAUSAL_LM")


def save_merged(peft_model, tokenizer, out_dir: str | Path, log: dict) -> None:
    """Adapter under out_dir/adapter, merged fp32 weights and tokenizer in out_dir."""
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(out / "adapter", safe_serialization=True)
    merged = peft_model.merge_and_unload()
    merged = merged.to(torch.float32)
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "train_log.json").write_text(json.dumps(log, indent=2))


@dataclass(frozen=True)
class WarmupSpec:
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 4
    seed: int = 0
    lora: LoraSpec = LoraSpec()


def warmup_sft(factory_dir: str | Path, prompt: str, bodies: Sequence[str], spec: WarmupSpec,
               out_dir: str | Path, threads: int = 1) -> dict:
    """LoRA SFT of the factory on (prompt -> example body) pairs; loss on the body only."""
    import torch
    from peft import get_peft_model

    from .factory import load_factory
    from .lm import pad_batch

    torch.set_num_threads(threads)
    torch.manual_seed(spec.seed)
    model, tok = load_factory(factory_dir, "float32")
    model = get_peft_model(model, _lora_config(spec.lora))
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    examples = []
    for body in bodies:
        target = tok("\n" + body + "\n", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        examples.append(prompt_ids + target)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec.lr)
    rng = random.Random(spec.seed)
    losses, t0 = [], time.perf_counter()
    model.train()
    steps = 0
    for _ in range(spec.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        for start in range(0, len(order), spec.batch_size):
            batch = [(examples[i], len(prompt_ids)) for i in order[start : start + spec.batch_size]]
            ids, labels, attn = pad_batch(batch, tok.pad_token_id)
            loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            steps += 1
            print(f"warm-up step {steps}: loss {losses[-1]:.4f}", flush=True)
    model.eval()
    log = {"kind": "warmup_sft", "parent": str(factory_dir), "examples": len(examples), "steps": steps,
           "loss_first": losses[0], "loss_last": losses[-1], "losses": losses,
           "seconds": time.perf_counter() - t0, "lora": spec.lora.__dict__, "lr": spec.lr, "epochs": spec.epochs}
    save_merged(model, tok, out_dir, log)
    return log


@dataclass(frozen=True)
class DpoSpec:
    lr: float = 2e-4
    beta: float = 0.1
    epochs: int = 1
    batch_size: int = 4
    max_length: int = 512
    seed: int = 0
    lora: LoraSpec = LoraSpec()


def train_dpo(factory_dir: str | Path, pairs: Sequence[dict], spec: DpoSpec, out_dir: str | Path,
              threads: int = 1, pairs_path: str | None = None) -> dict:
    """One DPO round (TRL DPOTrainer + PEFT LoRA; the reference is the parent with the adapter off)."""
    import shutil
    import tempfile

    import torch

    from .factory import load_factory

    torch.set_num_threads(threads)
    out = Path(out_dir)
    base = {"kind": "dpo", "parent": str(factory_dir), "pairs": len(pairs), "pairs_file": pairs_path}
    if not pairs:
        # Nothing to learn from: the next iteration samples from the same factory.
        out.mkdir(parents=True, exist_ok=True)
        for f in Path(factory_dir).iterdir():
            if f.is_file() and f.name != "train_log.json":
                shutil.copy2(f, out / f.name)
        log = {**base, "skipped": "no preference pairs", "loss_first": None, "loss_last": None, "seconds": 0.0}
        (out / "train_log.json").write_text(json.dumps(log, indent=2))
        return log
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    model, tok = load_factory(factory_dir, "float32")
    tok.padding_side = "left"
    data = Dataset.from_list([{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
                              for p in pairs])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        args = DPOConfig(
            output_dir=tmp, learning_rate=spec.lr, beta=spec.beta, num_train_epochs=spec.epochs,
            per_device_train_batch_size=spec.batch_size, gradient_accumulation_steps=1, logging_steps=1,
            save_strategy="no", report_to=[], use_cpu=True, bf16=False, gradient_checkpointing=False,
            max_length=spec.max_length, seed=spec.seed, disable_tqdm=False, dataloader_num_workers=0,
        )
        trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                             peft_config=_lora_config(spec.lora))
        trainer.train()
        history = [h for h in trainer.state.log_history if "loss" in h]
    losses = [float(h["loss"]) for h in history]
    log = {**base, "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
           "losses": losses, "rewards_margins": [h.get("rewards/margins") for h in history],
           "seconds": time.perf_counter() - t0, "lr": spec.lr, "beta": spec.beta, "epochs": spec.epochs,
           "lora": spec.lora.__dict__}
    save_merged(trainer.model, tok, out, log)
    return log
