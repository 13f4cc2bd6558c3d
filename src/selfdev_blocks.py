"""Building blocks a merging program may call: `from selfdev_blocks import ties_merge, tsv_merge`.

The study's TIES and TSV-Merge (src/selfdev/algorithms/ties.py and tsv_merge.py at lambda 1), importable
by an untrusted program: a top-level module of plain torch code, in the sandbox's allowed imports, with
nothing of selfdev behind it. The sandbox's parent imports it before it forks a child, so the child finds
it in sys.modules and reads no file. Why blocks at all: a spectral merge written out is longer than the
default 135M factory can write (TSV-Merge is 213 SmolLM2 tokens against `loop.max_new_tokens` 96), and
written into the prompt they tripled its length (220 to 736 tokens) and the sampling time with it."""

from __future__ import annotations

import torch


def ties_merge(task_vectors: list[torch.Tensor], density: float = 0.2) -> torch.Tensor:
    """TIES (Yadav et al. 2023) at lambda 1: keep each task vector's largest `density` share of entries,
    elect a sign per entry, average the entries that agree with it."""
    stacked = torch.stack(task_vectors)
    flat = stacked.reshape(len(task_vectors), -1)
    k = max(1, int(density * flat.shape[1]))
    threshold = flat.abs().kthvalue(flat.shape[1] - k + 1, dim=1, keepdim=True).values
    trimmed = torch.where(flat.abs() >= threshold, flat, torch.zeros_like(flat))
    agree = (torch.sign(trimmed) == torch.sign(trimmed.sum(dim=0))) & (trimmed != 0)
    merged = torch.where(agree, trimmed, torch.zeros_like(trimmed)).sum(dim=0) / agree.sum(dim=0).clamp(min=1)
    return merged.reshape(stacked.shape[1:])


def tsv_merge(task_vectors: list[torch.Tensor]) -> torch.Tensor:
    """TSV-Merge (Gargiulo et al., CVPR 2025) at alpha 1: per matrix, each task's top singular directions
    (a 1/T share of the rank), decorrelated across tasks, recombined; other shapes averaged."""
    tvs = [t.float() for t in task_vectors]
    if tvs[0].dim() != 2:
        return torch.stack(tvs).mean(dim=0)
    k = max(1, min(tvs[0].shape) // len(tvs))
    parts = [torch.linalg.svd(t, full_matrices=False) for t in tvs]
    u = torch.cat([p[0][:, :k] for p in parts], dim=1)
    s = torch.cat([p[1][:k] for p in parts])
    v = torch.cat([p[2][:k, :] for p in parts], dim=0)
    pu, _, qu = torch.linalg.svd(u, full_matrices=False)
    pv, _, qv = torch.linalg.svd(v, full_matrices=False)
    return (pu @ qu) @ torch.diag(s) @ (pv @ qv)
