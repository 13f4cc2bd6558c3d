"""Evolutionary prompting: parent selection, prompt building, per-row prompts in sampling."""

import json
import random

import pytest

from conftest import REPO
from selfdev.loop import evolve
from selfdev.loop.factory import extract_body, load_prompt, program_from
from selfdev.sandbox.probe import check_program
from conftest import sandbox

PROMPT = load_prompt(REPO / "config" / "prompts" / "factory.txt")


def _prog(i, acc, body=None, behaviour=None):
    return {"candidate_id": f"dpo-s0-it1-{i:05d}", "iteration": 1, "code_hash": f"h{i}", "status": "new",
            "executable": True, "dev_accuracy": acc, "behaviour": behaviour or f"dpo-s0-it1-{i:05d}",
            "body": body or f"    return {i / 10} * sum(task_vectors)"}


def test_archive_keeps_one_program_per_behaviour_best_first():
    rows = [_prog(0, 0.4), _prog(1, 0.6), _prog(2, 0.6, behaviour="dpo-s0-it1-00001"), _prog(3, 0.2),
            {**_prog(4, None), "dev_accuracy": None}, {**_prog(5, 0.9), "executable": False}]
    arch = evolve.archive([rows[:3], rows[3:]])
    assert [p["candidate_id"] for p in arch] == ["dpo-s0-it1-00001", "dpo-s0-it1-00000", "dpo-s0-it1-00003"]


def test_parents_are_distinct_sorted_worst_to_best_and_seeded():
    arch = [_prog(i, acc) for i, acc in enumerate([0.9, 0.5, 0.4, 0.1])]
    a = evolve.select_parents(arch, 3, 0.05, random.Random(7))
    assert len({p["candidate_id"] for p in a}) == 3
    assert [p["dev_accuracy"] for p in a] == sorted(p["dev_accuracy"] for p in a)
    assert a == evolve.select_parents(arch, 3, 0.05, random.Random(7))
    assert evolve.select_parents(arch, 9, 0.05, random.Random(0)) == sorted(arch, key=lambda p: p["dev_accuracy"])
    assert evolve.select_parents([], 2, 0.05, random.Random(0)) == []
    # Temperature: at 0.05 the best program (0.9) is in almost every draw of 1; at a high temperature the draw
    # is near uniform. Counts over 2,000 seeded draws.
    def share_of_best(t):
        return sum(evolve.select_parents(arch, 1, t, random.Random(s))[0]["dev_accuracy"] == 0.9
                   for s in range(2000)) / 2000
    assert share_of_best(0.05) > 0.99 and 0.2 < share_of_best(100.0) < 0.3
    assert arch == [_prog(i, acc) for i, acc in enumerate([0.9, 0.5, 0.4, 0.1])]  # not mutated


def test_evolve_prompt_shows_parents_with_scores_and_ends_on_the_docstring():
    parents = [_prog(3, 0.2, "    return 0.3 * sum(task_vectors)"),
               _prog(1, 0.55, "    s = torch.stack(task_vectors)\n    return s.mean(dim=0)")]
    text = evolve.evolve_prompt(PROMPT, parents)
    assert text.endswith('"""') and text.startswith(PROMPT.split("\ndef merge")[0].rstrip())
    # The building blocks' import stays (every program file has it, so a parent that calls one runs).
    assert "from selfdev_blocks import ties_merge, tsv_merge" in text
    assert "def merge_v0(task_vectors: list[torch.Tensor], context: dict) -> torch.Tensor:" in text
    assert text.index("dev accuracy 20.0%") < text.index("dev accuracy 55.0%") < text.index("def merge_v2(")
    # each parent's per-skill dev accuracy, as the scores table stores it (JSON), skills sorted
    skilled = [{**parents[0], "per_skill": json.dumps({"weight": 0.1, "price": 0.75})}, parents[1]]
    text2 = evolve.evolve_prompt(PROMPT, skilled)
    assert '"""Version 0: dev accuracy 20.0% (price 75.0, weight 10.0)."""' in text2
    assert '"""Version 1: dev accuracy 55.0%."""' in text2  # no per-skill scores: none shown
    assert "    return 0.3 * sum(task_vectors)\n" in text and "improves on merge_v1" in text
    assert "merge_task_arithmetic" not in text  # the base prompt's example makes way for the parents
    assert evolve.evolve_prompt(PROMPT, []) == PROMPT
    # A completed body becomes a program of the *base* prompt: runnable on its own, and a body that calls a
    # parent does not run.
    limits = sandbox(wall_s=5, cpu_s=5, memory_mb=1024)
    ok = extract_body("\n    return 0.4 * sum(task_vectors)\n\n\ndef other():")
    assert check_program(program_from(PROMPT, ok), limits).executable
    calls_parent = extract_body("\n    return merge_v1(task_vectors)\n")
    assert not check_program(program_from(PROMPT, calls_parent), limits).executable
    calls_block = extract_body("\n    return 0.5 * tsv_merge(task_vectors) + ties_merge(task_vectors, 0.3)\n")
    assert check_program(program_from(PROMPT, calls_block), limits).executable
    with pytest.raises(ValueError, match="def merge"):
        evolve.evolve_prompt("# no function here", parents)


