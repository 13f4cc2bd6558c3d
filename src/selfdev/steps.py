"""One function per loop rule: files in, files out. The workflow scripts call these."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from . import loop
from .config import sandbox_limits
from .lm import set_threads
from .smk import read_json, write_json


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, mininterval=2.0)


def factory_init(config: dict, out_dir: str) -> dict:
    from .factory import convert_initial_factory

    log = convert_initial_factory(config["factory"]["model"], out_dir)
    log.update(kind="initial", parent=None)
    (Path(out_dir) / "train_log.json").write_text(json.dumps(log, indent=2))
    return log


def factory_warmup(config: dict, in_dir: str, out_dir: str, threads: int) -> dict:
    from .factory import load_prompt
    from .finetune import LoraSpec, WarmupSpec, warmup_sft
    from .library import EXAMPLE_BODIES

    w = config["factory"]["warmup"]
    spec = WarmupSpec(w["epochs"], w["lr"], w["batch_size"], config["seed"], LoraSpec(w["lora_r"], w["lora_alpha"]))
    return warmup_sft(in_dir, load_prompt(config["factory"]["prompt"]), EXAMPLE_BODIES, spec, out_dir, threads)


def run_seed(config: dict, rep: int, salt: int = 0) -> int:
    """The seed of repeat `rep` of the loop; repeat 0 keeps the master seed's original streams."""
    return config["seed"] * 1000 + salt + 100_003 * rep


def sample(config: dict, iteration: int, factory_dir: str, out_path: str, threads: int, arm: str = "dpo",
           rep: int = 0) -> dict:
    from .factory import SamplingSpec, load_factory, load_prompt, sample_completions, temperature_at

    set_threads(threads)
    lp, fc = config["loop"], config["factory"]
    prompt = load_prompt(fc["prompt"])
    temp = temperature_at(iteration, lp["t1"], lp["beta"])
    model, tok = load_factory(factory_dir, fc["dtype"])
    spec = SamplingSpec(lp["n_samples"], temp, lp["top_p"], lp["max_new_tokens"], lp["batch_size"],
                        seed=run_seed(config, rep, iteration))
    t0 = time.perf_counter()
    with _progress(spec.n, f"sampling iteration {iteration}") as bar:
        completions = sample_completions(model, tok, prompt, spec, bar)
    rows = loop.candidate_rows(completions, prompt, Path(fc["prompt"]).stem, iteration, temp, lp["top_p"],
                               str(factory_dir), f"{arm}-s{rep}")
    loop.write_table(rows, out_path, loop.CANDIDATES_V, loop.CANDIDATE_COLUMNS)
    return {"candidates": len(rows), "temperature": temp, "seconds": time.perf_counter() - t0}


def _earlier_scores(paths: Sequence[str]) -> list[list[dict]]:
    return [loop.read_table(p, loop.SCORES_V) for p in paths]


def filter_step(config: dict, candidates_path: str, earlier_score_paths: Sequence[str], out_path: str) -> dict:
    from .probe import check_program

    cands = loop.read_table(candidates_path, loop.CANDIDATES_V)
    seen = {h: r["candidate_id"] for h, r in loop.earliest_scores(_earlier_scores(earlier_score_paths)).items()}
    limits = sandbox_limits(config, "probe")
    with _progress(len(cands), "probing candidates") as bar:
        def check(code):
            bar.update(1)
            return check_program(code, limits)
        rows = loop.filter_candidates(cands, seen, check, config["sandbox"]["allowed_imports"])
    loop.write_table(rows, out_path, loop.EXECUTABLE_V, loop.EXECUTABLE_COLUMNS)
    return {"rows": len(rows), "executable": sum(r["executable"] for r in rows)}


