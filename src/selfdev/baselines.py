"""Human-designed merging baselines as pure tensor math (mergekit conventions).

Each takes the task vectors of one parameter and returns the merged task vector; they are
trusted project code and run in-process (the world report, grid tuning). The same algorithms
shipped as candidate files under `selfdev/algorithms/` run through the sandbox like any program.
"""

from __future__ import annotations

from typing import Sequence


def task_arithmetic(tvs: Sequence, lam: float = 1.0):
    import torch

    return lam * torch.stack(list(tvs)).sum(0)


def mean(tvs: Sequence):
    import torch

    return torch.stack(list(tvs)).mean(0)


def ties(tvs: Sequence, density: float = 0.2, lam: float = 1.0):
    """TIES-merging (Yadav et al. 2023): trim to top-`density` magnitudes, elect signs by mass,
    average the values that agree with the elected sign."""
    import torch

    stacked = torch.stack(list(tvs)).float()
    flat = stacked.reshape(len(stacked), -1)
    k = max(1, int(round(density * flat.shape[1])))
    thresh = flat.abs().kthvalue(flat.shape[1] - k + 1, dim=1, keepdim=True).values
    trimmed = torch.where(flat.abs() >= thresh, flat, torch.zeros_like(flat))
    sign = torch.sign(trimmed.sum(0))
    agree = (torch.sign(trimmed) == sign) & (trimmed != 0)
    kept = torch.where(agree, trimmed, torch.zeros_like(trimmed))
    count = agree.sum(0).clamp(min=1)
    return (lam * kept.sum(0) / count).reshape(stacked.shape[1:]).to(stacked.dtype)
