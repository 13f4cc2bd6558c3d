"""Training the factory: the optional warm-up (LoRA SFT on the example library) and DPO (TRL).

Both train a LoRA adapter on the previous factory and save the adapter *and* the merged weights.
The merge happens in float32: merging a small LoRA update into bf16 weights loses most of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from selfdev.device import trainer_flags


@dataclass(frozen=True)
class LoraSpec:
    r: int
    alpha: int
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

    from selfdev.io import atomic_dir, write_json

    with atomic_dir(out_dir) as out:
        peft_model.save_pretrained(out / "adapter", safe_serialization=True)
        merged = peft_model.merge_and_unload()
        merged = merged.to(torch.float32)
        merged.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        write_json(log, out / "train_log.json")


@dataclass(frozen=True)
class WarmupSpec:
    """The warm-up's settings (config `factory.warmup.*`; defaults live in the schema only)."""

    epochs: int
    lr: float
    batch_size: int
    seed: int
    lora: LoraSpec
    prompt: str

    @classmethod
    def from_config(cls, warmup: dict, seed: int) -> "WarmupSpec":
        return cls(warmup["epochs"], warmup["lr"], warmup["batch_size"], seed,
                   LoraSpec(warmup["lora_r"], warmup["lora_alpha"]), warmup["prompt"])


def warmup_prompt(prompt: str, scope: str) -> str:
    """The prompt of each warm-up example (`factory.warmup.prompt`): `full`, the file as sampling shows it;
    `signature`, the file from its last `def merge(` line, the header and docstring a body follows. The
    loss is on the body only, so the rest of the file is compute the warm-up pays three times over (it is
    three quarters of an example's tokens) for no measured gain in iteration 1 (the schema has the figures)."""
    if scope == "full":
        return prompt
    if scope != "signature":
        raise ValueError(f"factory.warmup.prompt: unknown value {scope!r} (signature, full)")
    from selfdev.loop.evolve import MERGE_DEF

    lines = list(MERGE_DEF.finditer(prompt))
    if not lines:
        raise ValueError("factory.warmup.prompt signature: the factory prompt has no line starting with "
                         "'def merge(' (the function the factory completes); use 'full'")
    return prompt[lines[-1].start():]


def warmup_sft(factory_dir: str | Path, prompt: str, bodies: Sequence[str], spec: WarmupSpec,
               out_dir: str | Path, threads: int = 1, device: str = "cpu", prompt_format: str = "completion") -> dict:
    """LoRA SFT of the factory on (prompt -> example body) pairs with TRL's SFTTrainer; the loss is on
    the body only (prompt-completion data: `completion_only_loss`), at a constant learning rate."""
    import tempfile

    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from selfdev.loop.factory import load_factory, model_prompt

    torch.set_num_threads(threads)
    model, tok = load_factory(factory_dir, "float32")
    text = model_prompt(tok, warmup_prompt(prompt, spec.prompt), prompt_format)
    # TRL appends EOS to each completion: the factory learns to stop after the body.
    data = Dataset.from_list([{"prompt": text, "completion": "\n" + body + "\n"} for body in bodies])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(
            output_dir=tmp, learning_rate=spec.lr, num_train_epochs=spec.epochs,
            per_device_train_batch_size=spec.batch_size, gradient_accumulation_steps=1, lr_scheduler_type="constant",
            logging_steps=1, save_strategy="no", report_to=[], **trainer_flags(device),
            gradient_checkpointing=False, completion_only_loss=True, seed=spec.seed, dataloader_num_workers=0,
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                             peft_config=_lora_config(spec.lora))
        trainer.train()
        losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    log = {"kind": "warmup_sft", "device": device, "parent": str(factory_dir), "examples": len(bodies), "steps": len(losses),
           "loss_first": losses[0], "loss_last": losses[-1], "losses": losses,
           "seconds": time.perf_counter() - t0, "lora": spec.lora.__dict__, "lr": spec.lr, "epochs": spec.epochs,
           "prompt": spec.prompt}
    save_merged(trainer.model, tok, out_dir, log)
    return log


