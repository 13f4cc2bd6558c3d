"""The study's numbers: bootstrap intervals, top-k selection, baselines tuning, arms, and mergekit."""

import json
import random
from pathlib import Path

import pytest

from selfdev.study import tables as study
from selfdev.study import baselines as tuning
from selfdev.study.stats import bits, bootstrap_mean, from_bits, paired_difference, unpaired_difference


# --- bootstrap ----------------------------------------------------------------------------------
def test_bootstrap_mean_interval_brackets_the_mean_and_shrinks_with_n():
    rng = random.Random(0)
    small = [rng.random() < 0.6 for _ in range(50)]
    large = [rng.random() < 0.6 for _ in range(2000)]
    s, l = bootstrap_mean(small, 2000, 0.95, 1), bootstrap_mean(large, 2000, 0.95, 1)
    assert s.low <= s.estimate <= s.high and l.low <= l.estimate <= l.high
    assert s.estimate == sum(small) / 50
    assert (l.high - l.low) < (s.high - s.low) / 3  # width ~ 1/sqrt(n): 40x the data, ~6x narrower
    # The normal approximation of a proportion's 95% interval: half-width 1.96 sqrt(p(1-p)/n).
    half = 1.96 * (l.estimate * (1 - l.estimate) / len(large)) ** 0.5
    assert abs((l.high - l.low) / 2 - half) < 0.25 * half


def test_bootstrap_degenerate_and_level():
    ones = bootstrap_mean([1, 1, 1, 1], 500)
    assert (ones.estimate, ones.low, ones.high) == (1.0, 1.0, 1.0)
    data = [i % 3 == 0 for i in range(300)]
    wide, narrow = bootstrap_mean(data, 2000, 0.99, 0), bootstrap_mean(data, 2000, 0.80, 0)
    assert wide.low < narrow.low and wide.high > narrow.high
    with pytest.raises(ValueError):
        bootstrap_mean([], 100)


def test_paired_difference_uses_the_pairing():
    rng = random.Random(3)
    a = [rng.random() < 0.5 for _ in range(400)]
    b = list(a)
    for i in range(0, 400, 20):  # b fixes 20 of a's problems: +5 points, highly correlated
        b[i] = True
    same = paired_difference(a, a, 1000)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0) and not same.excludes_zero()
    paired = paired_difference(b, a, 2000, seed=1)
    unpaired = unpaired_difference(b, a, 2000, seed=1)
    assert paired.estimate == pytest.approx(unpaired.estimate)
    assert paired.excludes_zero() and paired.low > 0
    assert (paired.high - paired.low) < (unpaired.high - unpaired.low) / 2
    with pytest.raises(ValueError):
        paired_difference([1, 0], [1], 100)


def test_bits_round_trip_and_errors():
    c = [True, False, False, True]
    assert bits(c) == "1001" and from_bits("1001") == c
    with pytest.raises(ValueError, match="0/1"):
        from_bits("10x1")


# --- selection on hand-made tables ---------------------------------------------------------------
def _score(cid, h, acc, executable=True, status="new", evaluated=100):
    return {"candidate_id": cid, "code_hash": h, "dev_accuracy": acc if executable else None,
            "executable": executable, "status": status, "iteration": int(cid.split("-it")[1][0]), "body": "",
            "code": "", "factory": "f", "dev_evaluated": evaluated if executable else None}


def test_top_programs_across_iterations_distinct_by_code():
    it1 = [_score("dpo-s0-it1-00000", "h1", 0.40), _score("dpo-s0-it1-00001", "h2", 0.55),
           _score("dpo-s0-it1-00002", "bad", None, executable=False), _score("dpo-s0-it1-00003", "h3", 0.55)]
    it2 = [_score("dpo-s0-it2-00000", "h2", 0.55, status="seen_before"), _score("dpo-s0-it2-00001", "h4", 0.60),
           _score("dpo-s0-it2-00002", "h5", 0.10)]
    top = study.top_programs([it1, it2], 3)
    assert [r["code_hash"] for r in top] == ["h4", "h2", "h3"]  # ties (0.55) broken by hash
    assert top[1]["candidate_id"] == "dpo-s0-it1-00001"  # the first scoring of h2, not its reuse
    assert len(study.top_programs([it1, it2], 50)) == 5
    assert study.top_programs([[]], 3) == []


