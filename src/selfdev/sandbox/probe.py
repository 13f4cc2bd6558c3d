"""The probe check: is a candidate program *executable*?

A single call on one shape is easy to pass by accident (garbage from `torch.empty_like` that happens
to be finite, broadcasting bugs that keep the shape), so the probe calls the program on 2, 3 and
5 inputs of several shapes, twice on the same inputs (determinism), and records which inputs it
ignores. All checks run in the parent on the results that came back from the sandbox.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from selfdev.sandbox.program import CandidateRejected, static_check
from selfdev.sandbox.run import SandboxLimits, largest_norm, require_finite, require_plausible_norm, run_jobs

PROBE_SHAPES = ((64,), (16, 24), (24, 16), (4, 6, 5))
PROBE_COUNTS = (2, 3, 5)


@dataclass
class Verdict:
    executable: bool
    category: str
    reason: str
    seconds: float
    code_hash: str | None = None
    info: dict = field(default_factory=dict)
    isolation: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def probe_inputs(n: int, shape: tuple[int, ...], seed: int):
    """Task-vector-like probe tensors: small, zero-mean, each input distinct and deterministic."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen) * 0.01 for _ in range(n)]


def _cases() -> list[tuple[str, int, tuple[int, ...], int]]:
    cases = []
    for i, n in enumerate(PROBE_COUNTS):
        for j, shape in enumerate(PROBE_SHAPES):
            cases.append((f"n{n}-s{j}", n, shape, 1000 * i + j))
    return cases


def check_program(source: str, limits: SandboxLimits) -> Verdict:
    import torch

    t0 = time.monotonic()
    try:
        report = static_check(source, limits.allowed_imports)
    except CandidateRejected as exc:
        return Verdict(False, exc.category, exc.reason, time.monotonic() - t0)
    jobs, shapes = [], {}
    for key, n, shape, seed in _cases():
        jobs.append((key, lambda n=n, shape=shape, seed=seed: probe_inputs(n, shape, seed)))
        # Same inputs again: a deterministic program must return the same result.
        jobs.append((key + "-again", lambda n=n, shape=shape, seed=seed: probe_inputs(n, shape, seed)))
        shapes[key] = shapes[key + "-again"] = shape
    # Sensitivity: perturb one input at a time on the 3-input 2-D case.
    base_key, n, shape, seed = next(c for c in _cases() if c[1] == 3 and len(c[2]) == 2)
    for k in range(n):
        def perturbed(k=k, n=n, shape=shape, seed=seed):
            inputs = probe_inputs(n, shape, seed)
            inputs[k] = inputs[k] + 0.01 * torch.randn(shape, generator=torch.Generator().manual_seed(seed + 7 + k))
            return inputs
        jobs.append((f"{base_key}-perturb{k}", perturbed))
        shapes[f"{base_key}-perturb{k}"] = shape
    outcome = run_jobs(source, jobs, shapes, limits)
    if not outcome.ok:
        return Verdict(False, outcome.category, outcome.reason, time.monotonic() - t0, report.code_hash,
                       isolation=outcome.isolation)
    res = outcome.results
    try:
        for key, n, shape, seed in _cases():
            where = f"on {n} inputs of shape {list(shape)}"
            require_finite(res[key], where)
            if not torch.equal(res[key], res[key + "-again"]):
                raise CandidateRejected("nondeterministic", f"two calls {where} differ")
            require_plausible_norm(res[key], largest_norm(probe_inputs(n, shape, seed)), limits.max_norm_ratio,
                                   where)
    except CandidateRejected as exc:
        return Verdict(False, exc.category, exc.reason, time.monotonic() - t0, report.code_hash,
                       isolation=outcome.isolation)
    ignored = [k for k in range(3) if torch.equal(res[f"{base_key}-perturb{k}"], res[base_key])]
    info = {"ignored_inputs": ignored, "constant_output": len(ignored) == 3}
    return Verdict(True, "ok", "", time.monotonic() - t0, report.code_hash, info, outcome.isolation)
