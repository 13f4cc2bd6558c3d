"""A small library of human-written merging algorithms, as bodies of `merge` under the factory
prompt. The optional warm-up fine-tunes the factory on them so that a small model writes valid
programs often enough to form preference pairs (SmolLM2-135M alone: 2-4% valid)."""

from __future__ import annotations

# Each body continues `def merge(task_vectors, context): """docstring"""` and is indented by 4 spaces;
# the last two use the context (selfdev.params): the layer's depth (as LiNeS does) and the weight's kind.
EXAMPLE_BODIES: tuple[str, ...] = (
    """    stacked = torch.stack(task_vectors)
    return 0.3 * stacked.sum(dim=0)""",
    """    stacked = torch.stack(task_vectors)
    return 0.7 * stacked.sum(dim=0)""",
    """    return torch.stack(task_vectors).mean(dim=0)""",
    """    return torch.stack(task_vectors).median(dim=0).values""",
    """    stacked = torch.stack(task_vectors)
    return stacked.sum(dim=0) / math.sqrt(len(task_vectors))""",
    """    stacked = torch.stack(task_vectors)
    sign = torch.sign(stacked.sum(dim=0))
    agree = torch.sign(stacked) == sign
    kept = torch.where(agree, stacked, torch.zeros_like(stacked))
    return kept.sum(dim=0) / agree.sum(dim=0).clamp(min=1)""",
    """    stacked = torch.stack(task_vectors)
    flat = stacked.reshape(len(task_vectors), -1)
    k = max(1, int(0.2 * flat.shape[1]))
    threshold = flat.abs().kthvalue(flat.shape[1] - k + 1, dim=1, keepdim=True).values
    trimmed = torch.where(flat.abs() >= threshold, flat, torch.zeros_like(flat))
    sign = torch.sign(trimmed.sum(dim=0))
    agree = (torch.sign(trimmed) == sign) & (trimmed != 0)
    merged = torch.where(agree, trimmed, torch.zeros_like(trimmed)).sum(dim=0) / agree.sum(dim=0).clamp(min=1)
    return merged.reshape(stacked.shape[1:])""",
    """    stacked = torch.stack(task_vectors)
    generator = torch.Generator().manual_seed(0)
    keep = (torch.rand(stacked.shape, generator=generator) > 0.5).to(stacked.dtype)
    return 0.5 * (stacked * keep / 0.5).sum(dim=0)""",
    """    stacked = torch.stack(task_vectors)
    index = stacked.abs().argmax(dim=0, keepdim=True)
    return stacked.gather(0, index).squeeze(0)""",
    """    stacked = torch.stack(task_vectors)
    if len(task_vectors) > 2:
        ordered = stacked.sort(dim=0).values
        return ordered[1:-1].mean(dim=0)
    return stacked.mean(dim=0)""",
    """    norms = torch.stack([t.norm() for t in task_vectors])
    weights = norms / norms.sum().clamp(min=1e-12)
    return sum(w * t for w, t in zip(weights, task_vectors))""",
    """    norms = torch.stack([t.norm() for t in task_vectors]).clamp(min=1e-12)
    weights = (1.0 / norms) / (1.0 / norms).sum()
    return len(task_vectors) * 0.5 * sum(w * t for w, t in zip(weights, task_vectors))""",
    """    merged = torch.zeros_like(task_vectors[0])
    for t in task_vectors:
        flat = t.abs().flatten()
        k = max(1, int(0.3 * flat.numel()))
        threshold = flat.kthvalue(flat.numel() - k + 1).values
        merged = merged + torch.where(t.abs() >= threshold, t, torch.zeros_like(t))
    return 0.5 * merged""",
    """    stacked = torch.stack(task_vectors)
    mean = stacked.mean(dim=0)
    return torch.sign(mean) * stacked.abs().mean(dim=0)""",
    """    stacked = torch.stack(task_vectors)
    total = stacked.sum(dim=0)
    scale = 3.0 * stacked.abs().mean().clamp(min=1e-12)
    return 0.5 * scale * torch.tanh(total / scale)""",
    """    stacked = torch.stack(task_vectors)
    positive = (stacked > 0).sum(dim=0)
    negative = (stacked < 0).sum(dim=0)
    consensus = (positive >= 2) | (negative >= 2)
    return torch.where(consensus, stacked.mean(dim=0), torch.zeros_like(task_vectors[0])) * 1.5""",
    """    stacked = torch.stack(task_vectors)
    magnitude = stacked.abs().max(dim=0).values
    return torch.sign(stacked.sum(dim=0)) * magnitude""",
    """    merged = task_vectors[0].clone()
    for t in task_vectors[1:]:
        merged = 0.5 * merged + 0.5 * t
    return merged * 0.5 * len(task_vectors)""",
    """    p = 2.0
    stacked = torch.stack(task_vectors)
    power = stacked.abs().pow(p).mean(dim=0).pow(1.0 / p)
    return torch.sign(stacked.mean(dim=0)) * power""",
    """    stacked = torch.stack(task_vectors)
    mean = stacked.mean(dim=0)
    std = stacked.std(dim=0, unbiased=False)
    return mean * len(task_vectors) * 0.5 / (1.0 + std / (mean.abs() + 1e-8))""",
    """    norms = [t.norm() for t in task_vectors]
    order = sorted(range(len(task_vectors)), key=lambda i: -float(norms[i]))
    return 0.5 * (task_vectors[order[0]] + task_vectors[order[1]])""",
    """    stacked = torch.stack(task_vectors)
    flat = stacked.reshape(len(task_vectors), -1).abs()
    n = flat.shape[1]
    low = flat.kthvalue(max(1, int(0.5 * n)), dim=1, keepdim=True).values
    high = flat.kthvalue(max(1, int(0.99 * n)), dim=1, keepdim=True).values
    mask = ((flat >= low) & (flat <= high)).reshape(stacked.shape)
    return 0.6 * (stacked * mask).sum(dim=0)""",
    """    stacked = torch.stack(task_vectors)
    weights = torch.softmax(torch.stack([t.abs().mean() for t in task_vectors]) * 100.0, dim=0)
    return 2.0 * torch.einsum("k,k...->...", weights, stacked)""",
    """    lam = 0.4
    total = torch.zeros_like(task_vectors[0])
    for t in task_vectors:
        total += lam * t
    return total""",
    """    depth = context["layer"] / max(1, context["n_layers"] - 1)
    return (0.3 + 0.5 * depth) * torch.stack(task_vectors).sum(dim=0)""",
    """    stacked = torch.stack(task_vectors)
    scale = 0.6 if context["kind"] == "down_proj" else 0.4
    return scale * stacked.sum(dim=0)""",
    # The prompt's building blocks (ties_merge, tsv_merge) in use: chosen per kind, scaled by depth, mixed
    # with a sum. Round constants, not tuned on any world: the prompt imports the blocks (selfdev_blocks),
    # and a spectral merge written from scratch is longer than the factory can write (TSV-Merge: 213
    # tokens). No body averages the two blocks: that program, scaled by `loop.tune`, beat every baseline
    # when it was here (+4.2 points on test over budget-matched TSV-Merge, 3 of 3 seeds), so a win by it
    # would be ours, not the factory's; a factory that writes it now wrote it unshown.
    """    if context["kind"] == "down_proj":
        return ties_merge(task_vectors)
    return tsv_merge(task_vectors)""",
    """    depth = context["layer"] / max(1, context["n_layers"] - 1)
    return (0.5 + 0.5 * depth) * tsv_merge(task_vectors)""",
    """    merged = ties_merge(task_vectors, density=0.5)
    return 0.8 * merged""",
    """    stacked = torch.stack(task_vectors)
    return 0.5 * stacked.sum(dim=0) + 0.5 * tsv_merge(task_vectors)""",
)
