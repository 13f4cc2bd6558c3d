"""Human-designed baselines, tuned on dev, scored on test: mergekit's own merge methods, two
2025 methods mergekit lacks (TSV-Merge, Iso-C) as selfdev programs, and LiNeS (layer-wise scaling,
Wang et al., ICLR 2025) on Task Arithmetic and on TIES.

mergekit (the package the paper merged with) is called at the tensor level: for each merged
parameter, a TensorGroup of M0's tensor (the base) and every expert's tensor (M0 + tau_j) goes
through mergekit's registered method; the result minus M0 is the merged task vector, scored like
any program's. TSV-Merge and Iso-C are the shipped programs `selfdev/algorithms/tsv_merge.py` and
`iso_c.py` (the `merge(task_vectors)` interface), scaled by a tuned lambda (the papers' alpha).
LiNeS scales the merged task vector of decoder layer l (0-based, of L) by alpha + beta * l / (L - 1),
the paper's lambda(l) = alpha + beta (l - 1) / (L - 1) for l = 1..L; alpha and beta are tuned.
Baselines are trusted project code, so they run in-process, not in the sandbox.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

BASELINE_V = "selfdev.baseline.v2"
SINGLES_V = "selfdev.singles.v1"
MULTITASK_MODEL = "multitask"  # the multi-task upper bound's row among the single models


@dataclass(frozen=True)
class Method:
    mergekit_name: str | None
    uses_base: bool  # linear averages the experts themselves; the others work on deltas from M0
    searchable: tuple[str, ...]  # hyper-parameters of the grid
    program: str | None = None  # a shipped selfdev program (selfdev.algorithms.<program>) instead of mergekit
    lines: bool = False  # LiNeS on top: the method's merge (lambda 1) scaled per layer by alpha and beta


METHODS: dict[str, Method] = {
    "task_arithmetic": Method("task_arithmetic", True, ("lambda",)),
    "ties": Method("ties", True, ("density", "lambda")),
    "dare_ties": Method("dare_ties", True, ("density", "lambda")),
    "model_stock": Method("model_stock", True, ()),
    "linear": Method("linear", False, ()),
    # DELLA's epsilon (0.15, narrowed near density 0 or 1) and Breadcrumbs' gamma (0.01): mergekit's defaults.
    "della": Method("della", True, ("density", "lambda")),
    "breadcrumbs": Method("breadcrumbs", True, ("density", "lambda")),
    "sce": Method("sce", True, ("select_topk",)),
    "tsv": Method(None, True, ("lambda",), program="tsv_merge"),
    "iso_c": Method(None, True, ("lambda",), program="iso_c"),
    "lines_ta": Method("task_arithmetic", True, ("alpha", "beta"), lines=True),
    # TIES at its paper's default density (top 20%), as LiNeS applied it; alpha and beta are LiNeS's two.
    "lines_ties": Method("ties", True, ("alpha", "beta"), lines=True),
}
LINES_TIES_DENSITY = 0.2

# The budget-matched random search also draws per-expert weights, where the method takes them.
WEIGHTED = {"task_arithmetic", "ties", "dare_ties", "linear", "della", "breadcrumbs", "lines_ta", "lines_ties"}


def lines_scale(alpha: float, beta: float, layer: int | None, n_layers: int) -> float:
    """LiNeS's factor for a parameter of decoder `layer` (0-based) of `n_layers`: alpha + beta * layer /
    (n_layers - 1); alpha alone for one layer and for parameters outside the decoder layers (embeddings,
    final norm, head: none of them merged by default), which LiNeS keeps closest to the base."""
    if layer is None or n_layers <= 1:
        return alpha
    return alpha + beta * layer / (n_layers - 1)


def program_merge(name: str) -> Callable:
    """The `merge` function of a shipped program (trusted code, imported as a module)."""
    import importlib

    return importlib.import_module(f"selfdev.algorithms.{name}").merge


def searchable(method: str) -> bool:
    """Whether the method has anything for a random search to draw."""
    return bool(METHODS[method].searchable) or method in WEIGHTED


def mergekit_delta(method: str, base, task_vectors: Sequence, params: dict, name: str = "", seed: int = 0,
                   n_layers: int = 0):
    """Merged task vector of one parameter by mergekit's implementation of `method`.

    params: `lambda`, `density` (shared) and `weights` (one per expert), each optional; LiNeS methods
    take `alpha` and `beta` instead of `lambda` and need `name` (its layer) and the model's `n_layers`."""
    import torch
    from mergekit.merge_methods import registry
    from mergekit.merge_methods.base import TensorGroup

    if method not in METHODS:
        raise ValueError(f"unknown baseline method {method!r}; known: {sorted(METHODS)}")
    spec = METHODS[method]
    if spec.lines:
        from selfdev.params import layer_of

        inner = {"lambda": 1.0, "weights": params.get("weights")}
        if spec.mergekit_name == "ties":
            inner["density"] = LINES_TIES_DENSITY
        merged = mergekit_delta(spec.mergekit_name, base, task_vectors, inner, name, seed)
        factor = lines_scale(float(params.get("alpha", 1.0)), float(params.get("beta", 0.0)), layer_of(name), n_layers)
        return (factor * merged).contiguous()
    if spec.program:
        from selfdev.params import param_context
        from selfdev.sandbox.run import takes_context

        fn = program_merge(spec.program)
        tensors = [t.float() for t in task_vectors]
        # A shipped program is called as the sandbox calls a candidate: with the context when it takes one.
        merged = fn(tensors, param_context(name, base.shape, n_layers)) if takes_context(fn) else fn(tensors)
        return (float(params.get("lambda", 1.0)) * merged).contiguous()
    base = base.float()
    experts = [base + t.float() for t in task_vectors]
    weights = list(params.get("weights") or [1.0] * len(experts))
    if len(weights) != len(experts):
        raise ValueError(f"{method}: {len(weights)} weights for {len(experts)} experts")
    args: dict = {}
    if spec.uses_base:
        group = TensorGroup.from_tensors([base, *experts], base_index=0, name=name)
        if method == "sce":
            args = {"select_topk": float(params.get("select_topk", 1.0))}
        elif method != "model_stock":
            args = {"weight": weights, "lambda": float(params.get("lambda", 1.0))}
            if "density" in spec.searchable:
                args["density"] = float(params.get("density", 1.0))
            if method == "della":
                # mergekit's epsilon (0.15), narrowed where density +/- epsilon would leave (0, 1).
                d = args["density"]
                args["epsilon"] = min(0.15, 0.5 * min(d, 1.0 - d)) if 0 < d < 1 else 0.15
    else:
        group = TensorGroup.from_tensors(experts, name=name)
        args = {"weight": weights}
    # DARE drops entries at random: a fixed generator state makes every configuration reproducible.
    torch.manual_seed(seed)
    (out,) = registry.get(spec.mergekit_name)([group], parameters=args)
    return (out.float() - base).contiguous()


