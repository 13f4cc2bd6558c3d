"""Task vectors tau_j = C_j - M0 on disk (safetensors), read one parameter at a time, merged per parameter.

Only the parameters selected by the config's `merge.include` patterns are stored, so a 7B run
keeps MLP weights alone (the paper's choice) and the toy world keeps what merges best there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from selfdev.sandbox.run import (RunOutcome, SandboxLimits, largest_norm, require_finite, require_plausible_norm,
                                 run_jobs)

TV_FORMAT = "selfdev.task_vector.v1"


def selected(name: str, include: Sequence[str]) -> bool:
    return any(re.search(p, name) for p in include)


def write_task_vector(seed_dir: str | Path, expert_dir: str | Path, out: str | Path, include: Sequence[str],
                      dtype: str = "float32", expert: str | None = None) -> dict:
    """tau = expert - M0 for every selected floating parameter, computed in float32 and stored in `dtype`.

    Streamed: one parameter of M0 and of the expert is read at a time (plain reads from the shards) and
    its difference written at once, so memory holds one parameter, never a whole model beside M0. An
    expert whose parameters differ from M0's (names, shapes, dtypes) is refused, naming the first."""
    import torch

    from selfdev.io import write_safetensors_stream
    from selfdev.world.checkpoints import FLOATING, Checkpoint, first_difference

    what = f"expert {expert}" if expert else str(expert_dir)
    seed, other = Checkpoint(seed_dir, "M0"), Checkpoint(expert_dir, what)
    diff = first_difference(seed, other)
    if diff:
        raise ValueError(f"{what} does not match M0's architecture: {diff}")
    names = [n for n in seed.names if selected(n, include) and seed.dtype(n) in FLOATING]
    if not names:
        raise ValueError(f"merge.include {list(include)} selects no floating parameter of {seed_dir}")
    sq = [0.0]
    n_el = [0]

    def deltas():
        for name in names:
            delta = other.get(name).float()
            delta.sub_(seed.get(name).float())  # in place: one parameter of M0 and one of the expert at a time
            delta = delta.to(getattr(torch, dtype))
            sq[0] += float(torch.linalg.vector_norm(delta, dtype=torch.float64)) ** 2
            n_el[0] += delta.numel()
            yield name, delta

    write_safetensors_stream(out, [(n, dtype, seed.shape(n)) for n in names], deltas(),
                             metadata={"format": TV_FORMAT, "seed": str(seed_dir), "expert": str(expert_dir)})
    return {"parameters": len(names), "elements": n_el[0], "norm": sq[0] ** 0.5, "dtype": dtype}


class TaskVectorSet:
    """Several task-vector files; a parameter's tensors are read when asked for (plain reads, no
    memory map), so a merge holds one parameter's stack of task vectors at a time."""

    def __init__(self, paths: Sequence[str | Path]):
        from selfdev.io import SafetensorsFile

        if not paths:
            raise ValueError("no task-vector files given")
        self.paths = [Path(p) for p in paths]
        self._files = []
        for p in self.paths:
            if not p.is_file():
                raise FileNotFoundError(f"task-vector file not found: {p}")
            f = SafetensorsFile(p)
            fmt = f.metadata.get("format")
            if fmt != TV_FORMAT:
                raise ValueError(f"{p}: not a selfdev task-vector file (metadata format={fmt!r}, expected {TV_FORMAT!r})")
            self._files.append(f)
        self.names = sorted(self._files[0].keys())
        self._largest_norm: dict[str, float] = {}
        for p, f in zip(self.paths[1:], self._files[1:]):
            if sorted(f.keys()) != self.names:
                raise ValueError(f"{p}: parameters differ from {self.paths[0]}")

    def shape(self, name: str) -> tuple[int, ...]:
        return self._files[0].shape(name)

    def get(self, name: str) -> list:
        # Programs always see float32, as in the probe: task vectors stored in bf16 (`merge.dtype`) would
        # otherwise meet ops without bf16 kernels (torch.quantile, ...) only at paper scale.
        return [f.get(name).float() for f in self._files]

    def largest_norm(self, name: str) -> float:
        """The largest norm among a parameter's task vectors, read once and kept: every program's
        result for that parameter is checked against it."""
        if name not in self._largest_norm:
            self._largest_norm[name] = largest_norm(self.get(name))
        return self._largest_norm[name]

    @property
    def fds(self) -> tuple[int, ...]:
        """The open read-only descriptors of the files (kept open in the sandboxed child)."""
        return tuple(f.fd for f in self._files)


@dataclass
class MergeOutcome:
    ok: bool
    category: str
    reason: str
    seconds: float
    merged: dict
    isolation: dict = field(default_factory=dict)


def merge_in_sandbox(source: str, tvs: TaskVectorSet, limits: SandboxLimits,
                     sink: Callable[[str, object], None] | None = None, n_layers: int | None = None) -> MergeOutcome:
    """Run a program's `merge` on every parameter in one sandboxed child; values are checked here.
    A two-argument `merge` gets each parameter's context (selfdev.params) with the model's `n_layers`
    (by default counted from the parameter names).

    With `sink`, each checked parameter is handed over as soon as it arrives (the scorer writes it into
    the model) and nothing is kept: memory holds one parameter's stack of task vectors and its merge.
    Without, the merged parameters are returned in `MergeOutcome.merged`."""
    import torch

    merged: dict[str, torch.Tensor] = {}

    def accept(name: str, value) -> None:
        require_finite(value, f"in the merge of {name}")
        require_plausible_norm(value, tvs.largest_norm(name), limits.max_norm_ratio, f"in the merge of {name}")
        if sink is None:
            merged[name] = value
        else:
            sink(name, value)

    from selfdev.params import layer_count, param_context

    jobs = [(name, lambda name=name: tvs.get(name)) for name in tvs.names]
    layers = layer_count(tvs.names) if n_layers is None else n_layers
    contexts = {n: param_context(n, tvs.shape(n), layers) for n in tvs.names}
    out: RunOutcome = run_jobs(source, jobs, {n: tvs.shape(n) for n in tvs.names}, limits, accept=accept,
                               keep_fds=tvs.fds, contexts=contexts)
    return MergeOutcome(out.ok, out.category, out.reason, out.seconds, merged if out.ok else {}, out.isolation)
