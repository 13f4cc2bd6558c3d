import json

import pytest

from selfdev import io
from selfdev.loop import tables as loop
from selfdev.loop.factory import extract_body, load_prompt, program_from, temperature_at
from selfdev.loop.library import EXAMPLE_BODIES
from selfdev.sandbox.probe import check_program
from conftest import defaults, sandbox
from conftest import REPO

PROMPT = load_prompt(REPO / "config" / "prompts" / "factory.txt")
LIMITS = sandbox(wall_s=5, cpu_s=5, memory_mb=1024)
IMPORTS = ["torch", "math", "selfdev_blocks"]  # what the prompt imports


def test_temperature_schedule_matches_the_paper():
    assert temperature_at(1, 1.2, 0.2) == pytest.approx(1.2)
    assert temperature_at(2, 1.2, 0.2) == pytest.approx(1.0)
    assert temperature_at(3, 1.2, 0.2) == pytest.approx(1.2 / 1.4)
    with pytest.raises(ValueError):
        temperature_at(0, 1.2, 0.2)


def test_prompt_file_shape(tmp_path):
    assert PROMPT.endswith('"""') and "def merge(" in PROMPT
    bad = tmp_path / "p.txt"
    bad.write_text('def merge(t):\n    """doc"""\n    return t[0]\n')
    with pytest.raises(ValueError, match="closing"):
        load_prompt(bad)


@pytest.mark.parametrize("completion,body", [
    ("\n    return t[0]\n\n\ndef other():\n    pass", "    return t[0]"),
    ("\n    x = 1\n\n    return x * t[0]\n```\nmore", "    x = 1\n\n    return x * t[0]"),
    ("\n    s = sum(t)\n# trailing comment\n", "    s = sum(t)"),
    ("\nprint('no body')", ""),
    ("", ""),
])
def test_extract_body(completion, body):
    assert extract_body(completion) == body


def test_library_bodies_are_executable_programs():
    for body in EXAMPLE_BODIES:
        verdict = check_program(program_from(PROMPT, body), LIMITS)
        assert verdict.executable, (body, verdict)


def _cand(i, body, it=1):
    return {"candidate_id": f"it{it}-{i:05d}", "iteration": it, "body": body,
            "code": program_from(PROMPT, body) if body.strip() else "", "factory": "f", "temperature": 1.0,
            "gen_seconds": 0.1}


def test_filter_dedupes_within_and_across_iterations():
    same = "    return torch.stack(task_vectors).mean(dim=0)"
    same_reformatted = "    return torch.stack(task_vectors).mean(dim = 0)  # mean"
    cands = [_cand(0, same), _cand(1, same_reformatted), _cand(2, "    return 0.9 * sum(task_vectors)"),
             _cand(3, "    return task_vectors[0][:1]"), _cand(4, ""), _cand(5, "    return (")]
    calls = []

    def check(code):
        calls.append(code)
        return check_program(code, LIMITS)

    earlier = loop.filter_candidates([_cand(9, "    return 0.9 * sum(task_vectors)")], {}, check, IMPORTS,
                                     loop.Behaviours(4, [], []))[0]
    calls.clear()
    rows = loop.filter_candidates(cands, {earlier["code_hash"]: {**earlier, "candidate_id": "it0-00009"}}, check,
                                  IMPORTS, loop.Behaviours(4, [], []))
    status = [r["status"] for r in rows]
    assert status == ["new", "duplicate", "seen_before", "new", "empty", "new"]
    assert rows[1]["first_candidate_id"] == "it1-00000" and rows[1]["executable"]
    assert rows[2]["first_candidate_id"] == "it0-00009" and rows[2]["behaviour"] == earlier["behaviour"]
    assert rows[3]["category"] == "wrong_shape" and rows[5]["category"] == "syntax"
    assert len(calls) == 2  # only the new, parseable programs were probed


# The example: one algorithm for four experts written five ways, and one that differs.
MEAN_OF_FOUR = ["    return 0.5 * torch.stack(task_vectors).sum(dim=0) * 0.5",
                "    return torch.stack(task_vectors).mean(dim=0)",
                "    return torch.stack(task_vectors).sum(dim=0) / len(task_vectors)",
                "    return 0.5 * torch.stack(task_vectors).sum(dim=0) / math.sqrt(len(task_vectors))",
                "    return torch.stack(task_vectors).mean(dim=0) / (1.0 + 1e-8)"]


