"""One function per loop rule: files in, files out. The workflow scripts call these."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from selfdev import io
from selfdev.loop import tables as loop
from selfdev.config import sandbox_limits
from selfdev.device import resolve_device
from selfdev.lm import set_threads
from selfdev.seeds import derive_seed


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, mininterval=2.0)


def _prompt_format(config: dict) -> str:
    """`factory.prompt_format` of a rule's config (its params omit the default, `completion`)."""
    return config.get("factory", {}).get("prompt_format", "completion")


def factory_init(*, config: dict, out_dir: str) -> dict:
    """Rule `factory_initial`: config holds `factory.model`."""
    from selfdev.loop.factory import convert_initial_factory

    return convert_initial_factory(config["factory"]["model"], out_dir)


def factory_warmup(*, config: dict, in_dir: str, out_dir: str, threads: int | None = None) -> dict:
    """Rule `factory_warmup`: config holds `seed`, `loop.threads`, `factory.prompt`, `factory.warmup`;
    `threads` is the job's (the rule's `threads:`, which `resources.rules` may raise), else loop.threads."""
    from selfdev.loop.factory import load_prompt
    from selfdev.loop.finetune import WarmupSpec, warmup_sft
    from selfdev.loop.library import EXAMPLE_BODIES

    spec = WarmupSpec.from_config(config["factory"]["warmup"], derive_seed(config["seed"], "warmup"))
    return warmup_sft(in_dir, load_prompt(config["factory"]["prompt"]), EXAMPLE_BODIES, spec, out_dir,
                      threads or config["loop"]["threads"], resolve_device(config["device"]), _prompt_format(config))


