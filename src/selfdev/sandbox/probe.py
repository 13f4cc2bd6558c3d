"""The probe check: is a candidate program *executable*?

A single call on one shape is easy to pass by accident (garbage from `torch.empty_like` that happens
to be finite, broadcasting bugs that keep the shape), so the probe calls the program on 2, 3 and
5 inputs of several shapes, twice on the same inputs (determinism), and records which inputs it
ignores. A two-argument `merge(task_vectors, context)` is also called on the same inputs in the
context of every layer and MLP kind (selfdev.params), so a rule that differs on one layer shows in
the behaviour signature. All checks run in the parent on the results that came back from the sandbox.
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
# The layer sweep: the model depth probed when the world's is not given, the parameter kinds (the
# paper merges MLP weights), and at most this many layers (evenly spread, first and last included).
PROBE_LAYERS = 4
PROBE_KINDS = ("gate_proj", "up_proj", "down_proj")
MAX_SWEEP_LAYERS = 32
SWEEP_SHAPE = 1  # index in PROBE_SHAPES of the sweep's inputs (2-D, as MLP weights)


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


def _seed(n: int, shape_index: int) -> int:
    return 1000 * (PROBE_COUNTS.index(n) if n in PROBE_COUNTS else n) + shape_index


def _cases(n_experts: int | None = None) -> list[tuple[str, int, tuple[int, ...], int]]:
    """(key, inputs, shape, seed) of every probe call; the seed depends on the count and shape only,
    so adding the world's expert count leaves the other cases' inputs as they were. Their context is
    the first layer's `gate_proj` (`_context`)."""
    cases = []
    for n in _counts(n_experts):
        for j, shape in enumerate(PROBE_SHAPES):
            cases.append((f"n{n}-s{j}", n, shape, _seed(n, j)))
    return cases


def sweep_layers(n_layers: int) -> list[int]:
    """The layers the sweep probes: all, or MAX_SWEEP_LAYERS evenly spread (first and last included)."""
    if n_layers <= MAX_SWEEP_LAYERS:
        return list(range(n_layers))
    return sorted({round(i * (n_layers - 1) / (MAX_SWEEP_LAYERS - 1)) for i in range(MAX_SWEEP_LAYERS)})


def _sweep(n_experts: int | None, n_layers: int) -> list[tuple[str, int, tuple[int, ...], int, int, str]]:
    """(key, inputs, shape, seed, layer, kind) of the layer sweep: the world's expert count (3 when not
    given), inputs of the main case of shape SWEEP_SHAPE, every probed layer and kind."""
    n = n_experts or 3
    shape = PROBE_SHAPES[SWEEP_SHAPE]
    return [(f"n{n}-L{layer}-{kind}", n, shape, _seed(n, SWEEP_SHAPE), layer, kind)
            for layer in sweep_layers(n_layers) for kind in PROBE_KINDS]


def _context(shape: tuple[int, ...], n_layers: int, layer: int = 0, kind: str = PROBE_KINDS[0]) -> dict:
    from selfdev.params import param_context

    return param_context(f"model.layers.{layer}.mlp.{kind}.weight", shape, n_layers)


def _directions(numel: int, shape_index: int):
    import torch

    gen = torch.Generator().manual_seed(7919 + shape_index)
    return torch.randn(numel, SIGNATURE_DIMS, generator=gen, dtype=torch.float64)


def _project(value, shape_index: int) -> list[float]:
    flat = value.detach().reshape(-1).double()
    return [float(v) for v in flat @ _directions(flat.numel(), shape_index)]


def signature(results: dict, n_experts: int | None = None, n_layers: int = PROBE_LAYERS) -> dict[str, list[float]]:
    """What a program computes, per expert count: its probe outputs (keys as in `_cases`) projected on
    fixed directions, SIGNATURE_DIMS numbers per shape; the sweep count's list goes on with the layer
    sweep's outputs (`_sweep`), so programs that differ on one layer differ here. Pure function of the
    outputs."""
    out: dict[str, list[float]] = {}
    for n in _counts(n_experts):
        vals: list[float] = []
        for j, _shape in enumerate(PROBE_SHAPES):
            vals.extend(_project(results[f"n{n}-s{j}"], j))
        out[str(n)] = vals
    for key, n, _shape, _seed_, _layer, _kind in _sweep(n_experts, n_layers):
        out[str(n)].extend(_project(results[key], SWEEP_SHAPE))
    return out


