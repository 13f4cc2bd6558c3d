"""Layer-aware programs: `merge(task_vectors, context)` beside the one-argument `merge(task_vectors)`,
through the probe, the sandboxed merge, scoring on both splits, and LiNeS as a baseline."""

import json

import pytest
import torch

from conftest import REPO, sandbox
from selfdev.params import kind_of, layer_count, layer_of, param_context
from selfdev.sandbox.probe import check_program, layer_aware, same_algorithm, same_behaviour

LIMITS = sandbox("probe", wall_s=10, cpu_s=10, memory_mb=1024)
TA = "import torch\ndef merge(t):\n    return 0.5 * torch.stack(t).sum(0)\n"
TA_WITH_CONTEXT = "import torch\ndef merge(t, context):\n    return 0.5 * torch.stack(t).sum(0)\n"
# Differs from TA only on the model's last layer.
LAST_LAYER = ("import torch\ndef merge(t, context):\n"
              "    s = 0.7 if context['layer'] == context['n_layers'] - 1 else 0.5\n"
              "    return s * torch.stack(t).sum(0)\n")
# Differs from TA only on down_proj weights.
DOWN_PROJ = ("import torch\ndef merge(t, context):\n"
             "    return (0.6 if context['kind'] == 'down_proj' else 0.5) * torch.stack(t).sum(0)\n")


def test_context_names_layer_kind_and_depth(tmp_path):
    assert layer_of("model.layers.11.mlp.down_proj.weight") == 11 and kind_of("model.layers.11.mlp.down_proj.weight") == "down_proj"
    assert layer_of("transformer.h.3.mlp.c_fc.bias") == 3 and kind_of("transformer.h.3.mlp.c_fc.bias") == "c_fc"
    assert layer_of("model.embed_tokens.weight") is None and kind_of("lm_head.weight") == "lm_head"
    assert layer_of("model.layers.2.input_layernorm.weight") == 2 and kind_of("model.layers.2.input_layernorm.weight") == "input_layernorm"
    names = ["model.layers.0.mlp.up_proj.weight", "model.layers.5.mlp.up_proj.weight"]
    assert layer_count(names) == 6 and layer_count(["lm_head.weight"]) == 0
    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 32}))
    assert layer_count(names, tmp_path) == 32  # the model's depth, not the merged layers'
    ctx = param_context("model.layers.5.mlp.up_proj.weight", torch.Size([8, 4]), 32)
    assert ctx == {"name": "model.layers.5.mlp.up_proj.weight", "layer": 5, "n_layers": 32, "kind": "up_proj",
                   "shape": (8, 4)}
    assert type(ctx["shape"]) is tuple and all(type(s) is int for s in ctx["shape"])


def test_one_and_two_argument_programs_pass_the_probe_and_compare_by_behaviour():
    one, two = check_program(TA, LIMITS, 3, 4), check_program(TA_WITH_CONTEXT, LIMITS, 3, 4)
    assert one.executable and two.executable, (one.reason, two.reason)
    assert same_algorithm(one.info["signature"], two.info["signature"])
    assert not one.info["layer_aware"] and not two.info["layer_aware"]
    # A defaulted second parameter is not a context: called with one argument, as before contexts.
    defaulted = check_program("import torch\ndef merge(t, lam=0.5):\n    return lam * torch.stack(t).sum(0)\n", LIMITS, 3, 4)
    assert defaulted.executable and same_algorithm(defaulted.info["signature"], one.info["signature"])
    # ... unless it is named context.
    named = check_program("import torch\ndef merge(t, context=None):\n    return 0.5 * torch.stack(t).sum(0) * "
                          "(2 if context is None else 1)\n", LIMITS, 3, 4)
    assert named.executable and same_algorithm(named.info["signature"], one.info["signature"])
    three = check_program("def merge(t, context, extra):\n    return t[0]\n", LIMITS)
    assert not three.executable and three.category == "no_merge" and "merge(task_vectors, context)" in three.reason


