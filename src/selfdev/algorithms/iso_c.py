import torch


def merge(task_vectors: list[torch.Tensor]) -> torch.Tensor:
    """Iso-C (Marczak et al., ICML 2025, arXiv 2502.04959): sum the task matrices, then flatten the
    sum's singular spectrum (every singular value replaced by their mean), keeping its singular vectors.
    Parameters that are not matrices are averaged, the paper's rule. Scaled by alpha (tuned on dev as a
    baseline; 1.0 here)."""
    alpha = 1.0
    stacked = torch.stack([t.float() for t in task_vectors])
    if stacked.dim() != 3:
        return alpha * stacked.mean(dim=0)
    total = stacked.sum(dim=0)
    u, s, vh = torch.linalg.svd(total, full_matrices=False)
    return alpha * (u * s.mean()) @ vh
