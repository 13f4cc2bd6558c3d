import torch


def merge(task_vectors: list[torch.Tensor]) -> torch.Tensor:
    """TSV-Merge (Gargiulo et al., CVPR 2025, arXiv 2412.00081). Per matrix: keep each task's top
    singular directions (a 1/T share of the rank for T tasks), stack the kept left and right singular
    vectors of all tasks, decorrelate them (each stack replaced by its closest orthonormal matrix,
    P Q^T from its SVD), and recombine with the kept singular values. Parameters that are not matrices
    are averaged, the paper's rule. Scaled by alpha (tuned on dev as a baseline; 1.0 here)."""
    alpha = 1.0
    tvs = [t.float() for t in task_vectors]
    if tvs[0].dim() != 2:
        return alpha * torch.stack(tvs).mean(dim=0)
    k = max(1, min(tvs[0].shape) // len(tvs))
    us, ss, vhs = [], [], []
    for t in tvs:
        u, s, vh = torch.linalg.svd(t, full_matrices=False)
        us.append(u[:, :k])
        ss.append(s[:k])
        vhs.append(vh[:k, :])
    u_all = torch.cat(us, dim=1)
    s_all = torch.cat(ss)
    v_all = torch.cat(vhs, dim=0)
    pu, _, qu = torch.linalg.svd(u_all, full_matrices=False)
    pv, _, qv = torch.linalg.svd(v_all, full_matrices=False)
    return alpha * (pu @ qu) @ torch.diag(s_all) @ (pv @ qv)