def test_prompt_groups_cover_every_row_once():
    groups = evolve.prompt_groups(10, 4)
    assert [list(g) for g in groups] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_sampling_with_one_prompt_per_row(tiny_factory):
    """Rows of one batch may carry different prompts (left-padded). The same prompt for every row gives
    exactly the completions of the single-prompt call (the base arms' candidates do not change), and a
    padded row decodes greedily as it does alone."""
    from factory_fixture import MICRO_PROMPT
    from selfdev.loop.factory import SamplingSpec, load_factory, sample_completions

    model, tok = load_factory(tiny_factory)
    spec = SamplingSpec(n=4, temperature=0.7, top_p=0.95, max_new_tokens=60, batch_size=4, seed=5)
    single = [c for c, _ in sample_completions(model, tok, MICRO_PROMPT, spec)]
    assert [c for c, _ in sample_completions(model, tok, [MICRO_PROMPT] * 4, spec)] == single
    other = evolve.evolve_prompt(MICRO_PROMPT, [_prog(1, 0.4, "    return 0.5 * sum(task_vectors)")])
    assert len(tok(other)["input_ids"]) > len(tok(MICRO_PROMPT)["input_ids"])
    greedy = SamplingSpec(n=4, temperature=0.0, top_p=1.0, max_new_tokens=40, batch_size=4, seed=5)
    mixed = [c for c, _ in sample_completions(model, tok, [MICRO_PROMPT, other, MICRO_PROMPT, other], greedy)]
    alone_base = sample_completions(model, tok, MICRO_PROMPT, greedy)[0][0]
    alone_other = sample_completions(model, tok, other, greedy)[0][0]
    assert mixed == [alone_base, alone_other, alone_base, alone_other]
    with pytest.raises(ValueError, match="3 prompts for 4"):
        sample_completions(model, tok, [MICRO_PROMPT] * 3, spec)


def test_arms_file_layout_without_the_dpo_arm(tmp_path):
    """Evolve arms alone: iteration 1 (and evolve_dpo's first pairs and DPO) still live under dpo's
    folder, shared; evolve never trains; evolve_dpo trains from dpo's iteration-1 factory on; the
    budget-matched baselines and transfer follow the first arm."""
    import re
    import subprocess

    import yaml

    from conftest import snakemake_cmd

    cfg = {"study": {"arms": ["evolve", "evolve_dpo"]}, "loop": {"iterations": 3, "final_dpo": True}}
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(cfg))
    run = subprocess.run(snakemake_cmd(tmp_path, "-n", "--cores", "1"), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    outputs = set(re.findall(r"output: (\S+?)(?:,|\s)", run.stdout + run.stderr))
    loop = {o for o in outputs if o.startswith("results/loop/")}
    expected = {"results/loop/dpo/seed0/iter1/" + f for f in
                ("candidates.parquet", "executable.parquet", "scores.parquet", "pairs.jsonl", "factory/config.json")}
    for it in (2, 3):
        expected |= {f"results/loop/{arm}/seed0/iter{it}/{f}" for arm in ("evolve", "evolve_dpo")
                     for f in ("candidates.parquet", "executable.parquet", "scores.parquet")}
        expected |= {f"results/loop/evolve_dpo/seed0/iter{it}/{f}" for f in ("pairs.jsonl", "factory/config.json")}
    expected |= {f"results/loop/{arm}/seed0/summary.json" for arm in ("evolve", "evolve_dpo")}
    assert expected <= loop, sorted(expected - loop)
    assert not any(o.startswith(("results/loop/dpo/seed0/iter2", "results/loop/nodpo", "results/loop/evolve/seed0/iter1",
                                 "results/loop/evolve_dpo/seed0/iter1")) for o in loop), sorted(loop)
    assert not any("evolve/seed0" in o and ("pairs" in o or "factory" in o) for o in loop if "evolve_dpo" not in o)
    assert "results/final/baselines/main/tsv/budget.json" in outputs


def test_without_the_final_dpo_the_last_round_writes_pairs_but_trains_nothing(tmp_path):
    """`loop.final_dpo: false`: every DPO arm still trains after iterations 1 and 2 and writes the last
    iteration's pairs, but no job trains the checkpoint after iteration 3 (nothing samples from it)."""
    import re
    import subprocess

    import yaml

    from conftest import snakemake_cmd

    cfg = {"study": {"arms": ["dpo", "evolve_dpo"]}, "loop": {"iterations": 3, "final_dpo": False}}
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(cfg))
    run = subprocess.run(snakemake_cmd(tmp_path, "-n", "--cores", "1"), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    outputs = set(re.findall(r"output: (\S+?)(?:,|\s)", run.stdout + run.stderr))
    for arm in ("dpo", "evolve_dpo"):
        assert f"results/loop/{arm}/seed0/iter3/pairs.jsonl" in outputs
        assert f"results/loop/{arm}/seed0/iter2/factory/config.json" in outputs
        assert not any(o.startswith(f"results/loop/{arm}/seed0/iter3/factory") for o in outputs), arm
    assert "results/loop/dpo/seed0/iter1/factory/config.json" in outputs