def test_the_signature_separates_programs_that_differ_on_one_layer_or_kind():
    ta = check_program(TA_WITH_CONTEXT, LIMITS, 3, 4).info["signature"]
    last = check_program(LAST_LAYER, LIMITS, 3, 4)
    down = check_program(DOWN_PROJ, LIMITS, 3, 4)
    assert last.executable and down.executable
    assert not same_behaviour(ta, last.info["signature"], 3) and not same_behaviour(ta, down.info["signature"], 3)
    assert not same_behaviour(last.info["signature"], down.info["signature"], 3)
    assert last.info["layer_aware"] and down.info["layer_aware"]
    assert layer_aware(last.info["signature"]) and not layer_aware(ta)
    # The iteration summary counts the behaviours that use their context.
    from selfdev.loop.tables import iteration_stats

    rows = [{"executable": True, "code_hash": str(i), "status": "new", "behaviour": f"b{i}", "algorithm": f"b{i}",
             "signature": json.dumps(sig), "novel": True} for i, sig in enumerate([ta, last.info["signature"]])]
    assert iteration_stats([{"temperature": 1.0, "gen_seconds": 0.0}] * 2, rows, [], [], {})["layer_aware_behaviours"] == 1
    # The sweep covers the world's depth: layer 31 of 32 is probed (with 32 layers spread evenly).
    deep = check_program(LAST_LAYER, LIMITS, 3, 32)
    assert deep.info["layer_aware"] and not same_behaviour(check_program(TA_WITH_CONTEXT, LIMITS, 3, 32).info["signature"],
                                                           deep.info["signature"], 3)
    # A rule that fails on one layer only (here: division by the layer index, zero on the first) is rejected.
    bad = check_program("import torch\ndef merge(t, context):\n    return torch.stack(t).sum(0) / context['layer']\n",
                        LIMITS, 3, 4)
    assert not bad.executable and bad.category == "non_finite"


def test_each_call_gets_its_own_context():
    # A program that writes into its context: a shared dict would make later calls differ (nondeterministic).
    grow = ("import torch\ndef merge(t, context):\n    context['seen'] = context.get('seen', 0) + 1\n"
            "    return 0.1 * context['seen'] * torch.stack(t).sum(0)\n")
    verdict = check_program(grow, LIMITS, 3, 4)
    assert verdict.executable, verdict.reason
    assert same_algorithm(verdict.info["signature"],
                          check_program("import torch\ndef merge(t):\n    return 0.1 * torch.stack(t).sum(0)\n",
                                        LIMITS, 3, 4).info["signature"])


@pytest.fixture(scope="module")
def deep_world(tmp_path_factory):
    """The micro world with three decoder layers (layer rules need more than one)."""
    from conftest import MICRO_WORLD, build_world, micro_config

    cfg = micro_config(tmp_path_factory.mktemp("deep") / "results")
    # Trained a little longer than the micro world, so that merges change what the model writes.
    cfg["world"] = {**cfg["world"], "model": {**MICRO_WORLD["model"], "num_hidden_layers": 3},
                    "seed_training": {**cfg["world"]["seed_training"], "steps": 150, "lr": 0.01, "batch_size": 16}}
    build_world(cfg)
    return cfg


DEPTH_SCALED = ("import torch\ndef merge(task_vectors, context):\n"
                "    return (context['layer'] + 1) * 0.5 * torch.stack(task_vectors).mean(0)\n")


def _depth_scaled(tvs, name):
    return (layer_of(name) + 1) * 0.5 * torch.stack(tvs.get(name)).mean(0)


def test_a_two_argument_program_merges_and_scores_with_each_parameters_layer(deep_world):
    from selfdev.config import sandbox_limits
    from selfdev.scoring.merge import LazyMerge
    from selfdev.scoring.programs import make_scorer, score_file, world_inputs
    from selfdev.world.taskvectors import merge_in_sandbox

    files = world_inputs(deep_world, "dev")
    scorer = make_scorer(deep_world, files["seed_dir"], files["task_vectors"], files["rows"], files["shots"])
    assert scorer.n_layers == 3 and {layer_of(n) for n in scorer.tvs.names} == {0, 1, 2}
    out = merge_in_sandbox(DEPTH_SCALED, scorer.tvs, sandbox_limits(deep_world, "merge"), n_layers=scorer.n_layers)
    assert out.ok, out.reason
    for name in scorer.tvs.names:
        torch.testing.assert_close(out.merged[name], _depth_scaled(scorer.tvs, name), atol=1e-7, rtol=0)
    # Scoring (the workflow's score and final-test path) equals the same merge computed in-process,
    # completion by completion; ignoring the context (every layer as the first) gives other completions.
    from selfdev.study.stats import from_bits

    with scorer.merged_program(DEPTH_SCALED) as outcome:
        assert outcome.ok, outcome.reason
        got = scorer.evaluate()
    expected = scorer.evaluate_merged(LazyMerge(scorer.tvs.names, lambda n: _depth_scaled(scorer.tvs, n)))
    flat = scorer.evaluate_merged(LazyMerge(scorer.tvs.names, lambda n: 0.5 * torch.stack(scorer.tvs.get(n)).mean(0)))
    assert got.completions == expected.completions != flat.completions
    for split in ("dev", "test"):
        f = world_inputs(deep_world, split)
        rec = score_file(_write(deep_world, DEPTH_SCALED), deep_world, split, f["seed_dir"], f["task_vectors"], f["rows"],
                         f["shots"])
        ref_scorer = make_scorer(deep_world, f["seed_dir"], f["task_vectors"], f["rows"], f["shots"])
        ref = ref_scorer.evaluate_merged(LazyMerge(ref_scorer.tvs.names, lambda n: _depth_scaled(ref_scorer.tvs, n)))
        assert rec["executable"] and from_bits(rec["correct"]) == list(ref.correct), split
        assert rec["accuracy"] == ref.accuracy, split


