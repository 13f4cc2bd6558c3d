import torch


def merge(task_vectors: list[torch.Tensor]) -> torch.Tensor:
    """Task Arithmetic (Ilharco et al. 2023): scaled sum of the task vectors."""
    lam = 0.5
    return lam * torch.stack(task_vectors).sum(dim=0)