def evolve_prompts(config: dict, rep: int, iteration: int, prompt: str, n: int,
                   parent_scores: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Each candidate's prompt and parents: the base prompt (no parents) unless the run has an archive
    (`parent_scores`: its earlier iterations' scores, evolve arms only); then each group of
    `evolve.rows_per_prompt` candidates shares one seeded parent draw."""
    import random

    from selfdev.loop import evolve

    prompts, parents = [prompt] * n, [[] for _ in range(n)]
    if not parent_scores:
        return prompts, parents
    spec = evolve.EvolveSpec.from_config(config["evolve"])
    programs = evolve.archive(_earlier_scores(parent_scores))
    for g, rows in enumerate(evolve.prompt_groups(n, spec.rows_per_prompt)):
        rng = random.Random(derive_seed(config["seed"], "parents", rep, iteration, g))
        chosen = evolve.select_parents(programs, spec.parents, spec.temperature, rng)
        text, ids = evolve.evolve_prompt(prompt, chosen), [p["candidate_id"] for p in chosen]
        for i in rows:
            prompts[i], parents[i] = text, ids
    return prompts, parents


def sample(*, config: dict, arm: str, rep: int, iteration: int, factory_dir: str, out_path: str,
           threads: int | None = None, parent_scores: Sequence[str] = ()) -> dict:
    """Rule `sample`. The sampling seed names the repeat and iteration but not the arm: iteration 1 is
    the same draw in every arm, which is what lets the other arms share dpo's iteration 1. Evolve
    arms pass their run's earlier scores (`parent_scores`) to draw each prompt's parents from."""
    from selfdev.loop.factory import SamplingSpec, load_factory, load_prompt, sample_completions, temperature_at

    set_threads(threads or config["threads"])
    lp, fc = config["loop"], config["factory"]
    prompt = load_prompt(fc["prompt"])
    temp = temperature_at(iteration, lp["t1"], lp["beta"])
    spec = SamplingSpec(lp["n_samples"], temp, lp["top_p"], lp["max_new_tokens"], lp["batch_size"],
                        seed=derive_seed(config["seed"], "sample", rep, iteration))
    prompts, parents = evolve_prompts(config, rep, iteration, prompt, spec.n, parent_scores)
    fmt = _prompt_format(config)
    t0 = time.perf_counter()
    with _progress(spec.n, f"sampling iteration {iteration}") as bar:
        if fc.get("engine", "transformers") == "vllm":  # rule params omit the default engine
            from selfdev.loop.factory import sample_completions_vllm

            completions = sample_completions_vllm(factory_dir, prompts, spec, fc["dtype"], fc["vllm"], bar, fmt,
                                                  threads=threads or config["threads"])
        else:
            model, tok = load_factory(factory_dir, fc["dtype"], resolve_device(config["device"]))
            completions = sample_completions(model, tok, prompts, spec, bar, fmt)
    rows = loop.candidate_rows(completions, prompt, Path(fc["prompt"]).stem, iteration, temp, lp["top_p"],
                               str(factory_dir), f"{arm}-s{rep}", parents)
    io.write_table(rows, out_path, loop.CANDIDATES_V, loop.CANDIDATE_COLUMNS)
    return {"candidates": len(rows), "temperature": temp, "seconds": time.perf_counter() - t0,
            "engine": fc.get("engine", "transformers")}


def _earlier_scores(paths: Sequence[str]) -> list[list[dict]]:
    return [io.read_table(p, loop.SCORES_V) for p in paths]


def filter_step(*, config: dict, candidates: str, earlier_scores: Sequence[str], out_path: str,
                seed_dir: str | None = None) -> dict:
    """Rule `filter`: config holds `sandbox`, `world.experts` (their number is the expert count
    behaviours are told apart on) and `factory.prompt` (what the factory was shown, for novelty);
    `seed_dir` is M0's folder, whose depth the probe sweeps (a two-argument program's layers)."""
    from selfdev.params import layer_count
    from selfdev.sandbox.probe import check_program

    n_experts = len(config["world"]["experts"])
    n_layers = layer_count((), seed_dir) if seed_dir else None
    cands = io.read_table(candidates, loop.CANDIDATES_V)
    earlier = _earlier_scores(earlier_scores)
    known = loop.Behaviours.from_scores(n_experts, earlier)
    limits = sandbox_limits(config, "probe")
    with _progress(len(cands), "probing candidates") as bar:
        def check(code):
            bar.update(1)
            return check_program(code, limits, n_experts, n_layers)
        rows = loop.filter_candidates(cands, loop.earliest_scores(earlier), check,
                                      config["sandbox"]["allowed_imports"], known)
    # Novelty: behaviours unlike the programs the factory was shown (prompt examples, warm-up library).
    from selfdev.loop.factory import load_prompt
    from selfdev.loop.library import EXAMPLE_BODIES

    shown = [check_program(code, limits, n_experts, n_layers) for code in
             loop.known_programs(load_prompt(config["factory"]["prompt"]), EXAMPLE_BODIES)]
    rows = loop.mark_novel(rows, [v.info["signature"] for v in shown if v.executable], n_experts)
    io.write_table(rows, out_path, loop.EXECUTABLE_V, loop.EXECUTABLE_COLUMNS)
    return {"rows": len(rows), "executable": sum(r["executable"] for r in rows),
            "to_score": sum(r["status"] == "new" and r["executable"] for r in rows)}


def _race_pools(config: dict, executable: str, earlier_scores: Sequence[str]):
    """Racing's pools for this iteration (None: `loop.racing` off, every program on all of dev)."""
    if not config["loop"]["racing"]:
        return None
    lc = config["loop"]
    return loop.race_pools(io.read_table(executable, loop.EXECUTABLE_V), _earlier_scores(earlier_scores),
                           p_w=lc["p_w"], min_chosen=lc["min_chosen"], earlier_top=lc["earlier_top"],
                           top_k=config["study"]["top_k"])


def _score_programs(config: dict, todo: Sequence[dict], seed_dir: str, task_vectors: Sequence[str], rows: str,
                    shots: str, desc: str, pools=None) -> list[dict]:
    """Score rows (status `new`) for `todo`, in its order, on one engine; with racing `pools`, each
    program until the bound drops it (selfdev.scoring.racing)."""
    from selfdev.scoring.programs import make_scorer
    from selfdev.scoring.racing import Race

    if not todo:
        return []
    scorer = make_scorer(config, seed_dir, task_vectors, rows, shots)
    race = None if pools is None else Race(len(scorer.rows), pools, derive_seed(config["seed"], "racing"))
    out = []
    with _progress(len(todo), desc) as bar:
        for prog in todo:
            rec = scorer.score_program(prog["code"], probe_first=False, race=race)
            out.append({"candidate_id": prog["candidate_id"], "iteration": prog["iteration"],
                        "code_hash": prog["code_hash"], "status": "new", **_score_fields(rec),
                        "body": prog["body"], "code": prog["code"], "factory": prog["factory"],
                        "scored_in_iteration": prog["iteration"], "behaviour": prog["behaviour"],
                        "algorithm": prog["algorithm"], "signature": prog["signature"]})
            bar.update(1)
    scorer.engine.close()
    return out


def _score_fields(rec) -> dict:
    """The scores-table fields of a selfdev.scoring.merge.ScoreRecord."""
    return {"executable": rec.executable, "category": rec.category, "reason": rec.reason, "dev_accuracy": rec.accuracy,
            "per_skill": json.dumps(rec.per_skill), "score_seconds": sum(rec.timings.values()),
            "dev_correct": sum(1 for ok in rec.correct if ok) if rec.executable else None,
            "dev_evaluated": rec.evaluated if rec.executable else None, "dev_problems": rec.n, "partial": rec.partial}


def _todo(candidates: str, executable: str, earlier_scores: Sequence[str]):
    """The programs this iteration must score (one per new behaviour), and a function turning their
    rows into the whole table (scores reused by code or behaviour filled in)."""
    cands = io.read_table(candidates, loop.CANDIDATES_V)
    execs = io.read_table(executable, loop.EXECUTABLE_V)
    earlier = _earlier_scores(earlier_scores)
    return loop.programs_to_score(cands, execs), lambda new: loop.assemble_scores(execs, cands, earlier, new)


def score_step(*, config: dict, candidates: str, executable: str, earlier_scores: Sequence[str], seed_dir: str,
               task_vectors: Sequence[str], rows: str, shots: str, out_path: str, threads: int | None = None) -> dict:
    """Rule `score` (eval.shards 1): config holds `threads`, `device`, `eval` and `sandbox`."""
    set_threads(threads or config["threads"])
    todo, assemble = _todo(candidates, executable, earlier_scores)
    out = assemble(_score_programs(config, todo, seed_dir, task_vectors, rows, shots, "scoring programs",
                                   _race_pools(config, executable, earlier_scores)))
    io.write_table(out, out_path, loop.SCORES_V, loop.SCORE_COLUMNS)
    return {"to_score": len(todo), "reused": len(out) - len(todo), **loop.evaluations_saved(out),
            "engine": config["eval"].get("engine", "transformers")}


def gather_scores_step(*, candidates: str, executable: str, earlier_scores: Sequence[str], shard_paths: Sequence[str],
                       out_path: str) -> dict:
    """Rule `score_gather` (eval.shards > 1): the `score` shards' rows joined into the table one job
    would have written (same rows, same order); loads no model."""
    todo, assemble = _todo(candidates, executable, earlier_scores)
    out = assemble(loop.gather_shards([io.read_table(p, loop.SCORES_V) for p in shard_paths], todo))
    io.write_table(out, out_path, loop.SCORES_V, loop.SCORE_COLUMNS)
    return {"gathered": len(todo), "reused": len(out) - len(todo), "shards": len(shard_paths)}


def score_shard_step(*, config: dict, shard: int, shards: int, candidates: str, executable: str,
                     earlier_scores: Sequence[str], seed_dir: str, task_vectors: Sequence[str], rows: str,
                     shots: str, out_path: str, threads: int | None = None) -> dict:
    """Rule `score` with eval.shards > 1: shard `shard` of `shards` scores every `shards`-th program needing a score
    (round robin over the iteration's order, which balances long and short programs)."""
    set_threads(threads or config["threads"])
    todo, _ = _todo(candidates, executable, earlier_scores)
    mine = loop.shard_of(todo, shard, shards)
    # Each shard races on its own bar: lower than one shared bar, so still exact (it saves less).
    new = _score_programs(config, mine, seed_dir, task_vectors, rows, shots, f"scoring shard {shard + 1}/{shards}",
                          _race_pools(config, executable, earlier_scores))
    io.write_table(new, out_path, loop.SCORES_V, loop.SCORE_COLUMNS)
    return {"shard": shard, "shards": shards, "scored_now": len(new), "engine": config["eval"].get("engine", "transformers")}


def pairs_step(*, config: dict, rep: int, iteration: int, scores: str, earlier_scores: Sequence[str],
               out_path: str) -> dict:
    """Rule `pairs`: config holds `seed`, `factory.prompt` and the pair keys of `loop`."""
    from selfdev.loop.factory import load_prompt

    spec = loop.PairSpec.from_config(config["loop"], derive_seed(config["seed"], "pairs", rep, iteration))
    pairs = loop.select_pairs(io.read_table(scores, loop.SCORES_V), _earlier_scores(earlier_scores),
                              spec, iteration, load_prompt(config["factory"]["prompt"]))
    loop.write_pairs(pairs, out_path)
    return {"pairs": len(pairs)}


def dpo_step(*, config: dict, rep: int, iteration: int, factory_dir: str, pairs: str, out_dir: str,
             threads: int | None = None) -> dict:
    """Rule `dpo`: config holds `seed`, `loop.threads` and `dpo`; `threads` is the job's (the rule's
    `threads:`, which `resources.rules` may raise), else loop.threads."""
    from selfdev.loop.finetune import DpoSpec, train_dpo

    spec = DpoSpec.from_config(config["dpo"], derive_seed(config["seed"], "dpo", rep, iteration))
    return train_dpo(factory_dir, loop.read_pairs(pairs), spec, out_dir, threads or config["loop"]["threads"], str(pairs),
                     resolve_device(config["device"]), _prompt_format(config))


def tune_step(*, config: dict, score_paths: Sequence[str], seed_dir: str, task_vectors: Sequence[str], rows: str,
              shots: str, out_path: str, threads: int | None = None) -> dict:
    """Rule `tune` (after a run's last iteration): the run's `loop.tune.programs` best programs by dev,
    each scaled by every `loop.tune.scales` value (selfdev.loop.tables.scaled_program) and scored on
    dev, as a baseline's lambda is tuned. With `loop.racing`, a scaled program stops once it cannot
    beat the best program found so far. Its rows count in the budget the budget-matched baselines get.
    config holds `seed`, `threads`, `device`, `eval`, `sandbox`, `world.experts` and `loop`."""
    from selfdev.params import layer_count
    from selfdev.sandbox.probe import check_program
    from selfdev.scoring.merge import ScoreRecord
    from selfdev.scoring.programs import make_scorer
    from selfdev.scoring.racing import Race

    set_threads(threads or config["threads"])
    tc = config["loop"]["tune"]
    top = loop.best_programs([r for p in score_paths for r in io.read_table(p, loop.SCORES_V)
                              if not r.get("partial")], tc["programs"])
    todo = [(prog, float(s)) for prog in top for s in tc["scales"] if float(s) != 1.0]
    out: list[dict] = []
    if todo:
        limits = sandbox_limits(config, "probe")
        n_experts, n_layers = len(config["world"]["experts"]), layer_count((), seed_dir)
        scorer = make_scorer(config, seed_dir, task_vectors, rows, shots)
        race = (Race(len(scorer.rows), [(1, [max(p["dev_correct"] for p in top)])], derive_seed(config["seed"], "tune"))
                if config["loop"]["racing"] else None)
        with _progress(len(todo), "tuning scales") as bar:
            for prog, scale in todo:
                code = loop.scaled_program(prog["code"], scale)
                # Probed here (with the world's expert count and depth) for its behaviour signature.
                verdict = check_program(code, limits, n_experts, n_layers)
                rec = (scorer.score_program(code, probe_first=False, race=race) if verdict.executable else
                       ScoreRecord(False, verdict.category, verdict.reason, None, len(scorer.rows),
                                   timings={"probe_s": verdict.seconds}))
                sig = json.dumps(verdict.info["signature"]) if verdict.executable else None
                out.append(loop.tuned_row(prog, scale, code, verdict.code_hash, sig, _score_fields(rec)))
                bar.update(1)
        scorer.engine.close()
    io.write_table(out, out_path, loop.SCORES_V, loop.SCORE_COLUMNS)
    best = max((r for r in out if r["executable"] and not r["partial"]), key=lambda r: r["dev_accuracy"], default=None)
    return {"programs": len(top), "scaled": len(out), "best_tuned_dev": best and best["dev_accuracy"],
            "best_untuned_dev": top[0]["dev_accuracy"] if top else None}


def summary_step(*, run: str, iterations: Sequence[dict], world_report: str, out_json: str, out_md: str) -> dict:
    """One run's (arm and seed) per-iteration statistics. Each of `iterations` names that iteration's
    files (candidates, executable, scores, and for the dpo arm pairs and train_log); every one is a
    declared input of the rule. Seconds per stage are in the Snakemake benchmark files (benchmarks/)."""
    report = io.read_json(world_report)
    t = report["targets"]
    ta = max((r for r in report["rows"] if r["method"] == "task_arithmetic"), key=lambda r: r["dev_accuracy"])
    out, score_tables = [], []
    for i, files in enumerate(iterations, start=1):
        cands = io.read_table(files["candidates"], loop.CANDIDATES_V)
        execs = io.read_table(files["executable"], loop.EXECUTABLE_V)
        scores = io.read_table(files["scores"], loop.SCORES_V)
        # The nodpo arm has no pairs and no DPO step.
        pairs = loop.read_pairs(files["pairs"]) if "pairs" in files else []
        dpo_log = io.read_json(files["train_log"]) if "train_log" in files else {}
        score_tables.append(scores)
        out.append({"iteration": i, "stats": loop.iteration_stats(cands, execs, scores, pairs, dpo_log),
                    "best_so_far": (loop.best_program(score_tables) or {}).get("dev_accuracy")})
    best = loop.best_program(score_tables)
    summary = {"schema_version": loop.SUMMARY_V, "run": run,
               "seed_dev": t["seed"], "best_expert_dev": t["best_expert"],
               "ta_best_dev": ta["dev_accuracy"], "ta_best_lambda": ta["params"]["lambda"],
               "iterations": out,
               "best": {k: best[k] for k in ("candidate_id", "iteration", "code_hash", "dev_accuracy", "body",
                                             "code", "factory")} if best else None}
    io.write_json(summary, out_json)
    io.write_text(loop.summary_markdown(summary), out_md)
    return summary
