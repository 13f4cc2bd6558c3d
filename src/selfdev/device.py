"""Where torch work runs: the config's `device` (auto | cpu | cuda), resolved once per job.

`auto` is CUDA when torch sees a GPU and the CPU otherwise, so one config runs on a laptop and on a
GPU node; asking for `cuda` where there is none is an error rather than a silent CPU run.
"""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """`cpu` or `cuda` for a config value of `device`."""
    import torch

    if device not in DEVICES:
        raise ValueError(f"device: expected one of {list(DEVICES)}, got {device!r}")
    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise RuntimeError("device: 'cuda' was requested but torch sees no CUDA GPU "
                           "(torch.cuda.is_available() is False); use 'auto' or 'cpu'")
    if device == "auto":
        return "cuda" if available else "cpu"
    return device


def trainer_flags(device: str) -> dict:
    """TRL/transformers TrainingArguments for a resolved device: bf16 mixed precision on a GPU; on the
    CPU `use_cpu` and no bf16 (CPU bf16 autocast is slow and failed in TRL 1.16 here)."""
    if device == "cuda":
        return {"use_cpu": False, "bf16": True}
    return {"use_cpu": True, "bf16": False}