def test_behaviours_tell_programs_apart_by_what_they_compute():
    cands = [_cand(i, b) for i, b in enumerate(MEAN_OF_FOUR)] + [_cand(5, "    return 0.3 * sum(task_vectors)")]
    check = lambda code: check_program(code, LIMITS, 4)  # noqa: E731
    rows = loop.filter_candidates(cands, {}, check, IMPORTS, loop.Behaviours(4, [], []))
    assert [r["status"] for r in rows] == ["new"] + ["same_behaviour"] * 4 + ["new"]
    assert {r["behaviour"] for r in rows[:5]} == {"it1-00000"} and rows[5]["behaviour"] == "it1-00005"
    # With the expert count varying, mean and 0.25 * sum (the first and fourth for four experts) differ:
    # three algorithms among the five (0.25*sum / mean, and 0.5*sum/sqrt(n)).
    assert rows[1]["algorithm"] == rows[2]["algorithm"] == rows[4]["algorithm"] != rows[0]["algorithm"]
    assert len({r["algorithm"] for r in rows[:5]}) == 3
    # Three experts: 0.25 * sum no longer is the mean, so it is its own behaviour.
    rows3 = loop.filter_candidates(cands, {}, lambda code: check_program(code, LIMITS, 3), IMPORTS,
                                   loop.Behaviours(3, [], []))
    assert [r["status"] for r in rows3][:5] == ["new", "new", "same_behaviour", "new", "same_behaviour"]
    # A later iteration knows the earlier behaviours from its scores table.
    scored = [{**r, "dev_accuracy": 0.5} for r in rows if r["status"] == "new"]
    later = loop.filter_candidates([_cand(0, "    return sum(task_vectors) / 4", it=2)], {}, check, IMPORTS,
                                   loop.Behaviours.from_scores(4, [scored]))
    assert later[0]["status"] == "same_behaviour" and later[0]["first_candidate_id"] == "it1-00000"


def test_scores_reuse_by_behaviour_and_rank_distinct_behaviours():
    cands = [_cand(i, b) for i, b in enumerate(MEAN_OF_FOUR)] + [_cand(5, "    return 0.3 * sum(task_vectors)")]
    execs = loop.filter_candidates(cands, {}, lambda code: check_program(code, LIMITS, 4), IMPORTS,
                                   loop.Behaviours(4, [], []))
    todo = loop.programs_to_score(cands, execs)
    assert [t["candidate_id"] for t in todo] == ["it1-00000", "it1-00005"]  # each behaviour scored once
    new = [{"candidate_id": t["candidate_id"], "iteration": 1, "code_hash": t["code_hash"], "status": "new",
            "executable": True, "dev_accuracy": acc, "behaviour": t["behaviour"], "algorithm": t["algorithm"],
            "signature": t["signature"], "body": t["body"]} for t, acc in zip(todo, (0.53, 0.4))]
    rows = loop.assemble_scores(execs, cands, [], new)
    assert [r["candidate_id"] for r in rows] == [c["candidate_id"] for c in cands]
    assert [r["dev_accuracy"] for r in rows] == [0.53] * 5 + [0.4]
    assert [r["status"] for r in rows] == ["new"] + ["same_behaviour"] * 4 + ["new"]
    assert rows[3]["body"] == MEAN_OF_FOUR[3]
    top = loop.best_programs(rows, 3)
    assert [t["candidate_id"] for t in top] == ["it1-00000", "it1-00005"]  # one row per behaviour
    spec = loop.PairSpec(p_w=0.5, p_l=0.5, min_chosen=1, min_rejected=1, earlier_top=3, max_pairs=100, seed=0)
    assert [(p["chosen_id"], p["rejected_id"]) for p in loop.select_pairs(rows, [], spec, 1, PROMPT)] == \
        [("it1-00000", "it1-00005")]
    stats = loop.iteration_stats(cands, execs, rows, [], {})
    assert (stats["unique"], stats["behaviours"], stats["algorithms"]) == (6, 2, 4)


def _scored(i, acc, it=1, body=None):
    return {"candidate_id": f"it{it}-{i:05d}", "iteration": it, "code_hash": f"h{it}-{i}", "status": "new",
            "executable": True, "dev_accuracy": acc, "body": body or f"    return {i} * task_vectors[0]"}


def test_pairs_top_and_bottom_with_floors():
    rows = [_scored(i, acc) for i, acc in enumerate([0.5, 0.9, 0.1, 0.7, 0.3, 0.2, 0.8, 0.6, 0.4, 0.0])]
    rows.append({**_scored(99, None), "executable": False})
    spec = loop.PairSpec(p_w=0.03, p_l=0.10, min_chosen=2, min_rejected=3, earlier_top=3, max_pairs=100, seed=0)
    pairs = loop.select_pairs(rows, [], spec, 1, PROMPT)
    chosen = {p["chosen_score"] for p in pairs}
    rejected = {p["rejected_score"] for p in pairs}
    assert chosen == {0.9, 0.8} and rejected == {0.2, 0.1, 0.0} and len(pairs) == 6
    assert all(p["prompt"] == PROMPT and p["chosen"].startswith("\n    return") for p in pairs)
    assert pairs == loop.select_pairs(list(reversed(rows)), [], spec, 1, PROMPT)


