import json
from pathlib import Path

import pytest
import torch

from selfdev.algorithms import reference_paths
from selfdev.scoring.programs import make_scorer, score_file, world_inputs
from selfdev.config import expert_names
from selfdev.paths import Paths
from selfdev.world.taskvectors import TaskVectorSet, merge_in_sandbox, write_task_vector
from selfdev.world.report import report_targets, world_report


def test_world_files_are_real_checkpoints(micro_world):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Paths(micro_world["results"])
    model = AutoModelForCausalLM.from_pretrained(p.seed_dir())
    tok = AutoTokenizer.from_pretrained(p.seed_dir())
    assert model.config.model_type == "llama" and tok.decode(tok("pen 4 , 3+4=7")["input_ids"]) == "pen 4 , 3 + 4 = 7"
    for e in expert_names(micro_world):
        with safe_open(p.task_vector(e), "pt") as fh:
            names = list(fh.keys())
        assert names and all(".mlp." in n for n in names)
    rows = [json.loads(l) for l in Path(p.data("dev")).read_text().splitlines()]
    assert len(rows) == 20 and all(r["answer"].splitlines()[-1].startswith("#### ") for r in rows)


def test_task_vector_is_expert_minus_seed(micro_world):
    from transformers import AutoModelForCausalLM

    p = Paths(micro_world["results"])
    seed = dict(AutoModelForCausalLM.from_pretrained(p.seed_dir()).named_parameters())
    expert = dict(AutoModelForCausalLM.from_pretrained(p.expert_dir("price")).named_parameters())
    tvs = TaskVectorSet([p.task_vector("price")])
    name = tvs.names[0]
    assert (tvs.get(name)[0] - (expert[name] - seed[name])).abs().max() < 1e-6


def test_sandboxed_merge_equals_in_process_math(micro_world):
    p = Paths(micro_world["results"])
    tvs = TaskVectorSet([p.task_vector(e) for e in expert_names(micro_world)])
    from selfdev.config import sandbox_limits

    out = merge_in_sandbox(reference_paths()["mean"].read_text(), tvs, sandbox_limits(micro_world, "merge"))
    assert out.ok, out
    for name in tvs.names:
        assert (out.merged[name] - torch.stack(tvs.get(name)).mean(0)).abs().max() < 1e-7
    bad = merge_in_sandbox("def merge(t):\n    return t[0] * float('inf')\n", tvs, sandbox_limits(micro_world, "merge"))
    assert not bad.ok and bad.category == "non_finite" and bad.merged == {}


@pytest.mark.parametrize("name", sorted(reference_paths()))
def test_reference_algorithms_score(micro_world, name):
    files = world_inputs(micro_world, "dev")
    rec = score_file(reference_paths()[name], micro_world, "dev", files["seed_dir"], files["task_vectors"], files["rows"], files["shots"])
    assert rec["executable"] and rec["n"] == 20
    # The sandboxed program scores exactly what the same merge computed in-process scores, row by row.
    from selfdev.study.stats import from_bits
    from selfdev.study.baselines import mergekit_delta

    scorer = make_scorer(micro_world, files["seed_dir"], files["task_vectors"], files["rows"], files["shots"])
    math = {"mean": lambda n: torch.stack(scorer.tvs.get(n)).mean(0),
            "task_arithmetic": lambda n: 0.5 * torch.stack(scorer.tvs.get(n)).sum(0),
            "ties": lambda n: mergekit_delta("ties", scorer.base(n), scorer.tvs.get(n), {"density": 0.5, "lambda": 1.0}),
            # The 2025 baselines' programs, run in-process by the baseline plumbing (lambda 1 = the file's alpha).
            "iso_c": lambda n: mergekit_delta("iso_c", scorer.base(n), scorer.tvs.get(n), {"lambda": 1.0}),
            "tsv_merge": lambda n: mergekit_delta("tsv", scorer.base(n), scorer.tvs.get(n), {"lambda": 1.0}),
            # The two-argument program: LiNeS on Task Arithmetic at the file's alpha and beta.
            "lines": lambda n: mergekit_delta("lines_ta", scorer.base(n), scorer.tvs.get(n), {"alpha": 0.3, "beta": 0.5},
                                              n, n_layers=scorer.n_layers)}
    expected = scorer.evaluate_merged({n: math[name](n) for n in scorer.tvs.names})
    assert from_bits(rec["correct"]) == list(expected.correct)
    assert rec["accuracy"] == expected.accuracy == sum(expected.correct) / 20
    assert set(rec["timings"]) >= {"probe_s", "merge_s", "generation_s", "checking_s"}


