"""vLLM worker extension (`LLM(worker_extension_cls="selfdev.scoring.vllm_worker.WeightSwap")`): methods
run on every worker by `LLM.collective_rpc(name, args=...)`.

Imported inside vLLM's worker processes only; it must not import vLLM at module level (the scoring
process imports the name as a string).
"""

from __future__ import annotations


class WeightSwap:
    def selfdev_load_weights(self, path: str) -> bool:
        """Load the checkpoint-format tensors of a safetensors file into the live model, in place.

        `model_runner.reload_weights` runs the model's own `load_weights` (name mapping, fused
        projections, tensor-parallel sharding) and then the backend's post-processing (the CPU backend
        repacks linear weights, so writing parameters directly would be wrong there). A partial set of
        tensors is fine: only those are replaced.
        """
        import logging

        from safetensors.torch import load_file

        # The reload warns about every module the partial set leaves untouched (all but the merged
        # ones, each time): expected here, so those warnings are silenced.
        logging.getLogger("vllm.model_executor.model_loader.reload").setLevel(logging.ERROR)
        tensors = load_file(path)
        self.model_runner.reload_weights(weights_iterator=iter(tensors.items()))
        return True