def _write(cfg, source):
    from pathlib import Path

    path = Path(cfg["results"]).parent / "depth_scaled.py"
    path.write_text(source)
    return path


def test_lines_follows_its_papers_formula():
    """LiNeS (arXiv 2410.17146): lambda(l) = alpha + beta (l - 1) / (L - 1) for layers l = 1..L, applied to
    the merged task vector of Task Arithmetic (lambda 1) or TIES."""
    from selfdev.study import baselines

    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=gen)
    tvs = [torch.randn(6, 5, generator=gen) * 0.1 for _ in range(3)]
    alpha, beta, big_l = 0.3, 0.8, 5
    for l in range(1, big_l + 1):  # the paper's 1-based layers
        name = f"model.layers.{l - 1}.mlp.up_proj.weight"
        factor = alpha + beta * (l - 1) / (big_l - 1)
        ta = baselines.mergekit_delta("lines_ta", base, tvs, {"alpha": alpha, "beta": beta}, name, n_layers=big_l)
        torch.testing.assert_close(ta, factor * torch.stack(tvs).sum(0), atol=1e-6, rtol=0)
        ties = baselines.mergekit_delta("lines_ties", base, tvs, {"alpha": alpha, "beta": beta}, name, n_layers=big_l)
        plain_ties = baselines.mergekit_delta("ties", base, tvs, {"density": baselines.LINES_TIES_DENSITY, "lambda": 1.0})
        torch.testing.assert_close(ties, factor * plain_ties, atol=1e-6, rtol=0)
    assert (plain_ties == 0).float().mean() >= 0.4  # TIES really trimmed: 3 experts keep 20% each, 60% at most
    weights = [0.5, 1.0, 1.5]
    weighted = baselines.mergekit_delta("lines_ta", base, tvs, {"alpha": 1.0, "beta": 0.0, "weights": weights},
                                        "model.layers.0.mlp.up_proj.weight", n_layers=big_l)
    torch.testing.assert_close(weighted, sum(w * t for w, t in zip(weights, tvs)), atol=1e-6, rtol=0)
    # Tuned like the others: alpha x beta on the grid, both drawn (with per-expert weights) in the random search.
    assert baselines.grid("lines_ta", 2, (0.25, 1.25), (0.2, 0.8), (0.0, 1.0)) == [
        {"alpha": 0.25, "beta": 0.0}, {"alpha": 0.25, "beta": 1.0}, {"alpha": 1.25, "beta": 0.0}, {"alpha": 1.25, "beta": 1.0}]
    drawn = baselines.random_configs("lines_ties", 3, 3, (0.25, 1.25), (0.2, 0.8), (0.5, 1.5), 0, (0.0, 1.0))
    assert all({"alpha", "beta", "weights"} == set(c) and 0.25 <= c["alpha"] <= 1.25 and 0 <= c["beta"] <= 1 for c in drawn)


def test_the_shipped_lines_program_is_the_lines_baseline(deep_world):
    """selfdev/algorithms/lines.py (a two-argument program, run in the sandbox) merges as the baseline
    lines_ta at its alpha 0.3 and beta 0.5."""
    from selfdev.algorithms import reference_paths
    from selfdev.config import sandbox_limits
    from selfdev.scoring.programs import world_inputs
    from selfdev.study import baselines
    from selfdev.world.taskvectors import TaskVectorSet, merge_in_sandbox

    tvs = TaskVectorSet(world_inputs(deep_world, "dev")["task_vectors"])
    out = merge_in_sandbox(reference_paths()["lines"].read_text(), tvs, sandbox_limits(deep_world, "merge"), n_layers=3)
    assert out.ok, out.reason
    for name in tvs.names:
        ref = baselines.mergekit_delta("lines_ta", torch.zeros(tvs.shape(name)), tvs.get(name),
                                       {"alpha": 0.3, "beta": 0.5}, name, n_layers=3)
        torch.testing.assert_close(out.merged[name], ref, atol=1e-6, rtol=0)


def test_the_factory_prompt_and_library_show_the_context():
    from selfdev.loop.factory import load_prompt, program_from
    from selfdev.loop.library import EXAMPLE_BODIES

    prompt = load_prompt(REPO / "config" / "prompts" / "factory.txt")
    assert "def merge(task_vectors: list[torch.Tensor], context: dict)" in prompt
    users = [b for b in EXAMPLE_BODIES if "context[" in b]
    assert users
    verdicts = [check_program(program_from(prompt, b), LIMITS, 2, 4) for b in users]
    assert all(v.executable and v.info["layer_aware"] for v in verdicts), [v.reason for v in verdicts]