def merged_by(method: str, params: dict, names: Sequence[str], base_of: Callable, tvs_of: Callable,
              seed: int = 0, n_layers: int = 0):
    """The merged task vectors of `method`, computed one parameter at a time as the scorer reads them."""
    from selfdev.scoring.merge import LazyMerge

    return LazyMerge(names, lambda n: mergekit_delta(method, base_of(n), tvs_of(n), params, n, seed, n_layers))


def _linspace(lo: float, hi: float, n: int) -> list[float]:
    return [lo] if n == 1 else [round(lo + (hi - lo) * i / (n - 1), 6) for i in range(n)]


def grid(method: str, size: int, lambda_range: Sequence[float], density_range: Sequence[float],
         beta_range: Sequence[float] = (0.0, 1.0)) -> list[dict]:
    """Hyper-parameter grid of `size` values per searchable parameter (one point for none); LiNeS's
    alpha spans `lambda_range` (it is the scale of the shallowest layer)."""
    spec = METHODS[method]
    lams = _linspace(*lambda_range, size)
    if spec.searchable == ("alpha", "beta"):
        return [{"alpha": a, "beta": b} for a in lams for b in _linspace(*beta_range, size)]
    if spec.searchable == ("lambda",):
        return [{"lambda": x} for x in lams]
    if spec.searchable == ("density", "lambda"):
        return [{"density": d, "lambda": x} for d in _linspace(*density_range, size) for x in lams]
    if spec.searchable == ("select_topk",):
        return [{"select_topk": d} for d in _linspace(*density_range, size)]
    return [{}]


