"""One rule for every seed in the project: numpy's SeedSequence over the master seed and a path of labels.

A seed depends on what it is for (`"data", "expert", "price"`), never on a position in a list, so adding,
removing or reordering an expert or an arm leaves every other stream unchanged.
"""

from __future__ import annotations

import hashlib


def _label_key(label: str | int) -> int:
    # A stable 32-bit key per label (Python's hash() is salted per process).
    return int.from_bytes(hashlib.sha256(str(label).encode()).digest()[:4], "little")


def derive_seed(master: int, *labels: str | int) -> int:
    """A 31-bit seed for the stream named by `labels` under the `master` seed (`torch.manual_seed`,
    `random.Random` and numpy all accept it)."""
    import numpy as np

    if master < 0:
        raise ValueError(f"seed must be >= 0, got {master}")
    seq = np.random.SeedSequence(master, spawn_key=tuple(_label_key(label) for label in labels))
    return int(seq.generate_state(1, np.uint32)[0] >> 1)