def test_zero_merge_scores_exactly_m0_and_restores_weights(micro_world):
    files = world_inputs(micro_world, "dev")
    scorer = make_scorer(micro_world, files["seed_dir"], files["task_vectors"], files["rows"], files["shots"])
    m0 = scorer.evaluate_merged(None)
    # What the model writes, not only its accuracy (M0 may score 0 on the micro world).
    zero = scorer.evaluate_merged({n: torch.zeros(scorer.tvs.shape(n)) for n in scorer.tvs.names})
    assert zero.completions == m0.completions and len(m0.completions) == len(m0.correct) > 0
    assert scorer.score_program("import torch\ndef merge(t):\n    return torch.zeros_like(t[0])\n").accuracy == m0.accuracy
    # A destructive merge changes what the model writes; M0's weights and outputs come back afterwards.
    broken = scorer.evaluate_merged({n: 50 * scorer.tvs.get(n)[0] for n in scorer.tvs.names})
    assert broken.completions != m0.completions
    params = dict(scorer.model.named_parameters())
    assert all(torch.equal(params[n], scorer.base(n)) for n in scorer.tvs.names)
    assert scorer.evaluate_merged(None).completions == m0.completions


def test_broken_program_is_not_scored(micro_world):
    files = world_inputs(micro_world, "dev")
    rec = score_file(_write(micro_world, "def merge(t):\n    return t[0][:2]\n"), micro_world, "dev",
                     files["seed_dir"], files["task_vectors"], files["rows"], files["shots"])
    assert not rec["executable"] and rec["category"] == "wrong_shape" and rec["accuracy"] is None


def _write(cfg, src):
    path = Path(cfg["results"]).parent / "prog.py"
    path.write_text(src)
    return path


def test_world_report_has_targets(micro_world):
    p = Paths(micro_world["results"])
    experts = {e: p.expert_dir(e) for e in expert_names(micro_world)}
    rep = world_report(micro_world, p.seed_dir(), experts,
                       [p.task_vector(e) for e in sorted(experts)], p.data("dev"), p.data("shots"))
    methods = [r["method"] for r in rep["rows"]]
    assert methods.count("expert") == 2 and methods.count("task_arithmetic") == 2 and methods.count("ties") == 1
    assert rep["targets"] == report_targets(rep["rows"], None)  # the report's targets are its rows'
    assert rep["n_dev"] == 20 and all(0 <= r["dev_accuracy"] <= 1 for r in rep["rows"])


def test_world_targets_from_rows():
    """The figures and targets of a world, from rows with distinct accuracies (the micro world above
    scores too little to tell them apart)."""
    rows = [{"method": "seed", "params": {}, "dev_accuracy": 0.05},
            {"method": "expert", "params": {"name": "a"}, "dev_accuracy": 0.30},
            {"method": "expert", "params": {"name": "b"}, "dev_accuracy": 0.34},
            {"method": "average", "params": {}, "dev_accuracy": 0.36},
            {"method": "task_arithmetic", "params": {"lambda": 0.5}, "dev_accuracy": 0.40},
            {"method": "ties", "params": {"density": 0.2, "lambda": 1.5}, "dev_accuracy": 0.55},
            {"method": "ties", "params": {"density": 0.5, "lambda": 1.0}, "dev_accuracy": 0.10}]
    t = report_targets(rows, 0.58)
    assert (t["seed"], t["best_expert"], t["best_ta_ties"], t["best_ta_ties_method"]) == (0.05, 0.34, 0.55, "ties")
    assert t["best_ta_ties_params"] == {"density": 0.2, "lambda": 1.5}
    assert t["gain_over_seed_points"] == pytest.approx(50.0) and t["over_expert_points"] == pytest.approx(21.0)
    assert t["spread_points"] == pytest.approx(45.0) and t["worst_merge"] == 0.10
    assert t["headroom_points"] == pytest.approx(3.0)
    assert (t["target_gain_met"], t["target_over_expert_met"], t["target_headroom_met"]) == (True, True, False)
    assert t["stretch_merge_beats_every_expert"] is True
    weak = report_targets([{**r, "dev_accuracy": 0.31} if r["method"] == "ties" else r for r in rows], None)
    assert weak["best_ta_ties_method"] == "task_arithmetic" and weak["over_expert_points"] == pytest.approx(6.0)
    assert weak["target_headroom_met"] is None and weak["headroom_points"] is None


def test_missing_world_is_a_clear_error(tmp_path, micro_world):
    cfg = dict(micro_world, results=str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="build the world first"):
        world_inputs(cfg, "dev")
    with pytest.raises(ValueError, match="split"):
        world_inputs(micro_world, "train")


