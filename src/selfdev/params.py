"""What a merging program is told about the parameter it merges: the `context` of
`merge(task_vectors, context)`.

A program whose `merge` takes a second positional parameter receives, for each merged parameter, a
plain dict: its `name`, the decoder `layer` it belongs to (0-based; None for embeddings, the final
norm and the head), the model's `n_layers`, its `kind` (the module's own name: `gate_proj`, `up_proj`,
`down_proj`, `q_proj`, ..., `input_layernorm`) and its `shape` (a tuple). Layer-dependent rules such as
LiNeS (Wang et al., ICLR 2025: scale each layer's update linearly with its depth) need exactly this; a
one-argument `merge(task_vectors)` is called as before.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Sequence

# `model.layers.3.mlp.up_proj.weight` (Llama, Mistral, Qwen), `transformer.h.3.mlp.c_fc.weight` (GPT-2),
# `blocks.3.` (others): the number after the container is the decoder layer.
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.")
_SUFFIXES = ("weight", "bias")


def layer_of(name: str) -> int | None:
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


def kind_of(name: str) -> str:
    """The module's own name: the last component before `.weight`/`.bias` (`up_proj`, `input_layernorm`)."""
    parts = name.split(".")
    if len(parts) > 1 and parts[-1] in _SUFFIXES:
        parts = parts[:-1]
    return parts[-1]


def layer_count(names: Iterable[str], model_dir: str | Path | None = None) -> int:
    """Decoder layers of the model: its config's `num_hidden_layers` (or `n_layer`) when `model_dir`
    has a config.json, else one more than the largest layer index among `names` (0 when none)."""
    if model_dir is not None:
        path = Path(model_dir) / "config.json"
        if path.is_file():
            cfg = json.loads(path.read_text())
            for key in ("num_hidden_layers", "n_layer"):
                if isinstance(cfg.get(key), int):
                    return cfg[key]
    layers = [layer_of(n) for n in names]
    return 1 + max((x for x in layers if x is not None), default=-1)


def param_context(name: str, shape: Sequence[int], n_layers: int) -> dict:
    """The context one merged parameter is given (plain, picklable Python values)."""
    return {"name": name, "layer": layer_of(name), "n_layers": int(n_layers), "kind": kind_of(name),
            "shape": tuple(int(s) for s in shape)}


def world_depth(config: dict) -> int | None:
    """The world's depth for the probe's layer sweep: the built seed model's (its config.json), else the
    toy world's configured `num_hidden_layers`, else None (the probe's default depth)."""
    from selfdev.paths import Paths

    seed_dir = Path(Paths(config["results"]).seed_dir())
    if (seed_dir / "config.json").is_file():
        return layer_count((), seed_dir)
    world = config.get("world", {})
    if world.get("seed_model") == "toy":
        return int(world["model"]["num_hidden_layers"])
    return None
