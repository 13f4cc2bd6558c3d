"""The study's steps: a rule's config subset and files in, files out. The workflow scripts call these;
the numbers come from the pure builders in `selfdev.study.tables`."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from selfdev import io
from selfdev.io import read_json, write_json
from selfdev.loop import tables as loop
from selfdev.seeds import derive_seed
from selfdev.study.baselines import MULTITASK_MODEL, SINGLES_V
from selfdev.study.stats import bits
from selfdev.study.tables import (BASELINE_COLUMNS, BASELINES_V, FINAL_COLUMNS, FINAL_V, LEADERBOARD_V, STUDY_V,
                                  TRANSFER_COLUMNS, TRANSFER_V, arms_comparison, arms_markdown, baseline_rows,
                                  baselines_markdown, headline, leaderboard_markdown, study_markdown, top_programs,
                                  transfer_markdown, transfer_summary, with_ci)


def final_test_step(*, config: dict, arm: str, seed: int, score_paths: Sequence[str], seed_dir: str,
                    task_vectors: Sequence[str], test_path: str, shots_path: str, out_path: str, threads: int,
                    shard: int = 0, shards: int = 1) -> dict:
    """The arm-seed's top-k programs by dev, each scored once on test in the sandbox. With `shards` > 1
    this job scores ranks shard+1, shard+1+shards, ... only (gather_final_test_step joins them)."""
    from selfdev.scoring.programs import make_scorer
    from selfdev.lm import set_threads

    set_threads(threads)
    st = config["study"]
    tables = [io.read_table(p, loop.SCORES_V) for p in score_paths]
    top = loop.shard_of(_ranked(tables, st["top_k"]), shard, shards)
    scorer = make_scorer(config, seed_dir, task_vectors, test_path, shots_path) if top else None
    rows = []
    for prog in top:
        rec = scorer.score_program(prog["code"], probe_first=False)
        row = {"arm": arm, "seed": seed, "rank": prog["rank"], **{k: prog.get(k) for k in
               ("candidate_id", "iteration", "code_hash", "dev_accuracy", "body", "code", "factory")},
               "executable": rec.executable, "category": rec.category, "reason": rec.reason,
               "test_accuracy": rec.accuracy, "test_low": None, "test_high": None, "n_test": rec.n,
               "test_correct": ""}
        if rec.executable:
            row = with_ci(row, rec.correct, st["bootstrap"], st["ci"])
        rows.append(row)
    if scorer is not None:
        scorer.engine.close()
    io.write_table(rows, out_path, FINAL_V, FINAL_COLUMNS)
    return {"programs": len(rows), "best_test": rows[0]["test_accuracy"] if rows else None}


def _ranked(tables: Sequence[Sequence[dict]], k: int) -> list[dict]:
    return [{**prog, "rank": rank} for rank, prog in enumerate(top_programs(tables, k), 1)]


def gather_final_test_step(*, config: dict, score_paths: Sequence[str], shard_paths: Sequence[str], out_path: str) -> dict:
    """Rule `final_test_gather` (eval.shards > 1): the shards' rows in rank order, the table one
    `final_test` job would have written."""
    top = _ranked([io.read_table(p, loop.SCORES_V) for p in score_paths], config["study"]["top_k"])
    rows = loop.gather_shards([io.read_table(p, FINAL_V) for p in shard_paths], top, key="rank")
    io.write_table(rows, out_path, FINAL_V, FINAL_COLUMNS)
    return {"programs": len(rows), "best_test": rows[0]["test_accuracy"] if rows else None, "shards": len(shard_paths)}


def baseline_step(*, config: dict, family: str, method: str, mode: str, seed_dir: str,
                  task_vectors: Sequence[str], dev_path: str, test_path: str, shots_path: str,
                  budget_score_paths: Sequence[Sequence[str]], out_path: str, threads: int) -> dict:
    """A mergekit baseline tuned on dev (`grid`, or `budget`: random search with the discovery run's
    number of dev evaluations), then scored once on test."""
    from selfdev.study import baselines
    from selfdev.scoring.programs import make_scorer
    from selfdev.io import read_jsonl
    from selfdev.lm import set_threads
    from selfdev.loop.steps import _progress
    from selfdev.scoring.racing import Race

    set_threads(threads)
    b = config["baselines"]
    scorer = make_scorer(config, seed_dir, task_vectors, dev_path, shots_path)
    budget = None
    if mode == "grid":
        configs = baselines.grid(method, b["grid_size"], b["lambda_range"], b["density_range"], b["beta_range"])
    elif mode == "budget":
        runs = [[io.read_table(p, loop.SCORES_V) for p in paths] for paths in budget_score_paths]
        budget = baselines.discovery_budget(runs)
        configs = baselines.config_stream(method, len(task_vectors), b["lambda_range"], b["density_range"],
                                          b["weight_range"], derive_seed(config["seed"], "baseline", method),
                                          b["beta_range"])
    else:
        raise ValueError(f"baseline mode must be 'grid' or 'budget', got {mode!r}")
    # Only the best configuration matters: racing against the best so far keeps it exactly.
    race = Race(len(scorer.rows), [(1, [])], derive_seed(config["seed"], "racing")) if config["loop"]["racing"] else None
    with _progress(len(configs) if budget is None else None, f"{method} {mode} on {family}") as bar:
        # DARE's random drops: one fixed stream per method, the same for every configuration.
        record = baselines.tune_and_test(scorer, method, mode, configs, read_jsonl(test_path),
                                         derive_seed(config["seed"], "dare", method), family, bar, budget, race)
    write_json(record, out_path)
    return {k: record[k] for k in ("method", "mode", "n_evaluations", "dev_problem_evaluations", "budget",
                                   "dev_accuracy", "test_accuracy")}


def singles_step(*, config: dict, family: str, seed_dir: str, expert_dirs: Sequence[str], dev_path: str,
                 test_path: str, shots_path: str, out_path: str, threads: int, multitask_dir: str | None = None) -> dict:
    """M0, every expert of the family and the multi-task model (model `multitask`, when given) alone, on
    dev and test."""
    from selfdev.device import resolve_device
    from selfdev.scoring.evaluate import evaluate
    from selfdev.io import read_jsonl
    from selfdev.lm import GenerationSpec, load_causal_lm, set_threads
    from selfdev.scoring.prompts import load_template

    set_threads(threads)
    ev = config["eval"]
    tpl, gen = load_template(ev["prompt"]), GenerationSpec(ev["max_new_tokens"], ev["batch_size"])
    dev, test, shots = read_jsonl(dev_path), read_jsonl(test_path), read_jsonl(shots_path)
    device = resolve_device(config["device"])
    rows = []
    models = [("M0", seed_dir), *[(Path(p).name, p) for p in expert_dirs]]
    for name, path in models + ([(MULTITASK_MODEL, multitask_dir)] if multitask_dir else []):
        model, tok = load_causal_lm(path, ev["dtype"], device)
        d = evaluate(model, tok, dev, tpl, gen, shots, ev["task"])
        t = evaluate(model, tok, test, tpl, gen, shots, ev["task"])
        del model
        rows.append({"model": name, "dev_accuracy": d.accuracy, "test_accuracy": t.accuracy,
                     "test_correct": bits(t.correct)})
    out = {"schema_version": SINGLES_V, "family": family, "rows": rows}
    write_json(out, out_path)
    return {r["model"]: r["test_accuracy"] for r in rows}


def transfer_step(*, config: dict, score_paths: Sequence[str], seed_dir: str, task_vectors: Sequence[str],
                  dev_path: str, test_path: str, shots_path: str, out_path: str, threads: int) -> dict:
    """The main arm's top programs (by discovery dev; dpo when it ran), applied unchanged to the transfer family."""
    from selfdev.scoring.programs import make_scorer
    from selfdev.io import read_jsonl
    from selfdev.lm import set_threads

    set_threads(threads)
    st = config["study"]
    top = top_programs([io.read_table(p, loop.SCORES_V) for p in score_paths], config["transfer"]["top_k"])
    scorer = make_scorer(config, seed_dir, task_vectors, dev_path, shots_path) if top else None
    test = read_jsonl(test_path)
    rows = []
    for rank, prog in enumerate(top, 1):
        # Untrusted code: merged once in the sandbox, the checked result scored on dev and test.
        with scorer.merged_program(prog["code"]) as outcome:
            dev = scorer.evaluate() if outcome.ok else None
            result = scorer.evaluate(test) if outcome.ok else None
        row = {"rank": rank, "candidate_id": prog["candidate_id"], "code_hash": prog["code_hash"],
               "discovery_dev": prog["dev_accuracy"], "executable": outcome.ok, "category": outcome.category,
               "reason": outcome.reason, "dev_accuracy": None, "test_accuracy": None, "test_low": None,
               "test_high": None, "n_test": len(test), "test_correct": "", "body": prog["body"]}
        if outcome.ok:
            row = with_ci({**row, "dev_accuracy": dev.accuracy, "test_accuracy": result.accuracy}, result.correct,
                          st["bootstrap"], st["ci"])
        rows.append(row)
    io.write_table(rows, out_path, TRANSFER_V, TRANSFER_COLUMNS)
    return {"programs": len(rows)}