def test_pairs_add_earlier_top_from_iteration_two_and_cap():
    earlier = [[_scored(i, acc, it=1) for i, acc in enumerate([0.95, 0.2, 0.85, 0.1])]]
    current = [_scored(i, acc, it=2) for i, acc in enumerate([0.5, 0.4, 0.3, 0.6])]
    spec = loop.PairSpec(p_w=0.03, p_l=0.10, min_chosen=1, min_rejected=1, earlier_top=2, max_pairs=100, seed=0)
    pairs = loop.select_pairs(current, earlier, spec, 2, PROMPT)
    assert {p["chosen_score"] for p in pairs} == {0.6, 0.95, 0.85} and {p["rejected_score"] for p in pairs} == {0.3}
    assert loop.select_pairs(current, earlier, spec, 1, PROMPT) and \
        {p["chosen_score"] for p in loop.select_pairs(current, earlier, spec, 1, PROMPT)} == {0.6}
    capped = loop.select_pairs(current, earlier, loop.PairSpec(1, 1, 4, 4, 2, 2, 0), 2, PROMPT)
    assert len(capped) == 2 and capped == loop.select_pairs(current, earlier, loop.PairSpec(1, 1, 4, 4, 2, 2, 0), 2, PROMPT)


def test_no_pairs_from_fewer_than_two_or_equal_scores():
    spec = loop.PairSpec.from_config(defaults("loop"), 0)
    assert loop.select_pairs([_scored(0, 0.5)], [], spec, 1, PROMPT) == []
    assert loop.select_pairs([_scored(0, 0.5), _scored(1, 0.5)], [], spec, 1, PROMPT) == []


def test_tables_roundtrip_with_schema_version(tmp_path):
    rows = [_scored(0, 0.5), _scored(1, 0.25)]
    cols = ["candidate_id", "iteration", "code_hash", "status", "executable", "dev_accuracy", "body"]
    io.write_table(rows, tmp_path / "s.parquet", loop.SCORES_V, cols)
    back = io.read_table(tmp_path / "s.parquet", loop.SCORES_V)
    assert [r["dev_accuracy"] for r in back] == [0.5, 0.25] and back[0]["schema_version"] == loop.SCORES_V
    with pytest.raises(ValueError, match="schema_version"):
        io.read_table(tmp_path / "s.parquet", loop.PAIRS_V)
    io.write_table([], tmp_path / "e.parquet", loop.SCORES_V, cols)
    assert io.read_table(tmp_path / "e.parquet", loop.SCORES_V) == []
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match="bad.parquet"):
        io.read_table(tmp_path / "bad.parquet", loop.SCORES_V)
    pairs = loop.select_pairs([_scored(i, a) for i, a in enumerate([0.9, 0.1, 0.5, 0.3])], [],
                              loop.PairSpec.from_config({**defaults("loop"), "min_chosen": 1, "min_rejected": 1}, 0), 1, PROMPT)
    loop.write_pairs(pairs, tmp_path / "p.jsonl")
    assert [p["chosen_id"] for p in loop.read_pairs(tmp_path / "p.jsonl")] == [p["chosen_id"] for p in pairs]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl: row 1"):
        loop.read_pairs(tmp_path / "bad.jsonl")


def test_novelty_is_judged_against_the_prompt_and_the_library():
    known_codes = loop.known_programs(PROMPT, EXAMPLE_BODIES)
    # The prompt's three functions: the example merge_task_arithmetic and the building blocks ties_merge
    # (called with its default density) and tsv_merge.
    assert len(known_codes) == len(EXAMPLE_BODIES) + 3
    check = lambda code: check_program(code, LIMITS, 4)  # noqa: E731
    known = [check(c).info["signature"] for c in known_codes]
    cands = [_cand(0, "    return 0.3 * sum(task_vectors)"),          # the library's 0.3 * sum
             _cand(1, "    return sum(task_vectors) * 0.5"),           # the prompt's task arithmetic
             _cand(2, "    return 0.42 * sum(task_vectors)"),          # new
             _cand(3, "    return task_vectors[0][:1]"),               # not executable
             _cand(4, "    return 1.0 * tsv_merge(task_vectors)"),     # the prompt's building block
             _cand(5, "    return 1.3 * tsv_merge(task_vectors)")]     # new
    rows = loop.mark_novel(loop.filter_candidates(cands, {}, check, IMPORTS, loop.Behaviours(4, [], [])),
                           known, 4)
    assert [r["novel"] for r in rows] == [False, False, True, None, False, True]
    assert loop.iteration_stats(cands, rows, [], [], {})["novel_behaviours"] == 2