def layer_aware(sig: dict) -> bool:
    """Whether the layer sweep in a signature shows outputs that depend on the context (layer or kind)."""
    for vals in sig.values():
        sweep = vals[len(PROBE_SHAPES) * SIGNATURE_DIMS:]  # only the sweep count's list goes on
        blocks = [sweep[i:i + SIGNATURE_DIMS] for i in range(0, len(sweep), SIGNATURE_DIMS)]
        if any(not same_values(b, blocks[0]) for b in blocks[1:]):
            return True
    return False


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


def check_program(source: str, limits: SandboxLimits, n_experts: int | None = None,
                  n_layers: int | None = None) -> Verdict:
    """Probe `source`; an executable verdict's info holds its behaviour `signature` (with the world's
    expert count `n_experts` among the counts probed, and its depth `n_layers` swept, when given) and
    whether it is `layer_aware`."""
    import torch

    t0 = time.monotonic()
    try:
        report = static_check(source, limits.allowed_imports)
    except CandidateRejected as exc:
        return Verdict(False, exc.category, exc.reason, time.monotonic() - t0)
    depth = n_layers or PROBE_LAYERS
    jobs, shapes, contexts = [], {}, {}
    checked = [(key, n, shape, seed, _context(shape, depth)) for key, n, shape, seed in _cases(n_experts)]
    checked += [(key, n, shape, seed, _context(shape, depth, layer, kind))
                for key, n, shape, seed, layer, kind in _sweep(n_experts, depth)]
    for key, n, shape, seed, context in checked:
        jobs.append((key, lambda n=n, shape=shape, seed=seed: probe_inputs(n, shape, seed)))
        # Same inputs again: a deterministic program must return the same result.
        jobs.append((key + "-again", lambda n=n, shape=shape, seed=seed: probe_inputs(n, shape, seed)))
        shapes[key] = shapes[key + "-again"] = shape
        contexts[key] = contexts[key + "-again"] = context
    # Sensitivity: perturb one input at a time on the 3-input 2-D case.
    base_key, n, shape, seed = next(c for c in _cases() if c[1] == 3 and len(c[2]) == 2)
    for k in range(n):
        def perturbed(k=k, n=n, shape=shape, seed=seed):
            inputs = probe_inputs(n, shape, seed)
            inputs[k] = inputs[k] + 0.01 * torch.randn(shape, generator=torch.Generator().manual_seed(seed + 7 + k))
            return inputs
        jobs.append((f"{base_key}-perturb{k}", perturbed))
        shapes[f"{base_key}-perturb{k}"] = shape
        contexts[f"{base_key}-perturb{k}"] = _context(shape, depth)
    outcome = run_jobs(source, jobs, shapes, limits, contexts=contexts)
    if not outcome.ok:
        return Verdict(False, outcome.category, outcome.reason, time.monotonic() - t0, report.code_hash,
                       isolation=outcome.isolation)
    res = outcome.results
    try:
        for key, n, shape, seed, context in checked:
            where = f"on {n} inputs of shape {list(shape)}"
            if "-L" in key:  # the layer sweep
                where += f" in the context of layer {context['layer']} {context['kind']}"
            require_finite(res[key], where)
            if not torch.equal(res[key], res[key + "-again"]):
                raise CandidateRejected("nondeterministic", f"two calls {where} differ")
            require_plausible_norm(res[key], largest_norm(probe_inputs(n, shape, seed)), limits.max_norm_ratio,
                                   where)
    except CandidateRejected as exc:
        return Verdict(False, exc.category, exc.reason, time.monotonic() - t0, report.code_hash,
                       isolation=outcome.isolation)
    ignored = [k for k in range(3) if torch.equal(res[f"{base_key}-perturb{k}"], res[base_key])]
    sig = signature(res, n_experts, depth)
    info = {"ignored_inputs": ignored, "constant_output": len(ignored) == 3, "signature": sig,
            "layer_aware": layer_aware(sig)}
    return Verdict(True, "ok", "", time.monotonic() - t0, report.code_hash, info, outcome.isolation)