def score_step(config: dict, candidates_path: str, executable_path: str, earlier_score_paths: Sequence[str],
               seed_dir: str, task_vectors: Sequence[str], rows_path: str, out_path: str, threads: int) -> dict:
    from .api import make_scorer

    set_threads(threads)
    cands = loop.read_table(candidates_path, loop.CANDIDATES_V)
    execs = loop.read_table(executable_path, loop.EXECUTABLE_V)
    todo = loop.programs_to_score(cands, execs)
    rows = loop.reused_scores(execs, cands, loop.earliest_scores(_earlier_scores(earlier_score_paths)))
    if todo:
        scorer = make_scorer(config, seed_dir, task_vectors, rows_path)
        with _progress(len(todo), "scoring programs") as bar:
            for prog in todo:
                rec = scorer.score_program(prog["code"], probe_first=False)
                rows.append({"candidate_id": prog["candidate_id"], "iteration": prog["iteration"],
                             "code_hash": prog["code_hash"], "status": "new", "executable": rec.executable,
                             "category": rec.category, "reason": rec.reason, "dev_accuracy": rec.accuracy,
                             "per_skill": json.dumps(rec.per_skill), "score_seconds": sum(rec.timings.values()),
                             "body": prog["body"], "code": prog["code"], "factory": prog["factory"],
                             "scored_in_iteration": prog["iteration"]})
                bar.update(1)
    loop.write_table(rows, out_path, loop.SCORES_V, loop.SCORE_COLUMNS)
    return {"scored_now": len(todo), "reused": len(rows) - len(todo)}


def pairs_step(config: dict, iteration: int, scores_path: str, earlier_score_paths: Sequence[str],
               out_path: str, rep: int = 0) -> dict:
    from .factory import load_prompt

    lp = config["loop"]
    spec = loop.PairSpec(lp["p_w"], lp["p_l"], lp["min_chosen"], lp["min_rejected"], lp["earlier_top"],
                         lp["max_pairs"], config["seed"] + 7919 * rep)
    pairs = loop.select_pairs(loop.read_table(scores_path, loop.SCORES_V), _earlier_scores(earlier_score_paths),
                              spec, iteration, load_prompt(config["factory"]["prompt"]))
    loop.write_pairs(pairs, out_path)
    return {"pairs": len(pairs)}


def dpo_step(config: dict, factory_dir: str, pairs_path: str, out_dir: str, threads: int, rep: int = 0) -> dict:
    from .finetune import DpoSpec, LoraSpec, train_dpo

    d = config["dpo"]
    spec = DpoSpec(d["lr"], d["beta"], d["epochs"], d["batch_size"], d["max_length"], config["seed"] + 7919 * rep,
                   LoraSpec(d["lora_r"], d["lora_alpha"]))
    return train_dpo(factory_dir, loop.read_pairs(pairs_path), spec, out_dir, threads, str(pairs_path))


STAGES = ("sample", "filter", "score", "pairs", "dpo")


def summary_step(run: str, iteration_files: Sequence[dict], world_report_path: str, benchmark_dir: str,
                 out_json: str, out_md: str) -> dict:
    """One run's (arm and seed) per-iteration statistics; `tag` of each iteration names its benchmark files."""
    from .world import build_seconds

    report = read_json(world_report_path)
    t = report["targets"]
    ta = max((r for r in report["rows"] if r["method"] == "task_arithmetic"), key=lambda r: r["dev_accuracy"])
    bench = build_seconds(benchmark_dir)
    iterations, score_tables = [], []
    for i, files in enumerate(iteration_files, start=1):
        cands = loop.read_table(files["candidates"], loop.CANDIDATES_V)
        execs = loop.read_table(files["executable"], loop.EXECUTABLE_V)
        scores = loop.read_table(files["scores"], loop.SCORES_V)
        # The nodpo arm has no pairs and no DPO step.
        pairs = loop.read_pairs(files["pairs"]) if "pairs" in files else []
        dpo_log = read_json(Path(files["factory"]).parent / "train_log.json") if "factory" in files else {}
        score_tables.append(scores)
        iterations.append({"iteration": i, "stats": loop.iteration_stats(cands, execs, scores, pairs, dpo_log),
                           "seconds": {s: bench.get(f"{s}_{files['tag']}_it{i}", 0.0) for s in STAGES},
                           "best_so_far": (loop.best_program(score_tables) or {}).get("dev_accuracy")})
    best = loop.best_program(score_tables)
    summary = {"schema_version": loop.SUMMARY_V, "run": run,
               "seed_dev": t["seed"], "best_expert_dev": t["best_expert"],
               "ta_best_dev": ta["dev_accuracy"], "ta_best_lambda": ta["params"]["lambda"], "stages": list(STAGES),
               "iterations": iterations,
               "best": {k: best[k] for k in ("candidate_id", "iteration", "code_hash", "dev_accuracy", "body",
                                             "code", "factory")} if best else None}
    write_json(summary, out_json)
    Path(out_md).write_text(loop.summary_markdown(summary))
    return summary
