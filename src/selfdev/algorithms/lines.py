import torch


def merge(task_vectors: list[torch.Tensor], context: dict) -> torch.Tensor:
    """LiNeS on Task Arithmetic (Wang et al., ICLR 2025): the summed task vectors scaled by depth,
    alpha + beta * layer / (n_layers - 1), so the first layers stay closest to the base model."""
    alpha, beta = 0.3, 0.5
    layer, n_layers = context["layer"], context["n_layers"]
    scale = alpha if layer is None or n_layers <= 1 else alpha + beta * layer / (n_layers - 1)
    return scale * torch.stack(task_vectors).sum(dim=0)
