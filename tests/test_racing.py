"""Racing evaluation: its hard bound never drops a program exhaustive scoring would put in a top k."""

import random

import pytest

from selfdev.loop import tables as loop
from selfdev.scoring.racing import Race, chunk_plan, kth_best, partial_estimate, race_program


def test_chunk_plan_is_the_length_sorted_batches_in_a_seeded_order():
    lengths = [5, 1, 9, 3, 3, 7, 2, 8, 6, 4, 3]
    plan = chunk_plan(lengths, 3, seed=1)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])  # what greedy generation batches
    batches = [order[i:i + 3] for i in range(0, len(order), 3)]
    assert sorted(plan) == sorted(batches) and sum(len(c) for c in plan) == len(lengths)
    assert chunk_plan(lengths, 3, seed=1) == plan
    orders = {tuple(map(tuple, chunk_plan(lengths, 3, seed=s))) for s in range(20)}
    assert len(orders) > 1  # the seed orders the chunks
    with pytest.raises(ValueError, match="batch_size"):
        chunk_plan(lengths, 0, seed=1)


def test_bar_is_the_lowest_kth_best_of_the_pools():
    assert kth_best([3, 9, 5], 2) == 5 and kth_best([3], 2) is None
    race = Race(10, [(2, [7, 4]), (1, [])])
    assert race.bar() is None  # the iteration's pool has no full score yet: nothing is cut
    race.finished(3)
    assert race.bar() == 3  # min(2nd best of 7, 4, 3 = 4; best of [3] = 3)
    assert race.cut(0, 8) and not race.cut(1, 8)  # 0 + 2 < 3; 1 + 2 reaches 3 (a tie is kept)


def _race_all(bits, pools, plan, seed=0):
    """Every program (rows of 0/1 answers) through one race, in order: (estimates, evaluated)."""
    race = Race(len(bits[0]), [(k, list(known)) for k, known in pools], seed)
    out = []
    for row in bits:
        correct, evaluated = race_program(race, plan, lambda chunk: [row[i] for i in chunk])
        assert all(correct[i] == bool(row[i]) for c in plan for i in c if correct[i] is not None)
        out.append((partial_estimate(sum(1 for x in correct if x), evaluated), evaluated))
    return out


@pytest.mark.parametrize("trial", range(60))
def test_racing_keeps_every_top_k_of_exhaustive_scoring(trial):
    rng = random.Random(trial)
    n, programs = rng.choice([12, 20, 40]), rng.randint(4, 40)
    # Few distinct accuracies (many ties), a few broken programs, some strong ones.
    skill = [rng.choice([0.0, 0.1, 0.3, 0.3, 0.5, 0.5, 0.7, 0.9]) for _ in range(programs)]
    bits = [[int(rng.random() < p) for _ in range(n)] for p in skill]
    full = [sum(b) for b in bits]
    earlier = [rng.randint(0, n) for _ in range(rng.randint(0, 8))]
    top_k, k_iter = rng.randint(1, 6), rng.randint(1, 4)
    plan = chunk_plan([rng.randint(1, 50) for _ in range(n)], rng.choice([1, 3, 4, 5]), seed=trial)
    raced = _race_all(bits, [(top_k, earlier), (k_iter, [])], plan)
    # As score tables (one behaviour per program): racing's ranking vs exhaustive ranking.
    def rows(scores):
        return [{"candidate_id": f"c{i}", "code_hash": f"h{i}", "behaviour": f"b{i}", "executable": True,
                 "status": "new", "dev_accuracy": s} for i, s in enumerate(scores)]
    exhaustive, racing = rows([f / n for f in full]), rows([est for est, _ in raced])
    past = [{"candidate_id": f"e{j}", "code_hash": f"eh{j}", "behaviour": f"eb{j}", "executable": True,
             "status": "new", "dev_accuracy": c / n} for j, c in enumerate(earlier)]
    ids = [r["candidate_id"] for r in loop.best_programs(exhaustive, k_iter)]
    assert [r["candidate_id"] for r in loop.best_programs(racing, k_iter)] == ids
    assert ([r["candidate_id"] for r in loop.best_programs(past + racing, top_k)]
            == [r["candidate_id"] for r in loop.best_programs(past + exhaustive, top_k)])
    # No program that reaches either top k on all of dev was cut; a cut one saw part of dev only.
    kth_run = sorted(earlier + full, reverse=True)[top_k - 1] if len(earlier + full) >= top_k else -1
    kth_iter = sorted(full, reverse=True)[k_iter - 1] if len(full) >= k_iter else -1
    for f, (est, evaluated) in zip(full, raced):
        if f >= min(kth_run, kth_iter):
            assert evaluated == n
        if evaluated < n:
            assert est < min(kth_run, kth_iter) / n


