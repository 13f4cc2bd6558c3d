import torch


def merge(task_vectors: list[torch.Tensor]) -> torch.Tensor:
    """Plain average of the task vectors (a uniform model soup)."""
    return torch.stack(task_vectors).mean(dim=0)
