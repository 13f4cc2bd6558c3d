"""The embedded toy world: generated data, a tiny seed model M0, experts fine-tuned from it.

Each function is one workflow step with files in and files out; the workflow scripts are thin
adapters around them. Seeds are derived from the config's master seed so a world is reproducible.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Sequence

from . import toydata
from .config import expert_skills, transfer_skills
from .gsm8k import read_jsonl, write_jsonl
from .lm import TinyLlamaSpec, TrainSpec, build_tiny_llama, set_threads, train_causal_lm
from .prompts import load_template

DATA_FORMAT = "selfdev.world_data.v1"
# The transfer family's data and training seeds start this far from the discovery family's, so
# adding or renaming transfer experts never changes the discovery world.
TRANSFER_SEED_OFFSET = 500


def build_data(world: dict, seed: int, out_dir: str | Path) -> dict:
    """seed_train.jsonl, expert_<name>.jsonl, dev.jsonl, test.jsonl (GSM8K format + `skill`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    d, skills = world["data"], list(world["skills"])
    experts = expert_skills(world)
    transfer = transfer_skills(world)
    for name, ex_skills in {**experts, **transfer}.items():
        unknown = set(ex_skills) - set(skills)
        if unknown:
            raise ValueError(f"world.experts.{name}: skills {sorted(unknown)} are not in world.skills {skills}")
    dev = toydata.make_split(seed * 1000 + 2, skills, d["dev_per_skill"])
    # Test problems never repeat a dev question.
    dev_q = {r["question"] for r in dev}
    rng_seed = seed * 1000 + 3
    test: list[dict] = []
    while len(test) < d["test_per_skill"] * len(skills):
        test += [r for r in toydata.make_split(rng_seed, skills, d["test_per_skill"]) if r["question"] not in dev_q]
        rng_seed += 7919
    test = _balanced(test, skills, d["test_per_skill"])
    files = {"dev": dev, "test": test,
             "seed_train": toydata.make_split(seed * 1000 + 1, skills, d["seed_train_per_skill"], restricted=True)}
    files.update(_expert_files(experts, skills, d, seed, offset=0))
    # The transfer family draws its own data seeds: same generator, problems never seen in discovery.
    files.update(_expert_files(transfer, skills, d, seed, offset=TRANSFER_SEED_OFFSET))
    for name, rows in files.items():
        write_jsonl(rows, out / f"{name}.jsonl")
    meta = {"format": DATA_FORMAT, "skills": skills, "sizes": {k: len(v) for k, v in files.items()}}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _expert_files(experts: dict[str, list[str]], skills: Sequence[str], d: dict, seed: int,
                  offset: int) -> dict[str, list[dict]]:
    files = {}
    for i, (name, ex_skills) in enumerate(sorted(experts.items())):
        own = toydata.make_split(seed * 1000 + 10 + offset + i, list(ex_skills), d["expert_train_per_skill"])
        frac = d["replay_fraction"]
        n_replay = int(round(len(own) * frac / (1 - frac) / len(skills))) if frac > 0 else 0
        replay = (toydata.make_split(seed * 1000 + 50 + offset + i, list(skills), n_replay, restricted=True)
                  if n_replay else [])
        rows = own + replay
        random.Random(seed + offset + i).shuffle(rows)
        files[f"expert_{name}"] = rows
    return files


def _balanced(rows: Sequence[dict], skills: Sequence[str], per_skill: int) -> list[dict]:
    by: dict[str, list[dict]] = {s: [] for s in skills}
    for r in rows:
        if len(by[r["skill"]]) < per_skill:
            by[r["skill"]].append(r)
    return [by[s][i] for i in range(per_skill) for s in skills]


def _spec(world: dict) -> TinyLlamaSpec:
    m = world["model"]
    if m["hidden_size"] % m["num_attention_heads"]:
        raise ValueError("world.model.num_attention_heads must divide world.model.hidden_size")
    return TinyLlamaSpec(m["hidden_size"], m["intermediate_size"], m["num_hidden_layers"], m["num_attention_heads"])


def _save(model, tokenizer, out_dir: Path, log: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "train_log.json").write_text(json.dumps(log, indent=2))


def train_seed(world: dict, seed: int, prompt_path: str | Path, data_dir: str | Path, out_dir: str | Path,
               threads: int = 1) -> dict:
    """M0: a tiny Llama trained from scratch on the restricted curriculum of every skill."""
    from .chartok import build_char_tokenizer

    set_threads(threads)
    tpl = load_template(prompt_path)
    tok = build_char_tokenizer()
    rows = read_jsonl(Path(data_dir) / "seed_train.jsonl")
    model = build_tiny_llama(_spec(world), tok, seed)
    t = world["seed_training"]
    t0 = time.perf_counter()
    losses = train_causal_lm(model, tok, tpl, rows, TrainSpec(t["steps"], t["lr"], t["batch_size"], seed=seed))
    log = {"role": "seed", "steps": t["steps"], "loss_first": losses[0], "loss_last": losses[-1],
           "seconds": time.perf_counter() - t0}
    _save(model, tok, Path(out_dir), log)
    return log


def train_expert(world: dict, name: str, seed: int, prompt_path: str | Path, data_dir: str | Path,
                 seed_dir: str | Path, out_dir: str | Path, threads: int = 1) -> dict:
    """Expert `name`: M0 fine-tuned on its skills' full ranges (plus replay of M0's curriculum)."""
    from .lm import load_causal_lm as load_model

    main, transfer = expert_skills(world), transfer_skills(world)
    if name in main:
        experts, offset = main, 0
    elif name in transfer:
        experts, offset = transfer, TRANSFER_SEED_OFFSET
    else:
        raise KeyError(f"world.experts and world.transfer_experts have no expert {name!r}; "
                       f"known: {sorted(main) + sorted(transfer)}")
    set_threads(threads)
    tpl = load_template(prompt_path)
    model, tok = load_model(seed_dir)
    rows = read_jsonl(Path(data_dir) / f"expert_{name}.jsonl")
    t = world["expert_training"]
    index = sorted(experts).index(name) + offset
    t0 = time.perf_counter()
    losses = train_causal_lm(model, tok, tpl, rows,
                             TrainSpec(t["steps"], t["lr"], t["batch_size"], warmup_steps=10, seed=seed + 101 + index,
                                       optimizer=t["optimizer"], trainable=tuple(t["trainable"])))
    log = {"role": "expert", "name": name, "skills": experts[name], "steps": t["steps"],
           "loss_first": losses[0], "loss_last": losses[-1], "seconds": time.perf_counter() - t0}
    _save(model, tok, Path(out_dir), log)
    return log


REPORT_FORMAT = "selfdev.world_report.v1"


def world_report(config: dict, seed_dir: str | Path, expert_dirs: dict[str, str | Path],
                 tv_paths: Sequence[str | Path], data_dir: str | Path) -> dict:
    """Dev accuracy of M0, each expert, the plain average, and grids of Task Arithmetic and TIES:
    the evidence that merging matters in this world."""
    from . import baselines
    from .config import sandbox_limits
    from .evaluate import evaluate
    from .lm import GenerationSpec
    from .lm import load_causal_lm as load_model
    from .scoring import MergeScorer

    set_threads(config["threads"])
    ev, rep = config["eval"], config["world"]["report"]
    tpl = load_template(ev["prompt"])
    gen = GenerationSpec(ev["max_new_tokens"], ev["batch_size"])
    dev = read_jsonl(Path(data_dir) / "dev.jsonl")
    scorer = MergeScorer(seed_dir, tv_paths, dev, tpl, gen, sandbox_limits(config, "merge"), ev["dtype"])
    rows: list[dict] = []

    def add(method: str, params: dict, result) -> None:
        rows.append({"method": method, "params": params, "dev_accuracy": result.accuracy,
                     "per_skill": result.per_skill})

    def merged_by(fn) -> dict:
        return {name: fn(scorer.tvs.get(name)) for name in scorer.tvs.names}

    t0 = time.perf_counter()
    add("seed", {}, scorer.evaluate_merged(None))
    for name, path in sorted(expert_dirs.items()):
        model, tok = load_model(path, ev["dtype"])
        add("expert", {"name": name}, evaluate(model, tok, dev, tpl, gen))
    add("average", {}, scorer.evaluate_merged(merged_by(baselines.mean)))
    for lam in rep["ta_lambdas"]:
        add("task_arithmetic", {"lambda": lam},
            scorer.evaluate_merged(merged_by(lambda t, lam=lam: baselines.task_arithmetic(t, lam))))
    for density in rep["ties_densities"]:
        for lam in rep["ties_lambdas"]:
            add("ties", {"density": density, "lambda": lam},
                scorer.evaluate_merged(merged_by(lambda t, d=density, lam=lam: baselines.ties(t, d, lam))))
    seed_acc = rows[0]["dev_accuracy"]
    best_expert = max(r["dev_accuracy"] for r in rows if r["method"] == "expert")
    merges = [r for r in rows if r["method"] in ("average", "task_arithmetic", "ties")]
    best_ta_ties = max((r for r in merges if r["method"] != "average"), key=lambda r: r["dev_accuracy"])
    worst = min(merges, key=lambda r: r["dev_accuracy"])
    targets = {
        "seed": seed_acc,
        "best_expert": best_expert,
        "best_ta_ties": best_ta_ties["dev_accuracy"],
        "best_ta_ties_method": best_ta_ties["method"],
        "best_ta_ties_params": best_ta_ties["params"],
        "gain_over_seed_points": 100 * (best_ta_ties["dev_accuracy"] - seed_acc),
        "worst_merge": worst["dev_accuracy"],
        "spread_points": 100 * (max(r["dev_accuracy"] for r in merges) - worst["dev_accuracy"]),
        "target_gain_met": 100 * (best_ta_ties["dev_accuracy"] - seed_acc) >= 5,
        "stretch_merge_beats_every_expert": max(r["dev_accuracy"] for r in merges) > best_expert,
    }
    return {"format": REPORT_FORMAT, "n_dev": len(dev), "rows": rows, "targets": targets,
            "seconds": time.perf_counter() - t0, "merged_parameters": scorer.tvs.names}


def report_markdown(report: dict, build_seconds: dict[str, float] | None = None) -> str:
    t = report["targets"]
    lines = ["# Toy world report", "",
             f"Dev set: {report['n_dev']} problems; merged parameters: {len(report['merged_parameters'])}.", "",
             "| method | params | dev acc | per skill |", "|---|---|---|---|"]
    for r in report["rows"]:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        skills = " ".join(f"{k}:{100 * v:.0f}" for k, v in r["per_skill"].items())
        lines.append(f"| {r['method']} | {params} | {100 * r['dev_accuracy']:.1f} | {skills} |")
    lines += ["", "## Targets", "",
              f"- M0 {100 * t['seed']:.1f}; best single expert {100 * t['best_expert']:.1f}; "
              f"best TA/TIES {100 * t['best_ta_ties']:.1f} ({t['best_ta_ties_method']} {t['best_ta_ties_params']})",
              f"- gain of the best TA/TIES over M0: {t['gain_over_seed_points']:+.1f} points "
              f"(target >= +5: {'met' if t['target_gain_met'] else 'NOT met'})",
              f"- spread of merges: {t['spread_points']:.1f} points (worst {100 * t['worst_merge']:.1f})",
              f"- stretch, some merge beats every single expert: {'yes' if t['stretch_merge_beats_every_expert'] else 'no'}"]
    if build_seconds:
        lines += ["", "## Build time per step (s)", ""] + [f"- {k}: {v:.1f}" for k, v in build_seconds.items()]
    return "\n".join(lines) + "\n"


def build_seconds(benchmark_dir: str | Path) -> dict[str, float]:
    """Wall seconds per finished world rule, read from Snakemake's benchmark files."""
    out = {}
    for tsv in sorted(Path(benchmark_dir).glob("*.tsv")):
        lines = tsv.read_text().splitlines()
        if len(lines) >= 2 and lines[0].startswith("s\t"):
            out[tsv.stem] = float(lines[1].split("\t")[0])
    return out


def write_world_report(config: dict, seed_dir, expert_dirs: Sequence, tv_paths: Sequence, data_dir,
                       benchmark_dir, out_json, out_md) -> dict:
    from .smk import write_json

    experts = {Path(p).name: p for p in expert_dirs}
    report = world_report(config, seed_dir, experts, tv_paths, data_dir)
    times = {k: v for k, v in build_seconds(benchmark_dir).items() if k.startswith(("world_", "task_vector_"))}
    report["build_seconds"] = times
    write_json(report, out_json)
    Path(out_md).write_text(report_markdown(report, times))
    print(report_markdown(report, times))
    return report