def study_step(*, config: dict, final_paths: Sequence[str], baseline_paths: Sequence[str],
               singles_paths: Sequence[str], transfer_path: str | None, runs: dict[str, dict[int, list[str]]],
               out: dict[str, str], executable_paths: Sequence[str] = ()) -> dict:
    """Every table of the study from the step outputs: leaderboard, baselines, transfer, arms, summary.
    `executable_paths`: the runs' executable tables, whose `novel` flags give the headline's best novel
    program per seed."""
    st = config["study"]
    n_boot, level = st["bootstrap"], st["ci"]
    finals = [r for p in final_paths for r in io.read_table(p, FINAL_V)]
    finals.sort(key=lambda r: (r["arm"] != "dpo", r["arm"], r["seed"], r["rank"]))
    io.write_table(finals, out["leaderboard"], LEADERBOARD_V, FINAL_COLUMNS)
    lb_md = leaderboard_markdown(finals, level)
    io.write_text(lb_md, out["leaderboard_md"])

    records = [read_json(p) for p in baseline_paths]
    singles = [read_json(p) for p in singles_paths]
    base_rows = baseline_rows(records, singles, n_boot, level)
    io.write_table([{**r} for r in base_rows], out["baselines"], BASELINES_V, BASELINE_COLUMNS)
    base_md = baselines_markdown(base_rows, "main", "Baselines (mergekit), tuned on dev, scored once on test")
    io.write_text(base_md, out["baselines_md"])

    transfer_programs = io.read_table(transfer_path, TRANSFER_V) if transfer_path else []
    t_summary = transfer_summary(transfer_programs, base_rows, n_boot, level)
    io.write_table(transfer_programs, out["transfer"], TRANSFER_V, TRANSFER_COLUMNS)
    tr_md = (transfer_markdown(transfer_programs, base_rows, t_summary) if transfer_path
             else "# Transfer\n\nNot run: world.transfer_experts is empty.\n")
    io.write_text(tr_md, out["transfer_md"])

    run_tables = {arm: {seed: [io.read_table(p, loop.SCORES_V) for p in paths] for seed, paths in seeds.items()}
                  for arm, seeds in runs.items()}
    arms = arms_comparison(finals, run_tables, n_boot, level)
    write_json(arms, out["arms"])
    arms_md = arms_markdown(arms)
    io.write_text(arms_md, out["arms_md"])

    novel = ({r["candidate_id"]: bool(r["novel"]) for p in executable_paths for r in io.read_table(p, loop.EXECUTABLE_V)}
             if executable_paths else None)
    study = {"schema_version": STUDY_V, "headline": headline(finals, base_rows, n_boot, level, novel),
             "transfer": t_summary, "dpo_vs_nodpo": arms["dpo_vs_nodpo"], "comparisons": arms["comparisons"]}
    write_json(study, out["json"])
    md = study_markdown(study, [lb_md, base_md, tr_md, arms_md])
    io.write_text(md, out["md"])
    if "html" in out:
        from selfdev.study.report import markdown_to_html

        io.write_text(markdown_to_html(md, "Self-Developing study"), out["html"])
    return study
