"""Confidence intervals for the study: percentile bootstrap over test problems (or over programs).

Per-problem correctness travels as a compact bit string ("0110...") in the parquet/JSON artifacts,
so every interval can be recomputed from the files alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def bits(correct: Sequence[bool]) -> str:
    return "".join("1" if c else "0" for c in correct)


def from_bits(text: str) -> list[bool]:
    if set(text) - {"0", "1"}:
        raise ValueError(f"expected a string of 0/1 per problem, got {text[:20]!r}...")
    return [c == "1" for c in text]


def _percentiles(samples, level: float) -> tuple[float, float]:
    import numpy as np

    alpha = (1 - level) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return float(lo), float(hi)


# Our own few lines of numpy rather than scipy.stats.bootstrap (written before mergekit, which requires
# scipy, joined the dependencies): every interval here must resample with one fixed seed so equal 0/1
# vectors get equal intervals in every file.
def bootstrap_mean(values: Sequence[float], n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of `values` (0/1 correctness or scores) with a percentile-bootstrap interval."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap of an empty sample")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = _percentiles(means, level)
    return Interval(float(x.mean()), lo, hi)


def paired_difference(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> Interval:
    """mean(a) - mean(b) on the same problems, resampling problems jointly (paired bootstrap)."""
    import numpy as np

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"paired samples must be non-empty and equally long, got {x.size} and {y.size}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    diffs = x[idx].mean(axis=1) - y[idx].mean(axis=1)
    lo, hi = _percentiles(diffs, level)
    return Interval(float(x.mean() - y.mean()), lo, hi)


def unpaired_difference(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, level: float = 0.95,
                        seed: int = 0) -> Interval:
    """mean(a) - mean(b) for independent samples (e.g. dev scores of two arms' programs)."""
    import numpy as np

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        raise ValueError("bootstrap of an empty sample")
    rng = np.random.default_rng(seed)
    diffs = (x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
             - y[rng.integers(0, y.size, size=(n_boot, y.size))].mean(axis=1))
    lo, hi = _percentiles(diffs, level)
    return Interval(float(x.mean() - y.mean()), lo, hi)
