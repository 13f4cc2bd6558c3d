import torch


def merge(task_vectors: list[torch.Tensor]) -> torch.Tensor:
    """TIES-merging (Yadav et al. 2023): trim, elect sign, disjoint mean."""
    density = 0.5
    lam = 1.0
    stacked = torch.stack(task_vectors)
    flat = stacked.reshape(len(task_vectors), -1)
    k = max(1, int(density * flat.shape[1]))
    threshold = flat.abs().kthvalue(flat.shape[1] - k + 1, dim=1, keepdim=True).values
    trimmed = torch.where(flat.abs() >= threshold, flat, torch.zeros_like(flat))
    sign = torch.sign(trimmed.sum(dim=0))
    agree = (torch.sign(trimmed) == sign) & (trimmed != 0)
    kept = torch.where(agree, trimmed, torch.zeros_like(trimmed))
    merged = kept.sum(dim=0) / agree.sum(dim=0).clamp(min=1)
    return (lam * merged).reshape(stacked.shape[1:])
