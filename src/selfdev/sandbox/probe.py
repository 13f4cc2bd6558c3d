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
# Behaviour signature: each probe output projected on a few fixed random directions. Two programs
# behave alike when their signatures agree to SIGNATURE_RTOL (a tolerance, not rounding to a grid:
# `0.5 * sum * 0.5` and `mean` differ in the last bits, and any grid has boundaries to straddle).
SIGNATURE_DIMS = 8
SIGNATURE_RTOL = 1e-4


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


def _counts(n_experts: int | None) -> tuple[int, ...]:
    return tuple(sorted(set(PROBE_COUNTS) | ({n_experts} if n_experts else set())))


def _cases(n_experts: int | None = None) -> list[tuple[str, int, tuple[int, ...], int]]:
    """(key, inputs, shape, seed) of every probe call; the seed depends on the count and shape only,
    so adding the world's expert count leaves the other cases' inputs as they were."""
    cases = []
    for n in _counts(n_experts):
        for j, shape in enumerate(PROBE_SHAPES):
            cases.append((f"n{n}-s{j}", n, shape, 1000 * (PROBE_COUNTS.index(n) if n in PROBE_COUNTS else n) + j))
    return cases


def _directions(numel: int, shape_index: int):
    import torch

    gen = torch.Generator().manual_seed(7919 + shape_index)
    return torch.randn(numel, SIGNATURE_DIMS, generator=gen, dtype=torch.float64)


def signature(results: dict, n_experts: int | None = None) -> dict[str, list[float]]:
    """What a program computes, per expert count: its probe outputs (keys as in `_cases`) projected on
    fixed directions, SIGNATURE_DIMS numbers per shape. Pure function of the outputs."""
    out: dict[str, list[float]] = {}
    for n in _counts(n_experts):
        vals: list[float] = []
        for j, _shape in enumerate(PROBE_SHAPES):
            flat = results[f"n{n}-s{j}"].detach().reshape(-1).double()
            vals.extend(float(v) for v in flat @ _directions(flat.numel(), j))
        out[str(n)] = vals
    return out


def same_values(a, b, rtol: float = SIGNATURE_RTOL) -> bool:
    """Two signature vectors agree elementwise to `rtol` (relative to the larger magnitude, with a floor
    at `rtol` of the vector's largest entry so that near-zero projections compare by the whole scale)."""
    if len(a) != len(b):
        return False
    floor = rtol * max([abs(x) for x in a] + [abs(x) for x in b] + [1e-30])
    return all(abs(x - y) <= rtol * max(abs(x), abs(y)) + floor for x, y in zip(a, b))


def same_behaviour(sig_a: dict, sig_b: dict, n_experts: int) -> bool:
    """Same outputs on the world's expert count: the merged model, hence its score, is the same."""
    key = str(n_experts)
    return key in sig_a and key in sig_b and same_values(sig_a[key], sig_b[key])


def same_algorithm(sig_a: dict, sig_b: dict) -> bool:
    """Same outputs for every expert count probed: one algorithm, whatever the number of experts."""
    keys = sorted(set(sig_a) & set(sig_b))
    return bool(keys) and all(same_values(sig_a[k], sig_b[k]) for k in keys)


def check_program(source: str, limits: SandboxLimits, n_experts: int | None = None) -> Verdict:
    """Probe `source`; an executable verdict's info holds its behaviour `signature` (with the world's
    expert count `n_experts` among the counts probed, when given)."""
    import torch

    t0 = time.monotonic()
    try:
        report = static_check(source, limits.allowed_imports)
    except CandidateRejected as exc:
        return Verdict(False, exc.category, exc.reason, time.monotonic() - t0)
    jobs, shapes = [], {}
    for key, n, shape, seed in _cases(n_experts):
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
        for key, n, shape, seed in _cases(n_experts):
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
    info = {"ignored_inputs": ignored, "constant_output": len(ignored) == 3,
            "signature": signature(res, n_experts)}
    return Verdict(True, "ok", "", time.monotonic() - t0, report.code_hash, info, outcome.isolation)