def test_racing_saves_evaluations_on_a_clear_field():
    # 30 programs, two good ones first: the rest (near 0) are cut after about half of dev.
    n = 40
    bits = [[1] * 36 + [0] * 4, [1] * 30 + [0] * 10] + [[int(i % 10 == 0) for i in range(n)] for _ in range(28)]
    raced = _race_all(bits, [(2, []), (1, [])], chunk_plan(list(range(n)), 4, seed=3))
    evaluated = [e for _, e in raced]
    assert evaluated[:2] == [n, n] and all(e < n for e in evaluated[2:])
    assert sum(evaluated) < 0.6 * n * len(bits)


def test_race_pools_take_the_run_top_k_and_the_iterations_chosen():
    execs = [{"candidate_id": f"c{i}", "code_hash": f"h{i}", "behaviour": f"b{i % 5}", "executable": i < 9}
             for i in range(10)]
    earlier = [[{"status": "new", "executable": True, "dev_correct": 30, "partial": False},
                {"status": "new", "executable": True, "dev_correct": 12, "partial": True},
                {"status": "same_behaviour", "executable": True, "dev_correct": 30, "partial": False},
                {"status": "new", "executable": False, "dev_correct": None, "partial": False}]]
    pools = loop.race_pools(execs, earlier, p_w=0.5, min_chosen=1, earlier_top=2, top_k=15)
    # 5 behaviours: chosen ceil(0.5 * 5) = 3 (capped at 4); the run pool holds the one full earlier score.
    assert pools == [(15, [30]), (3, [])]
    assert loop.race_pools(execs, earlier, p_w=0.03, min_chosen=1, earlier_top=2, top_k=4)[1] == (2, [])


def test_evaluations_saved_counts_new_programs_only():
    rows = [{"status": "new", "executable": True, "dev_problems": 40, "dev_evaluated": 40, "partial": False},
            {"status": "new", "executable": True, "dev_problems": 40, "dev_evaluated": 10, "partial": True},
            {"status": "same_behaviour", "executable": True, "dev_problems": 40, "dev_evaluated": 10, "partial": True},
            {"status": "new", "executable": False, "dev_problems": 40, "dev_evaluated": None, "partial": False}]
    s = loop.evaluations_saved(rows)
    assert s == {"scored_now": 2, "partial": 1, "dev_evaluations": 50, "dev_evaluations_exhaustive": 80,
                 "dev_evaluations_saved": 1 - 50 / 80}


def test_raced_scorer_cuts_as_the_bound_says(micro_world):
    """The scorer's race on a real micro world: without a bar a program is scored on all of dev (the
    answers of exhaustive scoring); with a bar it stops after the first chunk that makes the bar
    unreachable. (That each chunk decodes as in exhaustive scoring is checked on the workflow's
    world in test_workflow, where the model writes distinct answers.)"""
    from selfdev.scoring.programs import make_scorer, world_inputs

    cfg = {**micro_world, "eval": {**micro_world["eval"], "batch_size": 4}}
    files = world_inputs(cfg, "dev")
    scorer = make_scorer(cfg, files["seed_dir"], files["task_vectors"], files["rows"], files["shots"])
    program = "import torch\ndef merge(t):\n    return torch.stack(t).mean(0)\n"
    full = scorer.score_program(program, probe_first=False)
    plan = scorer.chunk_plan(seed=5)
    assert len(plan) == 5 and sorted(i for c in plan for i in c) == list(range(20))
    race = Race(20, [(2, [])], seed=5)  # the pool wants 2 full scores: no bar yet
    rec = scorer.score_program(program, probe_first=False, race=race)
    assert (rec.evaluated, rec.partial, rec.correct, race.scored) == (20, False, full.correct, [sum(full.correct)])
    # A bar of 20 (a perfect program scored before): the first chunk with a miss cuts the program.
    race = Race(20, [(1, [20])], seed=5)
    rec = scorer.score_program(program, probe_first=False, race=race)
    first_miss = next(j for j, c in enumerate(plan) if not all(full.correct[i] for i in c))
    seen = {i for c in plan[:first_miss + 1] for i in c}
    assert rec.partial and rec.evaluated == len(seen) < 20 and race.scored == []
    assert rec.correct == [full.correct[i] if i in seen else None for i in range(20)]
    assert rec.accuracy == sum(full.correct[i] for i in seen) / len(seen)
