"""A vLLM worker extension whose reload keeps the old weights: what a stale in-place reload looks like
(tests/test_vllm.py checks the swap's own verification catches it)."""

from selfdev.scoring.vllm_worker import WeightSwap


class StaleSwap(WeightSwap):
    def selfdev_reload(self, tensors: dict) -> None:
        """Nothing is loaded: the engine keeps computing with what it held."""