def test_discovery_budget_counts_problem_evaluations_of_programs_scored_not_reused():
    run0 = [[_score("dpo-s0-it1-00000", "a", 0.1), _score("dpo-s0-it1-00001", "x", None, executable=False)],
            [_score("dpo-s0-it2-00000", "a", 0.1, status="seen_before"), _score("dpo-s0-it2-00001", "b", 0.2)]]
    run1 = [[_score("dpo-s1-it1-00000", "c", 0.1)], [_score("dpo-s1-it2-00000", "d", 0.1),
                                                     _score("dpo-s1-it2-00001", "e", 0.1, evaluated=30),
                                                     _score("dpo-s1-it2-00002", "f", 0.1, evaluated=20)]]
    assert tuning.discovery_budget([run0]) == 200
    assert tuning.discovery_budget([run1]) == 250  # racing dropped e and f: the problems they saw count
    assert tuning.discovery_budget([run0, run1]) == 225
    with pytest.raises(ValueError):
        tuning.discovery_budget([])


def test_budgeted_raced_tuning_spends_the_budget_and_keeps_the_best():
    """A random search within a problem-evaluation budget, each configuration raced against the best
    so far, picks the configuration exhaustive tuning of the same configurations picks."""
    import itertools
    import random as rnd

    from selfdev.scoring.racing import Race, chunk_plan, race_program

    rng = rnd.Random(4)
    n = 40
    plan = chunk_plan([rng.randint(1, 30) for _ in range(n)], 5, seed=2)
    bits = {i: [int(rng.random() < p) for _ in range(n)] for i, p in enumerate([rng.random() for _ in range(200)])}
    race = Race(n, [(1, [])], seed=2)

    def raced(c):
        correct, evaluated = race_program(race, plan, lambda chunk: [bits[c["i"]][j] for j in chunk])
        hits = sum(1 for x in correct if x)
        return hits / evaluated, evaluated, n

    stream = ({"i": i} for i in itertools.count())
    rows, best = tuning.tune("task_arithmetic", stream, raced, budget=400)
    spent = sum(r["dev_evaluated"] for r in rows)
    assert 400 <= spent < 400 + n and len(rows) > 400 // n  # racing buys more configurations than 10
    assert any(r["partial"] for r in rows)
    tried = [r["params"]["i"] for r in rows]
    exhaustive = max(tried, key=lambda i: (sum(bits[i]), -i))  # first of the best on all of dev
    assert best["params"]["i"] == exhaustive and best["dev_accuracy"] == sum(bits[exhaustive]) / n
    # Without racing the same budget buys exactly budget / n configurations.
    rows, _ = tuning.tune("task_arithmetic", ({"i": i} for i in itertools.count()),
                          lambda c: (sum(bits[c["i"]]) / n, n, n), budget=400)
    assert len(rows) == 10


def test_grid_and_random_configs():
    assert tuning.grid("task_arithmetic", 3, [0.5, 1.5], [0.2, 0.8]) == [{"lambda": 0.5}, {"lambda": 1.0},
                                                                          {"lambda": 1.5}]
    ties = tuning.grid("ties", 2, [0.5, 1.0], [0.2, 0.8])
    assert ties == [{"density": 0.2, "lambda": 0.5}, {"density": 0.2, "lambda": 1.0},
                    {"density": 0.8, "lambda": 0.5}, {"density": 0.8, "lambda": 1.0}]
    assert tuning.grid("model_stock", 4, [0, 1], [0.1, 1]) == [{}]
    a = tuning.random_configs("dare_ties", 20, 3, [0.25, 1.25], [0.2, 0.8], [0.5, 1.5], seed=7)
    assert a == tuning.random_configs("dare_ties", 20, 3, [0.25, 1.25], [0.2, 0.8], [0.5, 1.5], seed=7)
    assert len(a) == 20 and len({json.dumps(c) for c in a}) == 20
    assert all(0.25 <= c["lambda"] <= 1.25 and 0.2 <= c["density"] <= 0.8 and len(c["weights"]) == 3
               and all(0.5 <= w <= 1.5 for w in c["weights"]) for c in a)
    assert not tuning.searchable("model_stock") and tuning.searchable("linear")


def test_tune_picks_the_first_best():
    scores = {0.5: 0.3, 1.0: 0.6, 1.5: 0.6}
    rows, best = tuning.tune("task_arithmetic", [{"lambda": x} for x in scores], lambda c: scores[c["lambda"]])
    assert [r["dev_accuracy"] for r in rows] == [0.3, 0.6, 0.6] and best["params"] == {"lambda": 1.0}


