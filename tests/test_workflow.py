"""Runs the real Snakefile on a micro config in a temporary directory."""

import shutil
import subprocess
import sys
from pathlib import Path

import json
import signal
import time

import yaml

from conftest import REPO, seed_world, snakemake_cmd, workflow_config
from selfdev.algorithms import reference_paths
from selfdev.scoring.programs import score_file, world_inputs
from selfdev.config import validate_config


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(workdir, *args), capture_output=True, text=True, timeout=900)


REFERENCE = ("mean", "ties", "lines")
HOSTILE = {
    "fork_bomb": ("forbidden", "import torch\ndef merge(t):\n    while True:\n        torch.os.fork()\n"),
    "canary_writer": ("forbidden", "def merge(t):\n    open({canary!r}, 'w').write('pwned')\n    return t[0]\n"),
    "spinner": ("timeout", "def merge(t):\n    while True:\n        pass\n"),
    "nan_maker": ("non_finite", "def merge(t):\n    return t[0] * float('nan')\n"),
}


def test_workflow_micro_run_then_nothing_to_do(tmp_path, tiny_factory, workflow_world):
    canary = tmp_path / "canary.txt"
    canary.write_text("canary")
    # Three reference programs (a plain, a sparsifying and a two-argument layer-aware one) beside the
    # hostile ones; test_world_and_scoring.py scores every reference program in-process.
    programs = [str(reference_paths()[name]) for name in REFERENCE]
    for name, (_, src) in HOSTILE.items():
        path = tmp_path / "programs" / f"{name}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(src.replace("{canary!r}", repr(str(canary))))
        programs.append(str(path))
    cfg = workflow_config(tiny_factory, programs)
    cfg["study"]["arms"] = ["dpo", "nodpo", "evolve", "evolve_dpo"]
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(cfg))
    res = tmp_path / "results"
    seed_world(workflow_world, tmp_path)  # the world as the Snakefile built it (once per session)
    # Interrupt the run once iteration 1 has sampled (its filter has started); the rerun must
    # finish without sampling again.
    log = tmp_path / "interrupted.log"
    # Ctrl-C must reach Snakemake even where the tests run with SIGINT ignored (a job started with `&` from
    # a script inherits SIG_IGN, and a Python started so never raises KeyboardInterrupt).
    proc = subprocess.Popen(snakemake_cmd(tmp_path, "--cores", "2"), stdout=subprocess.DEVNULL, stderr=log.open("w"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    loop_dir = res / "loop" / "dpo" / "seed0"
    candidates = loop_dir / "iter1" / "candidates.parquet"
    filter_started = res / "logs" / "filter_dpo_s0_it1.log"
    deadline = time.monotonic() + 600
    while not filter_started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    # The interrupt must land on a running workflow (mid-iteration), or the resume below tests nothing.
    assert proc.poll() is None, "the run ended before the first filter job started"
    assert filter_started.exists(), "the first filter job never started"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=600)  # Snakemake lets running jobs end first; slow on a loaded machine
    assert "Terminating processes on user request" in log.read_text()  # the interrupt reached it
    assert candidates.exists()
    # Stopped mid-loop: iteration 2 needs iteration 1's DPO, which no job started after the interrupt.
    assert not (loop_dir / "iter2" / "candidates.parquet").exists()
    sampled_at = candidates.stat().st_mtime_ns
    run = _snakemake(tmp_path, "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert candidates.stat().st_mtime_ns == sampled_at
    for it in (1, 2):
        for f in ("candidates.parquet", "executable.parquet", "scores.parquet", "pairs.jsonl",
                  "factory/model.safetensors", "factory/train_log.json"):
            assert (loop_dir / f"iter{it}" / f).is_file(), (it, f)
    summary = json.loads((loop_dir / "summary.json").read_text())
    assert [it["iteration"] for it in summary["iterations"]] == [1, 2]
    assert summary["iterations"][0]["stats"]["candidates"] == 8
    assert "Best algorithm so far" in (loop_dir / "summary.md").read_text()
    pairs = [json.loads(l) for l in (loop_dir / "iter1" / "pairs.jsonl").read_text().splitlines()]
    dpo_log = json.loads((loop_dir / "iter1" / "factory" / "train_log.json").read_text())
    assert dpo_log["pairs"] == len(pairs) and dpo_log["parent"].endswith("factory/warmup")
    assert all(p["chosen_score"] > p["rejected_score"] for p in pairs)
    assert canary.read_text() == "canary"
    for name, (category, _) in HOSTILE.items():
        rec = json.loads((res / "algorithms" / name / "score.json").read_text())
        assert rec["executable"] is False and rec["category"] == category and rec["accuracy"] is None
    # Benign programs score exactly as in a clean run beside no hostile ones.
    config = validate_config(dict(yaml.safe_load((tmp_path / "micro.yaml").read_text()), results=str(res)))
    files = world_inputs(config, "dev")
    for name in REFERENCE:
        path = reference_paths()[name]
        clean = score_file(path, config, "dev", files["seed_dir"], files["task_vectors"], files["rows"], files["shots"])
        rec = json.loads((res / "algorithms" / name / "score.json").read_text())
        assert rec["executable"] and rec["accuracy"] == clean["accuracy"], name
    for f in ["world/report.md", "world/report.json", "algorithms/summary.md", "world/seed/model.safetensors",
              "world/task_vectors/price.safetensors", "world/experts/distance/model.safetensors",
              "algorithms/ties/score.json", "logs/world_seed.log", "benchmarks/world_seed.tsv"]:
        assert (res / f).is_file(), f
    summary = (res / "algorithms" / "summary.md").read_text()
    assert all(name in summary for name in ("lines", "ties", "mean"))
    _check_study(tmp_path, res, loop_dir)
    _check_racing(config, loop_dir, tmp_path)
    dry = _snakemake(tmp_path, "-n", "--cores", "1")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr

    # Deleting one score reruns that score and the summary only.
    (res / "algorithms" / "mean" / "score.json").unlink()
    dry = _snakemake(tmp_path, "-n", "--cores", "1", "--quiet", "rules")
    text = dry.stdout + dry.stderr
    assert "score_algorithm" in text and "algorithms_summary" in text
    assert "world_seed" not in text and "world_expert" not in text and "sample" not in text

    # One more iteration reuses the first two: only iteration 3 and the summary are scheduled.
    original = (tmp_path / "micro.yaml").read_text()
    longer = yaml.safe_load(original)
    longer["loop"]["iterations"] = 3
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(longer))
    dry = _snakemake(tmp_path, "-n", "--cores", "1")
    text = dry.stdout + dry.stderr
    (tmp_path / "micro.yaml").write_text(original)
    assert "output: results/loop/dpo/seed0/iter3/candidates.parquet" in text and "rule run_summary:" in text
    assert "output: results/loop/nodpo/seed0/iter3/candidates.parquet" in text
    for it in (1, 2):
        for name in ("candidates.parquet", "executable.parquet", "scores.parquet", "pairs.jsonl"):
            assert f"output: results/loop/dpo/seed0/iter{it}/{name}" not in text, (it, name)
    assert "rule world_seed:" not in text and "rule factory_warmup:" not in text

    # Deleting iteration 1's scores recomputes that iteration from scoring on, and what depends on it.
    (loop_dir / "iter1" / "scores.parquet").unlink()
    dry = _snakemake(tmp_path, "-n", "--cores", "1")
    text = dry.stdout + dry.stderr
    for job in ("score", "pairs", "dpo", "run_summary", "final_test", "study", "report_html"):
        assert f"rule {job}:" in text or f"localrule {job}:" in text, job
    assert "seed=0, it=1" in text
    # Iteration 2 of both arms depends on iteration 1 (its factory, or its scores for deduplication),
    # so it reruns; iteration 1 is not sampled again.
    assert "output: results/loop/dpo/seed0/iter1/candidates.parquet" not in text
    assert "output: results/loop/dpo/seed0/iter2/candidates.parquet" in text
    for job in ("world_seed", "world_expert", "factory_warmup", "factory_initial"):
        assert f"rule {job}:" not in text, job


def _check_racing(config: dict, loop_dir: Path, tmp_path: Path) -> None:
    """The dpo run's iterations scored again without racing: the same top programs and chosen ones;
    a program scored on all of dev has the same score; each racing chunk decodes as exhaustive scoring."""
    from selfdev import io
    from selfdev.loop import tables as loop
    from selfdev.loop.steps import score_step
    from selfdev.lm import GenerationSpec
    from selfdev.scoring.evaluate import evaluate
    from selfdev.scoring.programs import make_scorer

    files = world_inputs(config, "dev")
    exhaustive_cfg = {**config, "loop": {**config["loop"], "racing": False}}
    raced, full = [], []
    for it in (1, 2):
        d = loop_dir / f"iter{it}"
        out = tmp_path / f"exhaustive{it}.parquet"
        score_step(config=exhaustive_cfg, candidates=str(d / "candidates.parquet"), executable=str(d / "executable.parquet"),
                   earlier_scores=[str(tmp_path / f"exhaustive{j}.parquet") for j in range(1, it)],
                   seed_dir=files["seed_dir"], task_vectors=files["task_vectors"], rows=files["rows"],
                   shots=files["shots"], out_path=str(out), threads=1)
        raced.append(io.read_table(d / "scores.parquet", loop.SCORES_V))
        full.append(io.read_table(out, loop.SCORES_V))
        by_id = {r["candidate_id"]: r for r in full[-1]}
        for r in raced[-1]:
            f = by_id[r["candidate_id"]]
            assert not f["partial"] and (f["dev_evaluated"] == f["dev_problems"] if f["executable"] else True)
            if r["executable"] and not r["partial"]:
                assert (r["dev_accuracy"], r["dev_correct"]) == (f["dev_accuracy"], f["dev_correct"])
            elif r["executable"]:
                assert r["dev_correct"] <= f["dev_correct"] and r["dev_evaluated"] < r["dev_problems"]
        spec = loop.PairSpec.from_config(config["loop"], 0)
        chosen = [[r["candidate_id"] for r in loop.chosen_and_rejected(t[-1], t[:-1], spec, it)[0]] for t in (raced, full)]
        assert chosen[0] == chosen[1]
    k = config["study"]["top_k"]
    ids = [[r["candidate_id"] for r in loop.best_programs([r for t in tables for r in t], k)] for tables in (raced, full)]
    assert ids[0] == ids[1] and len(ids[0]) > 0
    # Each chunk (a generation batch, in a seeded order) decodes exactly as in exhaustive scoring.
    scorer = make_scorer(config, files["seed_dir"], files["task_vectors"], files["rows"], files["shots"])
    with scorer.merged_program("import torch\ndef merge(t):\n    return torch.stack(t).mean(0)\n") as outcome:
        assert outcome.ok
        whole = scorer.evaluate()
        plan = scorer.chunk_plan(seed=11)
        assert len(plan) == 5
        for chunk in plan:
            assert scorer.evaluate([scorer.rows[i] for i in chunk]).completions == [whole.completions[i] for i in chunk]
        # Nor does the batch size change an answer (eval.batch_size is a speed and racing knob): one
        # problem per batch, 7 and all 50 against the config's 10.
        for batch in (1, 7, len(scorer.rows)):
            gen = GenerationSpec(config["eval"]["max_new_tokens"], batch)
            assert evaluate(scorer.engine.model, scorer.tokenizer, scorer.rows, scorer.template, gen, scorer.shots,
                            scorer.task).completions == whole.completions, batch
    assert len(set(whole.completions)) > 10  # distinct answers: the comparisons above can fail


def _check_study(tmp_path: Path, res: Path, loop_dir: Path) -> None:
    """The study's artifacts after one micro run: arms, leaderboard, baselines, transfer, plots, report, lineage."""
    from selfdev import io
    from selfdev.loop import tables as loop
    from selfdev.study import tables as study
    from selfdev.study.stats import from_bits

    # The nodpo arm shares iteration 1 and samples iteration 2 from the (warmed-up) initial factory.
    nodpo = res / "loop" / "nodpo" / "seed0"
    assert not (nodpo / "iter1").exists() and not (nodpo / "iter2" / "pairs.jsonl").exists()
    cands = io.read_table(nodpo / "iter2" / "candidates.parquet", loop.CANDIDATES_V)
    assert len(cands) == 8 and {c["factory"] for c in cands} == {"results/factory/warmup"}
    assert all(c["candidate_id"].startswith("nodpo-s0-it2-") for c in cands)
    dpo2 = io.read_table(loop_dir / "iter2" / "candidates.parquet", loop.CANDIDATES_V)
    assert {c["factory"] for c in dpo2} == {"results/loop/dpo/seed0/iter1/factory"}
    assert {c["parents"] for c in dpo2 + cands} == {"[]"}
    # Evolve arms: iteration 1 is dpo's; iteration 2 prompts with parents from iteration 1's scored
    # programs (one draw per group of rows_per_prompt candidates); evolve_dpo samples from dpo's
    # iteration-1 factory and trains its own factory on its own pairs.
    it1 = io.read_table(loop_dir / "iter1" / "scores.parquet", loop.SCORES_V)
    scored_ids = {r["candidate_id"] for r in it1 if r["executable"]}
    for arm, factory in (("evolve", "results/factory/warmup"), ("evolve_dpo", "results/loop/dpo/seed0/iter1/factory")):
        run = res / "loop" / arm / "seed0"
        assert not (run / "iter1").exists()
        rows = io.read_table(run / "iter2" / "candidates.parquet", loop.CANDIDATES_V)
        assert len(rows) == 8 and {c["factory"] for c in rows} == {factory}
        parents = [json.loads(c["parents"]) for c in rows]
        assert all(1 <= len(p) <= 2 and set(p) <= scored_ids for p in parents), parents
        assert parents[0] == parents[3] and all(c["candidate_id"].startswith(f"{arm}-s0-it2-") for c in rows)
        assert (run / "iter2" / "pairs.jsonl").is_file() == (arm == "evolve_dpo")
        assert (run / "iter2" / "factory" / "train_log.json").is_file() == (arm == "evolve_dpo")
        assert (run / "summary.json").is_file()
    evo_log = json.loads((res / "loop" / "evolve_dpo" / "seed0" / "iter2" / "factory" / "train_log.json").read_text())
    assert evo_log["parent"].endswith("loop/dpo/seed0/iter1/factory")

    board = io.read_table(res / "final" / "leaderboard.parquet", study.LEADERBOARD_V)
    assert {(r["arm"], r["seed"]) for r in board} == {(a, 0) for a in ("dpo", "nodpo", "evolve", "evolve_dpo")}
    test_rows = (res / "world" / "data" / "test.jsonl").read_text().count("\n")
    for r in board:
        assert r["rank"] <= 3 and r["executable"] and r["n_test"] == test_rows == len(r["test_correct"])
        assert r["test_accuracy"] == sum(from_bits(r["test_correct"])) / test_rows
        assert r["test_low"] <= r["test_accuracy"] <= r["test_high"]
    dpo_board = [r for r in board if r["arm"] == "dpo"]
    assert [r["dev_accuracy"] for r in dpo_board] == sorted((r["dev_accuracy"] for r in dpo_board), reverse=True)

    base = io.read_table(res / "final" / "baselines.parquet", study.BASELINES_V)
    main = {(r["method"], r["mode"]): r for r in base if r["family"] == "main" and r["model"] == "merged"}
    methods = ("task_arithmetic", "ties", "model_stock", "tsv", "lines_ta")
    assert {m for m, mode in main if mode == "grid"} == set(methods)
    assert {m for m, mode in main if mode == "budget"} == set(methods) - {"model_stock"}
    # loop.tune: the run's 6 best programs (by dev, full scores; the default), each scaled by the 5 default scales.
    scored = [r for it in (1, 2) for r in io.read_table(loop_dir / f"iter{it}" / "scores.parquet", loop.SCORES_V)]
    tuned = io.read_table(res / "loop" / "dpo" / "seed0" / "tuned.parquet", loop.SCORES_V)
    best = [r["candidate_id"] for r in loop.best_programs([r for r in scored if not r["partial"]], 6)]
    assert [r["candidate_id"] for r in tuned] == [f"{b}-x{s:g}" for b in best for s in (0.5, 0.75, 1.25, 1.5, 2.0)]
    # (the micro prompt's merge takes no context, so neither does the scaled one)
    assert all(r["code"].rstrip().endswith("return 2.0 * _unscaled_merge(task_vectors)") for r in tuned[4::5])
    # The budget is the dpo run's problem evaluations on dev, its scaled programs' included (racing counts
    # what dropped programs saw).
    spent = sum(r["dev_evaluated"] for r in scored + tuned if r["status"] == "new" and r["executable"])
    assert spent > sum(r["dev_evaluated"] for r in scored if r["status"] == "new" and r["executable"])
    dev_rows = (res / "world" / "data" / "dev.jsonl").read_text().count("\n")
    for m in set(methods) - {"model_stock"}:
        record = json.loads((res / "final" / "baselines" / "main" / m / "budget.json").read_text())
        assert record["budget"] == spent <= record["dev_problem_evaluations"] < spent + dev_rows, m
        assert main[(m, "budget")]["dev_problem_evaluations"] == record["dev_problem_evaluations"]
    assert main[("ties", "grid")]["n_evaluations"] == 4 and main[("model_stock", "grid")]["n_evaluations"] == 1
    assert main[("lines_ta", "grid")]["n_evaluations"] == 4  # alpha x beta
    singles = {r["model"] for r in base if r["family"] == "main" and r["model"] != "merged"}
    assert singles == {"M0", "price", "distance", "multitask"}  # the multi-task upper bound beside the experts
    assert {r["model"] for r in base if r["family"] == "transfer" and r["model"] != "merged"} == {"M0", "t_price", "t_both"}

    transfer = io.read_table(res / "final" / "transfer.parquet", study.TRANSFER_V)
    assert 1 <= len(transfer) <= 2 and all(r["candidate_id"].startswith("dpo-s0-") for r in transfer)
    arms = json.loads((res / "final" / "arms.json").read_text())
    assert set(arms["arms"]) == {"dpo", "nodpo", "evolve", "evolve_dpo"} and arms["dpo_vs_nodpo"]["available"]
    assert all(arms["comparisons"][k]["available"] for k in ("evolve_dpo_vs_evolve", "evolve_dpo_vs_dpo"))
    text = (res / "summary.md").read_text()
    for heading in ("# Leaderboard", "# Baselines (mergekit)", "# Transfer", "## Did DPO beat no-DPO?",
                    "## evolve+DPO vs evolve", "## evolve+DPO vs DPO", "budget-matched baseline", "Upper bound: "):
        assert heading in text, heading
    for name in ("dev_distribution", "executable_rate", "best_so_far", "test_accuracy"):
        assert (res / "final" / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    html = (res / "report.html").read_text(errors="replace")
    assert len(html) > 100_000 and "dev_distribution.png" in html and "study.html" in html
    # The headline's novel programs: each one's original was marked novel by the filter.
    novel = {r["candidate_id"]: r["novel"] for p in res.glob("loop/*/seed0/iter*/executable.parquet")
             for r in io.read_table(p, loop.EXECUTABLE_V)}
    headline = json.loads((res / "summary.json").read_text())["headline"]
    assert all(novel[s["candidate_id"].rsplit("-x", 1)[0]] for s in headline["novel_per_seed"]["seeds"])

    lineage = subprocess.run([sys.executable, "-m", "selfdev", "--config", str(tmp_path / "micro.yaml"), "lineage",
                              "dpo-s0-it2-00000"], capture_output=True, text=True, cwd=tmp_path)
    assert lineage.returncode == 0, lineage.stderr
    out = lineage.stdout
    assert "written by results/loop/dpo/seed0/iter1/factory: DPO on results/loop/dpo/seed0/iter1/pairs.jsonl" in out
    assert "trained from results/factory/warmup" in out and "initial factory converted from" in out
    evo = subprocess.run([sys.executable, "-m", "selfdev", "--config", str(tmp_path / "micro.yaml"), "lineage",
                          "evolve-s0-it2-00000"], capture_output=True, text=True, cwd=tmp_path)
    assert evo.returncode == 0 and "prompted with parent programs dpo-s0-it1-" in evo.stdout, evo.stdout + evo.stderr
    # A scaled program (loop.tune) is found in its run's tuned.parquet, with the chain of its original.
    tuned_id = tuned[0]["candidate_id"]
    scaled = subprocess.run([sys.executable, "-m", "selfdev", "--config", str(tmp_path / "micro.yaml"), "lineage",
                             tuned_id], capture_output=True, text=True, cwd=tmp_path)
    assert scaled.returncode == 0, scaled.stderr
    assert f"program {tuned_id}" in scaled.stdout and "seed0/tuned.parquet" in scaled.stdout
    assert "  written by results/" in scaled.stdout
    bad = subprocess.run([sys.executable, "-m", "selfdev", "--config", str(tmp_path / "micro.yaml"), "lineage",
                          "dpo-s9-it9-00000"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "no program" in bad.stderr


def test_bad_config_fails_before_running(tmp_path):
    (tmp_path / "micro.yaml").write_text("world:\n  data:\n    dev_per_skill: many\n")
    run = _snakemake(tmp_path, "-n", "--cores", "1")
    assert run.returncode != 0
    assert "dev_per_skill" in run.stdout + run.stderr and not (tmp_path / "results").exists()


def test_lint_is_clean(tmp_path):
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "micro.yaml")
    run = _snakemake(tmp_path, "--lint")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Lints for" not in run.stdout + run.stderr