def test_the_building_blocks_are_the_shipped_ties_and_tsv_merge():
    """selfdev_blocks' ties_merge and tsv_merge (what the prompt imports) compute what the study's baselines
    do (the shipped programs at lambda 1; TIES at the density passed), so a program that calls them builds on
    the published methods; a program importing them runs in the sandbox (whose child may read no src/)."""
    import torch

    import selfdev_blocks
    from selfdev.algorithms import ties, tsv_merge

    assert "from selfdev_blocks import ties_merge, tsv_merge" in PROMPT
    gen = torch.Generator().manual_seed(0)
    for shape in [(12, 20), (20, 12), (7,)]:
        tvs = [torch.randn(shape, generator=gen) for _ in range(3)]
        torch.testing.assert_close(selfdev_blocks.tsv_merge(tvs), tsv_merge.merge(tvs))
        # the shipped TIES has density 0.5 (the study tunes it); the block's default is 0.2, LiNeS's choice
        torch.testing.assert_close(selfdev_blocks.ties_merge(tvs, density=0.5), ties.merge(tvs))
        assert not torch.allclose(selfdev_blocks.ties_merge(tvs), ties.merge(tvs))
    verdict = check_program(program_from(PROMPT, "    return 0.5 * tsv_merge(task_vectors) + ties_merge(task_vectors)"),
                            LIMITS)
    assert verdict.executable, verdict
    # Allowed by name only: the module's own imports are not a way around the allow-list.
    sneaky = check_program(program_from(PROMPT, "    import selfdev_blocks.torch\n    return task_vectors[0]"), LIMITS)
    assert not sneaky.executable


@pytest.mark.parametrize("source, layer_aware", [
    ("def merge(task_vectors):\n    return 0.5 * sum(task_vectors)\n", False),
    ("def merge(task_vectors, lam=0.5):\n    return lam * sum(task_vectors)\n", False),  # lam is no context
    ("def merge(task_vectors, context):\n    return (1 + context['layer']) * task_vectors[0]\n", True),
])
def test_a_scaled_program_returns_the_scale_times_the_original_in_the_sandbox(source, layer_aware):
    """loop.tune's programs: `scaled_program` keeps the original's calling convention (context or not)
    and returns exactly scale x the original, parameter by parameter, when run in the sandbox."""
    import torch

    from selfdev.sandbox.program import static_check
    from selfdev.sandbox.run import run_jobs

    scaled = loop.scaled_program(source, 1.5)
    assert static_check(scaled).code_hash != static_check(source).code_hash
    data = [torch.randn(3, 4, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    contexts = {"l0": {"layer": 0}, "l5": {"layer": 5}}
    jobs = [(key, lambda: data) for key in contexts]
    shapes = {key: (3, 4) for key in contexts}
    plain = run_jobs(source, jobs, shapes, LIMITS, contexts=contexts)
    tuned = run_jobs(scaled, jobs, shapes, LIMITS, contexts=contexts)
    assert plain.ok and tuned.ok, (plain, tuned)
    for key in contexts:
        torch.testing.assert_close(tuned.results[key], 1.5 * plain.results[key])
    # the context still reaches a two-argument program: its layers differ after scaling too
    assert torch.equal(tuned.results["l0"], tuned.results["l5"]) is not layer_aware


def test_tuned_rows_name_their_original_and_count_in_the_budget():
    """A tuned row is the original's id and behaviour with `-x<scale>` (so it never hides the original
    in the ranking), and the budget-matched baselines' budget counts its dev evaluations."""
    from selfdev.study.baselines import discovery_budget

    prog = {"candidate_id": "dpo-s0-it1-00004", "iteration": 1, "code_hash": "h" * 16, "status": "new",
            "executable": True, "dev_accuracy": 0.5, "body": "    return sum(task_vectors)", "code": "c",
            "behaviour": "dpo-s0-it1-00002", "algorithm": None, "dev_evaluated": 400, "dev_correct": 200,
            "partial": False}
    scored = {"executable": True, "dev_accuracy": 0.6, "dev_evaluated": 300, "dev_correct": 240, "partial": True}
    row = loop.tuned_row(prog, 1.25, "c2", "g" * 16, None, scored)
    assert row["candidate_id"] == "dpo-s0-it1-00004-x1.25" and row["behaviour"] == "dpo-s0-it1-00002-x1.25"
    assert row["body"].startswith("# 1.25 x the program dpo-s0-it1-00004") and row["code"] == "c2"
    assert set(row) == set(loop.SCORE_COLUMNS)
    assert [r["candidate_id"] for r in loop.best_programs([prog, row], 2)] == [row["candidate_id"], "dpo-s0-it1-00004"]
    assert discovery_budget([[[prog], [row]]]) == 700
    assert discovery_budget([[[prog]]]) == 400