def _final(arm, seed, rank, correct, dev=0.5):
    return {"arm": arm, "seed": seed, "rank": rank, "candidate_id": f"{arm}-s{seed}-it1-{rank:05d}",
            "code_hash": f"{arm}{seed}{rank}", "dev_accuracy": dev, "executable": True,
            "test_accuracy": sum(correct) / len(correct), "test_low": 0.0, "test_high": 1.0,
            "test_correct": bits(correct)}


def test_arms_comparison_and_headline_on_hand_made_tables():
    n = 200
    base = [i % 2 == 0 for i in range(n)]                      # 50%
    better = [c or i % 10 == 1 for i, c in enumerate(base)]     # 60%
    finals = [_final("dpo", 0, 1, better), _final("nodpo", 0, 1, base)]
    runs = {"dpo": {0: [[_score("dpo-s0-it1-00000", "a", 0.5), _score("dpo-s0-it1-00001", "b", 0.7)]]},
            "nodpo": {0: [[_score("dpo-s0-it1-00000", "c", 0.3), _score("dpo-s0-it1-00001", "d", 0.1)]]}}
    arms = study.arms_comparison(finals, runs, 1000, 0.95)
    v = arms["dpo_vs_nodpo"]
    assert v["available"] and v["test_difference"]["estimate"] == pytest.approx(0.10)
    assert v["test_statement"].startswith("DPO beat no-DPO") and "excludes 0" in v["test_statement"]
    assert v["dev_statement"].startswith("DPO beat no-DPO")  # 0.6 vs 0.2 mean dev
    assert arms["arms"]["dpo"]["iterations"][0]["dev_mean"] == pytest.approx(0.6)
    assert arms["arms"]["nodpo"]["iterations"][0]["best_so_far_mean"] == pytest.approx(0.3)
    assert "Did DPO beat no-DPO?" in study.arms_markdown(arms)
    only = study.arms_comparison(finals[:1], {"dpo": runs["dpo"]}, 500, 0.95)
    assert only["dpo_vs_nodpo"] == {"available": False}

    singles = [{"family": "main", "rows": [{"model": "M0", "dev_accuracy": 0.4, "test_accuracy": 0.5,
                                            "test_correct": bits(base)}]}]
    rec = {"family": "main", "method": "ties", "mode": "budget", "n_evaluations": 9, "dev_problem_evaluations": 900, "best_params": {"lambda": 1},
           "dev_accuracy": 0.6, "test_accuracy": 0.5, "test_correct": bits(base)}
    rows = study.baseline_rows([rec], singles, 500, 0.95)
    assert [r["model"] for r in rows] == ["M0", "merged"] and rows[1]["test_low"] < 0.5 < rows[1]["test_high"]
    # A second budget-matched baseline: better on dev, worse on test. Chosen by dev it is the
    # comparison; chosen by test (conservative) the other one is.
    worse = [c and i % 4 != 0 for i, c in enumerate(base)]  # 25%
    rec2 = {**rec, "method": "linear", "dev_accuracy": 0.7, "test_accuracy": 0.25, "test_correct": bits(worse)}
    rows = study.baseline_rows([rec, rec2], singles, 500, 0.95)
    head = study.headline(finals, rows, 1000, 0.95)
    assert head["vs_best_budget"]["method"] == "linear" and head["vs_best_budget"]["target_met"]
    assert head["vs_best_budget"]["margin"]["estimate"] == pytest.approx(0.35)
    assert head["vs_test_best_budget"]["method"] == "ties"
    assert head["vs_test_best_budget"]["margin"]["estimate"] == pytest.approx(0.10)
    assert "vs_best_grid" not in head
    tie = study._statement("x", paired_difference(base, base, 200))
    assert tie.startswith("DPO did not measurably beat no-DPO") and "includes 0" in tie
    worse_diff = study._statement("x", paired_difference(base, better, 500))
    assert worse_diff.startswith("DPO did worse than no-DPO")


# --- mergekit --------------------------------------------------------------------------------------
def _tiny_pair(root: Path):
    """M0 and one expert (M0 with its MLP weights moved), saved as HF checkpoints."""
    import torch

    from selfdev.world.chartok import build_char_tokenizer
    from selfdev.lm import TinyLlamaSpec, build_tiny_llama

    tok = build_char_tokenizer()
    seed = build_tiny_llama(TinyLlamaSpec(32, 64, 1, 2), tok, 0)
    seed.save_pretrained(root / "m0")
    tok.save_pretrained(root / "m0")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in seed.named_parameters():
            if ".mlp." in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    seed.save_pretrained(root / "expert")
    tok.save_pretrained(root / "expert")
    return root / "m0", root / "expert"


