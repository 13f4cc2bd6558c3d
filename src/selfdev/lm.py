"""Causal-LM plumbing shared by the toy world and scoring: building, training, greedy generation."""

from __future__ import annotations

import math
import re
import random
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from selfdev.scoring.prompts import PromptTemplate


@dataclass(frozen=True)
class TinyLlamaSpec:
    """Size of the toy world's LlamaForCausalLM."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    max_position_embeddings: int = 160  # not a config key: the toy prompts are short


@dataclass(frozen=True)
class TrainSpec:
    """One supervised fine-tuning run (seed or expert)."""

    steps: int
    lr: float
    batch_size: int
    seed: int
    optimizer: str  # adamw | sgd (momentum 0.9)
    trainable: tuple[str, ...]  # regexes of parameter names to train; empty = all
    warmup_steps: int = 20  # not config keys: fixed parts of the recipe
    weight_decay: float = 0.0


def load_tokenizer(path):
    """A checkpoint folder's tokenizer, padding on the left, with a pad token."""
    from pathlib import Path

    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise FileNotFoundError(f"model checkpoint folder not found: {path}")
    tok = AutoTokenizer.from_pretrained(str(path))
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path, dtype: str = "float32", device: str = "cpu"):
    """A checkpoint folder as (model in eval mode on `device`, tokenizer padding on the left, with a pad token)."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype))
    model.to(device)
    model.eval()
    return model, tok


def build_tiny_llama(spec: TinyLlamaSpec, tokenizer, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def _encode_examples(tokenizer, template: PromptTemplate, rows: Sequence[dict]) -> list[tuple[list[int], int]]:
    """Token ids of prompt+target+EOS and the prompt length (loss is taken on the target only)."""
    out = []
    for row in rows:
        prompt = tokenizer(template.render(row["question"], (), tokenizer), add_special_tokens=False)["input_ids"]
        target = tokenizer(template.training_target(row["answer"], tokenizer), add_special_tokens=False)["input_ids"]
        out.append((prompt + target + [tokenizer.eos_token_id], len(prompt)))
    return out


def pad_batch(batch: Sequence[tuple[list[int], int]], pad_id: int):
    """Right-padded input ids, labels (-100 on the prompt and padding) and attention mask for
    (token ids, prompt length) examples: the loss falls on the target tokens only."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (ids, plen) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, plen : len(ids)] = torch.tensor(ids[plen:])
        attn[i, : len(ids)] = 1
    return input_ids, labels, attn


def set_threads(threads: int) -> None:
    """Torch intra-op threads, matched to the rule's `threads:` so jobs sharing cores do not thrash."""
    import torch

    torch.set_num_threads(threads)


def train_causal_lm(
    model,
    tokenizer,
    template: PromptTemplate,
    rows: Sequence[dict],
    spec: TrainSpec,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Plain AdamW fine-tuning with a linear-warmup cosine schedule; returns the loss per step."""
    import torch

    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)
    encoded = _encode_examples(tokenizer, template, rows)
    params = [p for n, p in model.named_parameters()
              if not spec.trainable or any(re.search(pat, n) for pat in spec.trainable)]
    if not params:
        raise ValueError(f"no parameter matches the trainable patterns {list(spec.trainable)}")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    if spec.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    elif spec.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=spec.lr, momentum=0.9, weight_decay=spec.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {spec.optimizer!r}; expected 'adamw' or 'sgd'")

    def lr_at(step: int) -> float:
        if step < spec.warmup_steps:
            return (step + 1) / spec.warmup_steps
        progress = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    losses = []
    for step in range(spec.steps):
        batch = [encoded[rng.randrange(len(encoded))] for _ in range(spec.batch_size)]
        input_ids, labels, attn = (t.to(model.device) for t in pad_batch(batch, tokenizer.pad_token_id))
        loss = model(input_ids=input_ids, attention_mask=attn, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return losses


@dataclass(frozen=True)
class GenerationSpec:
    """Greedy decoding for scoring (config `eval.max_new_tokens`, `eval.batch_size`)."""

    max_new_tokens: int
    batch_size: int


def greedy_generate(model, tokenizer, prompts: Sequence[str], spec: GenerationSpec) -> tuple[list[str], float]:
    """Greedy completions for `prompts` (batched, left padding, KV cache); returns texts and seconds."""
    import torch

    tokenizer.padding_side = "left"
    t0 = time.perf_counter()
    outs: list[str] = []
    # Sorting by length keeps padding (and wasted compute) small inside a batch.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    texts: dict[int, str] = {}
    with torch.inference_mode():
        for start in range(0, len(order), spec.batch_size):
            idx = order[start : start + spec.batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
            gen = model.generate(
                **enc,
                do_sample=False,
                max_new_tokens=spec.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new = gen[:, enc["input_ids"].shape[1] :]
            for i, row in zip(idx, new):
                texts[i] = tokenizer.decode(row, skip_special_tokens=True)
    outs = [texts[i] for i in range(len(prompts))]
    return outs, time.perf_counter() - t0
