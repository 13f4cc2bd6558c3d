"""Task vectors tau_j = C_j - M0 on disk (safetensors), memory-mapped, merged per parameter.

Only the parameters selected by the config's `merge.include` patterns are stored, so a 7B run
keeps MLP weights alone (the paper's choice) and the toy world keeps what merges best there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from selfdev.sandbox.run import RunOutcome, SandboxLimits, require_finite, require_plausible_norm, run_jobs

TV_FORMAT = "selfdev.task_vector.v1"


def selected(name: str, include: Sequence[str]) -> bool:
    return any(re.search(p, name) for p in include)


def _weights_file(model_dir: Path) -> Path:
    path = Path(model_dir) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir}: expected a single-file checkpoint model.safetensors")
    return path


def write_task_vector(seed_dir: str | Path, expert_dir: str | Path, out: str | Path, include: Sequence[str]) -> dict:
    """tau = expert - seed for every selected floating parameter; fp32 so small updates survive."""
    import torch
    from safetensors import safe_open

    from selfdev.io import write_safetensors

    seed_f, exp_f = _weights_file(Path(seed_dir)), _weights_file(Path(expert_dir))
    tv: dict[str, torch.Tensor] = {}
    with safe_open(seed_f, "pt") as s, safe_open(exp_f, "pt") as e:
        missing = set(s.keys()) ^ set(e.keys())
        if missing:
            raise ValueError(f"{expert_dir} and {seed_dir} differ in parameters: {sorted(missing)[:5]}")
        for name in s.keys():
            if not selected(name, include):
                continue
            a, b = s.get_tensor(name), e.get_tensor(name)
            if a.shape != b.shape:
                raise ValueError(f"{name}: expert shape {tuple(b.shape)} != seed shape {tuple(a.shape)}")
            if a.is_floating_point():
                tv[name] = (b.float() - a.float()).contiguous()
    if not tv:
        raise ValueError(f"merge.include {list(include)} selects no floating parameter of {seed_dir}")
    write_safetensors(tv, out, metadata={"format": TV_FORMAT, "seed": str(seed_dir), "expert": str(expert_dir)})
    return {"parameters": len(tv), "elements": sum(t.numel() for t in tv.values()),
            "norm": float(torch.sqrt(sum((t.double() ** 2).sum() for t in tv.values())))}


class TaskVectorSet:
    """Open handles on several task-vector files; tensors are read lazily from the mmap."""

    def __init__(self, paths: Sequence[str | Path]):
        from safetensors import safe_open

        if not paths:
            raise ValueError("no task-vector files given")
        self.paths = [Path(p) for p in paths]
        self._handles = []
        for p in self.paths:
            if not p.is_file():
                raise FileNotFoundError(f"task-vector file not found: {p}")
            h = safe_open(str(p), "pt")
            fmt = (h.metadata() or {}).get("format")
            if fmt != TV_FORMAT:
                raise ValueError(f"{p}: not a selfdev task-vector file (metadata format={fmt!r}, expected {TV_FORMAT!r})")
            self._handles.append(h)
        self.names = sorted(self._handles[0].keys())
        for p, h in zip(self.paths[1:], self._handles[1:]):
            if sorted(h.keys()) != self.names:
                raise ValueError(f"{p}: parameters differ from {self.paths[0]}")

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handles[0].get_slice(name).get_shape())

    def get(self, name: str) -> list:
        return [h.get_tensor(name) for h in self._handles]


@dataclass
class MergeOutcome:
    ok: bool
    category: str
    reason: str
    seconds: float
    merged: dict
    isolation: dict = field(default_factory=dict)


def merge_in_sandbox(source: str, tvs: TaskVectorSet, limits: SandboxLimits) -> MergeOutcome:
    """Run a program's `merge` on every parameter in one sandboxed child; values are checked here."""
    import torch

    merged: dict[str, torch.Tensor] = {}

    def accept(name: str, value) -> None:
        require_finite(value, f"in the merge of {name}")
        require_plausible_norm(value, tvs.get(name), limits.max_norm_ratio, f"in the merge of {name}")
        merged[name] = value

    jobs = [(name, lambda name=name: tvs.get(name)) for name in tvs.names]
    out: RunOutcome = run_jobs(source, jobs, {n: tvs.shape(n) for n in tvs.names}, limits, accept=accept)
    return MergeOutcome(out.ok, out.category, out.reason, out.seconds, merged if out.ok else {}, out.isolation)