def test_mergekit_task_arithmetic_equals_selfdev_on_a_tiny_checkpoint_pair(tmp_path):
    import torch
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    from safetensors.torch import load_file

    from selfdev.algorithms import reference_paths
    from selfdev.config import validate_config, sandbox_limits
    from selfdev.world.taskvectors import TaskVectorSet, merge_in_sandbox, write_task_vector

    m0, expert = _tiny_pair(tmp_path)
    lam = 0.5  # the shipped task_arithmetic.py program uses lambda 0.5
    cfg = {"merge_method": "task_arithmetic", "base_model": str(m0), "dtype": "float32",
           "models": [{"model": str(expert), "parameters": {"weight": lam}}]}
    run_merge(MergeConfiguration.model_validate(yaml.safe_load(yaml.safe_dump(cfg))), str(tmp_path / "mk"),
              MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True))
    merged = {}
    for f in sorted((tmp_path / "mk").glob("*.safetensors")):
        merged.update(load_file(f))
    base = load_file(m0 / "model.safetensors")

    write_task_vector(m0, expert, tmp_path / "tv.safetensors", [r"\.mlp\."])
    tvs = TaskVectorSet([tmp_path / "tv.safetensors"])
    ours_math = {n: lam * torch.stack(tvs.get(n)).sum(0) for n in tvs.names}
    program = Path(reference_paths()["task_arithmetic"]).read_text()
    limits = sandbox_limits(validate_config({"sandbox": {"probe_wall_s": 5, "merge_wall_s": 10, "cpu_s": 10,
                                                         "memory_mb": 1024}}), "merge")
    outcome = merge_in_sandbox(program, tvs, limits)
    assert outcome.ok, outcome.reason
    adapter = {n: tuning.mergekit_delta("task_arithmetic", base[n], tvs.get(n), {"lambda": lam}, n)
               for n in tvs.names}
    assert tvs.names and all(n in merged for n in tvs.names)
    for n in tvs.names:
        mk_delta = merged[n].float() - base[n].float()
        assert mk_delta.abs().max() > 1e-3, n  # the expert really moved this tensor
        torch.testing.assert_close(outcome.merged[n], mk_delta, atol=1e-6, rtol=0)
        torch.testing.assert_close(ours_math[n], mk_delta, atol=1e-6, rtol=0)
        torch.testing.assert_close(adapter[n], mk_delta, atol=1e-6, rtol=0)
    # Parameters outside the MLP are M0's in every merge.
    for n, t in base.items():
        if ".mlp." not in n:
            torch.testing.assert_close(merged[n].float(), t.float(), atol=1e-6, rtol=0)