def test_task_vector_file_checks(tmp_path, micro_world):
    p = Paths(micro_world["results"])
    with pytest.raises(ValueError, match="selects no floating parameter"):
        write_task_vector(p.seed_dir(), p.expert_dir("price"), tmp_path / "x.safetensors", ["nothing-matches"])
    from safetensors.torch import save_file
    import torch

    save_file({"a": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ValueError, match="not a selfdev task-vector file"):
        TaskVectorSet([tmp_path / "foreign.safetensors"])


# The default M0's weights after SEED_DIGEST_STEPS training steps under selfdev's numerics settings
# (selfdev.PINNED_CPU_ENV), printed on this project's machine (AMD EPYC, Zen 4, AVX-512). An Intel Xeon
# computed other digests under every setting measured (benchmarks/cpu_pinning.py; docs/worlds.md, "Which
# machines compute the same numbers").
SEED_DIGEST_STEPS = 10
SEED_DIGEST = "a43bc2399ebb7962"


def test_default_seed_model_digest_is_this_commits():
    """One set of numbers per commit: the default M0, trained for a few steps in a fresh process (so the
    numerics settings that importing selfdev applies are in force), has the digest in the repository.
    Fails on any machine whose numerics differ, and whenever the default world recipe changes (then the
    constant is updated with the recipe, from this machine)."""
    import os
    import subprocess
    import sys

    import selfdev

    env = {k: v for k, v in os.environ.items() if k not in (*selfdev.PINNED_CPU_ENV, "SELFDEV_NATIVE_CPU")}
    prompt = Path(__file__).resolve().parents[1] / "config" / "prompts" / "toy.yaml"
    code = ("import json, selfdev\nfrom selfdev.world.build import seed_weights_digest\n"
            f"print(json.dumps(seed_weights_digest(steps={SEED_DIGEST_STEPS}, prompt={str(prompt)!r})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["loss_last"] < 4.5  # it trained (an untrained model scores ~5.0, ln of the vocabulary)
    assert got["weights"] == SEED_DIGEST, (
        f"this machine trains another default M0 ({got['weights']} != {SEED_DIGEST}): its CPU numerics differ "
        "from the machine the repository's figures come from (see docs/worlds.md, 'Which machines compute the same numbers')")


def test_training_is_bit_identical_at_one_and_two_threads():
    """The training rules' threads (world.seed_training.threads, loop.threads) default to 1 so that no
    job waits for both cores; that moves only the schedule if training gives the same bits at any
    thread count (with selfdev's pinned CPU numerics). A Llama-shaped model, AdamW, 8 steps."""
    from transformers import LlamaConfig, LlamaForCausalLM

    def train(threads: int) -> list:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))
        init = [p.detach().clone() for p in model.parameters()]
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(1)
        for _ in range(8):
            x = torch.randint(0, 50, (16, 48), generator=gen)
            model(input_ids=x, labels=x).loss.backward()
            opt.step()
            opt.zero_grad()
        trained = [p.detach().clone() for p in model.parameters()]
        assert not all(torch.equal(a, b) for a, b in zip(init, trained))  # the steps moved the weights
        return trained

    before = torch.get_num_threads()
    try:
        one, two = train(1), train(2)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(one, two))


def test_dev_and_test_questions_are_all_different_and_balanced():
    """No question repeats within dev or test, test never asks a dev question, every skill gets its
    count; a size larger than the questions a skill has fails naming the key."""
    from selfdev.world import toydata
    from selfdev.world.build import split_rows

    skills = ["price", "weight", "distance", "pages"]
    data = {"dev_per_skill": 100, "test_per_skill": 500}
    dev = split_rows("dev", seed=3, skills=skills, data=data)
    test = split_rows("test", seed=3, skills=skills, data=data)
    dev_q, test_q = [r["question"] for r in dev], [r["question"] for r in test]
    assert len(set(dev_q)) == len(dev_q) == 400
    assert len(set(test_q)) == len(test_q) == 2000
    assert not set(dev_q) & set(test_q)
    assert [r["skill"] for r in test[:8]] == skills * 2  # interleaved: any prefix stays balanced
    assert {s: sum(r["skill"] == s for r in test) for s in skills} == dict.fromkeys(skills, 500)
    # the same seed draws the same split; another seed another one
    assert split_rows("test", seed=3, skills=skills, data=data) == test
    assert split_rows("test", seed=4, skills=skills, data=data) != test
    too_many = toydata.distinct_questions() - 99
    with pytest.raises(ValueError, match="world.data.test_per_skill"):
        split_rows("test", seed=3, skills=skills, data={"dev_per_skill": 100, "test_per_skill": too_many})


def test_vllm_workers_start_without_the_pinning_selfdev_set(monkeypatch):
    """`unpinned_cpu_env` (around every LLM(...)) takes away the pins importing selfdev set, and no
    others: a value the user set stays; SELFDEV_NATIVE_CPU=1 keeps a worker that imports selfdev from
    pinning again; everything comes back after the block."""
    import os

    import selfdev

    monkeypatch.setattr(selfdev, "PINNED_HERE", ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"))
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")  # the user's own
    monkeypatch.delenv("SELFDEV_NATIVE_CPU", raising=False)
    keys = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "SELFDEV_NATIVE_CPU", "VLLM_CPU_KVCACHE_SPACE")
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    with selfdev.unpinned_cpu_env(VLLM_CPU_KVCACHE_SPACE="2"):
        inside = {k: os.environ.get(k) for k in keys}
    assert inside == {"ATEN_CPU_CAPABILITY": None, "ONEDNN_MAX_CPU_ISA": None, "MKL_CBWR": "COMPATIBLE",
                      "SELFDEV_NATIVE_CPU": "1", "VLLM_CPU_KVCACHE_SPACE": "2"}
    after = {k: os.environ.get(k) for k in keys}
    assert after == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE",
                     "SELFDEV_NATIVE_CPU": None, "VLLM_CPU_KVCACHE_SPACE": None}