def config_stream(method: str, n_experts: int, lambda_range: Sequence[float], density_range: Sequence[float],
                  weight_range: Sequence[float], seed: int, beta_range: Sequence[float] = (0.0, 1.0)) -> Iterator[dict]:
    """Configurations drawn uniformly from the method's space (plus per-expert weights), one after
    another from one seeded stream: any prefix is the same whatever the budget."""
    rng = random.Random(seed)
    spec = METHODS[method]
    while True:
        cfg: dict = {}
        if "lambda" in spec.searchable:
            cfg["lambda"] = round(rng.uniform(*lambda_range), 6)
        if "density" in spec.searchable:
            cfg["density"] = round(rng.uniform(*density_range), 6)
        if "select_topk" in spec.searchable:
            cfg["select_topk"] = round(rng.uniform(*density_range), 6)
        if "alpha" in spec.searchable:
            cfg["alpha"] = round(rng.uniform(*lambda_range), 6)
            cfg["beta"] = round(rng.uniform(*beta_range), 6)
        if method in WEIGHTED:
            cfg["weights"] = [round(rng.uniform(*weight_range), 6) for _ in range(n_experts)]
        yield cfg


def random_configs(method: str, n: int, n_experts: int, lambda_range: Sequence[float],
                   density_range: Sequence[float], weight_range: Sequence[float], seed: int,
                   beta_range: Sequence[float] = (0.0, 1.0)) -> list[dict]:
    """The first `n` configurations of `config_stream`."""
    return list(itertools.islice(config_stream(method, n_experts, lambda_range, density_range, weight_range, seed,
                                               beta_range), n))


def tune(method: str, configs: Iterable[dict], evaluate_dev: Callable[[dict], "float | tuple[float, int, int]"],
         budget: int | None = None) -> tuple[list[dict], dict]:
    """Configurations' dev accuracies and the best one (first of equals: deterministic).

    `evaluate_dev` gives an accuracy, or (accuracy, problems evaluated, problems in dev) when racing
    may stop early (a partial row: its estimate is below the best full score, see
    selfdev.scoring.racing). With a `budget` (problem evaluations), configurations are drawn until it
    is spent; the last one runs to its end, so at most one configuration's evaluations over."""
    rows: list[dict] = []
    spent = 0
    for c in configs:
        if budget is not None and spent >= budget:
            break
        got = evaluate_dev(c)
        acc, evaluated, n = got if isinstance(got, tuple) else (got, None, None)
        rows.append({"params": c, "dev_accuracy": acc, "dev_evaluated": evaluated, "partial": evaluated != n})
        spent += evaluated or 0
    full = [r for r in rows if not r["partial"]]
    if not full:
        raise ValueError(f"{method}: no configuration was scored on all of dev")
    best = max(full, key=lambda r: r["dev_accuracy"])  # max keeps the first of ties
    return rows, best


def tune_and_test(scorer, method: str, mode: str, configs: Iterable[dict], test_rows: Sequence[dict],
                  seed: int, family: str, progress=None, budget: int | None = None, race=None) -> dict:
    """Tune `method` over `configs` on the scorer's (dev) rows (within `budget` problem evaluations
    when given; each configuration raced against the best so far when `race` is a
    selfdev.scoring.racing.Race with one pool of k 1), then score the best once on test."""
    from selfdev.study.stats import bits

    names = scorer.tvs.names

    def merged(params: dict) -> dict:
        return merged_by(method, params, names, scorer.base, scorer.tvs.get, seed, scorer.n_layers)

    def dev(params: dict):
        res = scorer.evaluate_merged(merged(params), race=race)
        if progress is not None:  # a tqdm without a total (budget mode) has no truth value
            progress.update(1)
        return res.accuracy, res.evaluated, res.n

    t0 = time.perf_counter()
    rows, best = tune(method, configs, dev, budget)
    test = scorer.evaluate_merged(merged(best["params"]), rows=test_rows)
    return {"schema_version": BASELINE_V, "family": family, "method": method, "mode": mode,
            "n_evaluations": len(rows), "dev_problem_evaluations": sum(r["dev_evaluated"] for r in rows),
            "budget": budget, "evaluations": rows, "best_params": best["params"],
            "dev_accuracy": best["dev_accuracy"], "test_accuracy": test.accuracy, "n_test": test.n,
            "test_correct": bits(test.correct), "seconds": time.perf_counter() - t0}


def discovery_budget(score_tables_per_run: Sequence[Sequence[Sequence[dict]]]) -> int:
    """Problem evaluations on dev one discovery run used: those of the programs it scored itself
    (reused scores are free; a program racing dropped counts the problems it saw), averaged over
    runs (seeds) and rounded."""
    counts = [sum(r["dev_evaluated"] or 0 for rows in run for r in rows
                  if r.get("status") == "new" and r.get("executable"))
              for run in score_tables_per_run]
    if not counts:
        raise ValueError("no discovery run to match the budget of")
    return max(1, round(sum(counts) / len(counts)))