def test_mergekit_adapter_matches_the_published_formulas():
    import torch

    from selfdev.algorithms import reference_paths

    # The shipped TIES program (density 0.5, lambda 1.0), run in-process here: trusted test code.
    namespace: dict = {}
    exec(reference_paths()["ties"].read_text(), namespace)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 10, generator=g)
    tvs = [0.1 * torch.randn(6, 10, generator=g) for _ in range(3)]
    ties = tuning.mergekit_delta("ties", base, tvs, {"density": 0.5, "lambda": 1.0})
    torch.testing.assert_close(ties, namespace["merge"](tvs), atol=1e-6, rtol=0)
    assert ties.abs().max() > 0 and (ties == 0).any()  # trimmed, not all zero
    mean = torch.stack(tvs).mean(0)
    torch.testing.assert_close(tuning.mergekit_delta("linear", base, tvs, {}), mean, atol=1e-6, rtol=0)
    w = [0.5, 1.0, 2.0]
    weighted = tuning.mergekit_delta("task_arithmetic", base, tvs, {"weights": w, "lambda": 1.0})
    torch.testing.assert_close(weighted, sum(wi * t for wi, t in zip(w, tvs)), atol=1e-6, rtol=0)
    a = tuning.mergekit_delta("dare_ties", base, tvs, {"density": 0.5}, seed=3)
    b = tuning.mergekit_delta("dare_ties", base, tvs, {"density": 0.5}, seed=3)
    c = tuning.mergekit_delta("dare_ties", base, tvs, {"density": 0.5}, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    stock = tuning.mergekit_delta("model_stock", base, tvs, {})
    assert stock.shape == base.shape and torch.isfinite(stock).all()
    with pytest.raises(ValueError, match="unknown baseline"):
        tuning.mergekit_delta("slerp3", base, tvs, {})


def test_study_html_renders_tables_and_code_and_shows_raw_html_as_text():
    from selfdev.study.report import markdown_to_html

    page = markdown_to_html("# Study\n\n| a | b |\n|---|---|\n| 1 | <script>x()</script> |\n\n```python\nx < 1\n```\n")
    assert "<h1>Study</h1>" in page and "<th>a</th>" in page and "<td>1</td>" in page
    assert "<script>" not in page and "&lt;script&gt;x()&lt;/script&gt;" in page
    assert "<pre><code" in page and "x &lt; 1" in page


def test_headline_picks_the_best_arm_per_seed_and_states_the_gap_closed():
    n = 100
    ta_correct = [i < 50 for i in range(n)]      # 50%
    good = [i < 62 for i in range(n)]            # 62%
    weak = [i < 40 for i in range(n)]            # 40%
    finals = [_final("dpo", 0, 1, weak, dev=0.5), _final("evolve", 0, 1, good, dev=0.6),
              _final("dpo", 1, 1, good, dev=0.7), _final("evolve", 1, 1, weak, dev=0.4)]
    singles = [{"family": "main", "rows": [{"model": "multitask", "dev_accuracy": 0.7, "test_accuracy": 0.7,
                                            "test_correct": bits([i < 70 for i in range(n)])}]}]
    recs = [{"family": "main", "method": "task_arithmetic", "mode": "grid", "n_evaluations": 4, "dev_problem_evaluations": 400,
             "best_params": {"lambda": 0.5}, "dev_accuracy": 0.55, "test_accuracy": 0.5, "test_correct": bits(ta_correct)}]
    rows = study.baseline_rows(recs, singles, 300, 0.95)
    h = study.headline(finals, rows, 300, 0.95)
    # By dev over arms: seed 0's best is evolve's (dev 0.6), seed 1's dpo's (dev 0.7), both at 62% on test.
    assert (h["best_discovered"]["arm"], h["best_discovered"]["seed"]) == ("evolve", 0)
    assert [(s["seed"], s["arm"]) for s in h["per_seed"]["seeds"]] == [(0, "evolve"), (1, "dpo")]
    assert h["per_seed"]["seeds_beating"] == 2 and h["per_seed"]["baseline"]["mode"] == "grid"
    ub = h["upper_bound"]
    assert ub["fraction_closed"] == pytest.approx((0.62 - 0.5) / (0.7 - 0.5))
    assert "closes 60% of that gap" in study.study_markdown({"headline": h}, [])
    no_mt = study.headline(finals, study.baseline_rows(recs, [], 300, 0.95), 300, 0.95)
    assert no_mt["upper_bound"] == {"available": False}


def test_headline_reports_each_seeds_best_novel_program():
    """With the filter's novelty, each seed's best program the factory was not shown (a scaled program,
    id `<original>-x<scale>`, takes its original's novelty) is compared with the same baseline."""
    n = 100
    ta = study.baseline_rows([{"family": "main", "method": "tsv", "mode": "budget", "n_evaluations": 4,
                               "dev_problem_evaluations": 400, "best_params": {"lambda": 1.5}, "dev_accuracy": 0.55,
                               "test_accuracy": 0.5, "test_correct": bits([i < 50 for i in range(n)])}], [], 300, 0.95)
    shown = _final("dpo", 0, 1, [i < 80 for i in range(n)], dev=0.9)           # a library example, scaled
    shown["candidate_id"] = "dpo-s0-it1-00003-x1.25"
    novel_weak = _final("dpo", 0, 2, [i < 40 for i in range(n)], dev=0.6)
    novel_good = _final("nodpo", 0, 3, [i < 70 for i in range(n)], dev=0.7)
    novel_good["candidate_id"] = "nodpo-s0-it2-00001-x2"
    finals = [shown, novel_weak, novel_good]
    novelty = {"dpo-s0-it1-00003": False, novel_weak["candidate_id"]: True, "nodpo-s0-it2-00001": True}
    h = study.headline(finals, ta, 300, 0.95, novelty)
    assert [s["candidate_id"] for s in h["per_seed"]["seeds"]] == ["dpo-s0-it1-00003-x1.25"]
    nv = h["novel_per_seed"]
    assert [(s["candidate_id"], s["test_accuracy"]) for s in nv["seeds"]] == [("nodpo-s0-it2-00001-x2", 0.7)]
    assert nv["seeds_beating"] == 1 and nv["baseline"]["method"] == "tsv"
    assert "best *novel* program" in study.study_markdown({"headline": h}, [])
    assert "novel_per_seed" not in study.headline(finals, ta, 300, 0.95)
    none_novel = study.headline(finals, ta, 300, 0.95, {})
    assert none_novel["novel_per_seed"]["seeds"] == []