@dataclass(frozen=True)
class DpoSpec:
    """One DPO round's settings (config `dpo.*`; defaults live in the schema only)."""

    lr: float
    beta: float
    epochs: int
    batch_size: int
    max_length: int
    seed: int
    lora: LoraSpec

    @classmethod
    def from_config(cls, dpo: dict, seed: int) -> "DpoSpec":
        return cls(dpo["lr"], dpo["beta"], dpo["epochs"], dpo["batch_size"], dpo["max_length"], seed,
                   LoraSpec(dpo["lora_r"], dpo["lora_alpha"]))


def pair_tokens(tok, prompt: str, completion: str) -> int:
    """Tokens of one side of a preference pair as TRL's DPOTrainer builds it: prompt and completion as one
    text, the end-of-sequence token appended, no special tokens added."""
    eos = tok.eos_token or ""
    text = prompt + completion
    return len(tok(text if text.endswith(eos) else text + eos, add_special_tokens=False)["input_ids"])


def check_dpo_length(longest: int, max_length: int) -> None:
    """TRL cuts a longer pair from the end, i.e. the completion DPO learns from goes first (a chat prompt of
    509 tokens left 3 tokens of each program under max_length 512): refuse rather than train on that."""
    if longest > max_length:
        raise ValueError(f"dpo.max_length is {max_length} tokens, but a preference pair's prompt and completion "
                         f"take {longest}: TRL would cut the completion, the part DPO learns from. Set "
                         f"dpo.max_length to at least {longest}.")


def train_dpo(factory_dir: str | Path, pairs: Sequence[dict], spec: DpoSpec, out_dir: str | Path,
              threads: int = 1, pairs_path: str | None = None, device: str = "cpu",
              prompt_format: str = "completion") -> dict:
    """One DPO round (TRL DPOTrainer + PEFT LoRA; the reference is the parent with the adapter off)."""
    import shutil
    import tempfile

    import torch

    from selfdev.loop.factory import load_factory

    torch.set_num_threads(threads)
    out = Path(out_dir)
    base = {"kind": "dpo", "device": device, "parent": str(factory_dir), "pairs": len(pairs), "pairs_file": pairs_path}
    if not pairs:
        # Nothing to learn from: the next iteration samples from the same factory.
        from selfdev.io import atomic_dir, write_json

        log = {**base, "skipped": "no preference pairs", "loss_first": None, "loss_last": None, "seconds": 0.0}
        with atomic_dir(out) as tmp:
            for f in Path(factory_dir).iterdir():
                if f.is_file() and f.name != "train_log.json":
                    shutil.copy2(f, tmp / f.name)
            write_json(log, tmp / "train_log.json")
        return log
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from selfdev.lm import load_tokenizer
    from selfdev.loop.factory import model_prompt

    # Checked with the tokenizer alone, before the factory's weights load (6 GB for the 1.5B).
    tok = load_tokenizer(factory_dir)
    rows = [{"prompt": model_prompt(tok, p["prompt"], prompt_format), "chosen": p["chosen"], "rejected": p["rejected"]}
            for p in pairs]
    check_dpo_length(max(pair_tokens(tok, r["prompt"], r[side]) for r in rows for side in ("chosen", "rejected")),
                     spec.max_length)
    model, tok = load_factory(factory_dir, "float32")
    tok.padding_side = "left"
    data = Dataset.from_list(rows)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        args = DPOConfig(
            output_dir=tmp, learning_rate=spec.lr, beta=spec.beta, num_train_epochs=spec.epochs,
            per_device_train_batch_size=spec.batch_size, gradient_accumulation_steps=1, logging_steps=1,
            save_strategy="no", report_to=[], **trainer_flags(device), gradient_checkpointing=False,
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
