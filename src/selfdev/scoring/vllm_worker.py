"""vLLM worker extension (`LLM(worker_extension_cls="selfdev.scoring.vllm_worker.WeightSwap")`): methods
run on every worker by `LLM.collective_rpc(name, args=...)`.

Imported inside vLLM's worker processes only; it must not import vLLM at module level (the scoring
process imports the name as a string).
"""

from __future__ import annotations

import re

# Checkpoint projection -> the vLLM module that computes it: Llama-family models fuse gate+up and q+k+v
# into one linear each (the others keep their names).
_FUSED = {"gate_proj": "gate_up_proj", "up_proj": "gate_up_proj",
          "q_proj": "qkv_proj", "k_proj": "qkv_proj", "v_proj": "qkv_proj"}
_LINEAR = re.compile(r"^(?P<parent>.+\.layers\.\d+\.(?:mlp|self_attn))\.(?P<proj>\w+_proj)\.weight$")


class WeightSwap:
    def selfdev_load_weights(self, path: str) -> dict:
        """Load the checkpoint-format tensors of a safetensors file into the live model, in place, then
        verify what the engine now computes with them.

        `model_runner.reload_weights` runs the model's own `load_weights` (name mapping, fused
        projections, tensor-parallel sharding) and then the backend's post-processing (the CPU backend
        repacks linear weights, so writing parameters directly would be wrong there). A partial set of
        tensors is fine: only those are replaced. Returns `selfdev_verify`'s report.
        """
        import logging

        from safetensors.torch import load_file

        # The reload warns about every module the partial set leaves untouched (all but the merged
        # ones, each time): expected here, so those warnings are silenced.
        logging.getLogger("vllm.model_executor.model_loader.reload").setLevel(logging.ERROR)
        tensors = load_file(path)
        self.selfdev_reload(tensors)
        return self.selfdev_verify(tensors)

    def selfdev_reload(self, tensors: dict) -> None:
        self.model_runner.reload_weights(weights_iterator=iter(tensors.items()))

    def selfdev_verify(self, tensors: dict) -> dict:
        """The swap proves itself: each written linear weight W of a Llama-family layer is checked by the
        live engine's own module on fixed probe inputs x, against x @ W.T computed from the written values
        (the module's fused output sliced to W's rows). A reload that kept stale weights gives the old
        layer's outputs and fails the comparison. Returns {"checked", "worst", "worst_name", "unchecked"}
        (relative error of the worst tensor; unchecked: names this mapping does not cover). Runs under
        tensor parallelism 1 only (a sharded module holds part of W's rows): otherwise nothing is checked."""
        import torch

        model = self.model_runner.model
        report = {"checked": 0, "worst": 0.0, "worst_name": None, "unchecked": []}
        gen = torch.Generator().manual_seed(0)
        for name, w in tensors.items():
            m = _LINEAR.match(name)
            proj = m["proj"] if m else None
            fused = _FUSED.get(proj, proj)
            try:
                module = model.get_submodule(f"{m['parent']}.{fused}") if m else None
            except AttributeError:
                module = None
            if module is None or w.dim() != 2 or getattr(module, "tp_size", 1) != 1:
                report["unchecked"].append(name)
                continue
            param = next(module.parameters(), None)
            dtype = param.dtype if param is not None and param.is_floating_point() else w.dtype
            device = param.device if param is not None else torch.device("cpu")
            x = torch.randn(4, w.shape[1], generator=gen).to(dtype)
            with torch.inference_mode():
                # module(x) - module(0): the layer's bias (Qwen2's q/k/v have one) cancels
                outs = [module(v.to(device)) for v in (x, torch.zeros_like(x))]
                live, zero = ((o[0] if isinstance(o, tuple) else o).float().cpu() for o in outs)
                live = live - zero
            expected = x.float() @ w.float().T
            rows = w.shape[0]
            # Where W's rows sit in the module's output: gate then up (equal halves), q then k and v (equal).
            start = {"up_proj": rows, "k_proj": live.shape[1] - 2 * rows, "v_proj": live.shape[1] - rows}.get(proj, 0)
            got = live[:, start:start + rows]
            err = float((got - expected).norm() / expected.norm().clamp_min(1e-12))
            report["checked"] += 1
            if err >= report["worst"]:
                report["worst"], report["worst_name"] = err, name
        return report
