"""The world report: dev accuracy of M0, each expert, the plain average, and grids of Task Arithmetic
and TIES (mergekit's own), with the targets that say whether merging matters in this world."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from selfdev.lm import set_threads

REPORT_FORMAT = "selfdev.world_report.v1"
# Points by which the best Task Arithmetic / TIES merge beats M0 and the best single expert, and by which
# the multi-task model beats that merge, in a world where merging matters.
TARGET_GAIN, TARGET_OVER_EXPERT, TARGET_HEADROOM = 8.0, 3.0, 5.0


def world_report(config: dict, seed_dir: str | Path, expert_dirs: dict[str, str | Path],
                 tv_paths: Sequence[str | Path], dev_path: str | Path, shots_path: str | Path,
                 multitask_dir: str | Path | None = None) -> dict:
    """Dev accuracy of M0, each expert, the plain average, and grids of Task Arithmetic and TIES:
    the evidence that merging matters in this world."""
    from selfdev.lm import load_causal_lm as load_model
    from selfdev.scoring.evaluate import evaluate
    from selfdev.scoring.programs import make_scorer
    from selfdev.study.baselines import merged_by

    from selfdev.device import resolve_device
    from selfdev.io import read_jsonl
    from selfdev.lm import GenerationSpec
    from selfdev.scoring.prompts import load_template

    set_threads(config["threads"])
    ev, rep = config["eval"], config["world"]["report"]
    # The experts first, each loaded alone with transformers and freed: a vLLM scoring engine (built
    # next) takes most of the GPU's memory for as long as it lives.
    dev, shots, tpl = read_jsonl(dev_path), read_jsonl(shots_path), load_template(ev["prompt"])
    gen, device = GenerationSpec(ev["max_new_tokens"], ev["batch_size"]), resolve_device(config["device"])
    experts = []
    for name, path in sorted(expert_dirs.items()) + ([("multitask", multitask_dir)] if multitask_dir else []):
        model, tok = load_model(path, ev["dtype"], device)
        experts.append((name, evaluate(model, tok, dev, tpl, gen, shots, ev["task"])))
        del model
    multitask = experts.pop() if multitask_dir else None
    # Trusted merges only (TA, TIES): the rule's config has no sandbox keys, so no sandbox limits.
    scorer = make_scorer(config, seed_dir, tv_paths, dev_path, shots_path)
    rows: list[dict] = []

    def add(method: str, params: dict, result) -> None:
        rows.append({"method": method, "params": params, "dev_accuracy": result.accuracy,
                     "per_skill": result.per_skill})

    def merged(method: str, params: dict) -> dict:
        # mergekit's own implementations: the same TA/TIES/linear as the study's baselines.
        return merged_by(method, params, scorer.tvs.names, scorer.base, scorer.tvs.get)

    add("seed", {}, scorer.evaluate_merged(None))
    for name, result in experts:
        add("expert", {"name": name}, result)
    if multitask:
        add("multitask", {"steps": "expert steps x experts"}, multitask[1])
    add("average", {}, scorer.evaluate_merged(merged("linear", {})))
    for lam in rep["ta_lambdas"]:
        add("task_arithmetic", {"lambda": lam}, scorer.evaluate_merged(merged("task_arithmetic", {"lambda": lam})))
    for density in rep["ties_densities"]:
        for lam in rep["ties_lambdas"]:
            add("ties", {"density": density, "lambda": lam},
                scorer.evaluate_merged(merged("ties", {"density": density, "lambda": lam})))
    targets = report_targets(rows, multitask[1].accuracy if multitask else None)
    return {"format": REPORT_FORMAT, "n_dev": len(dev), "rows": rows, "targets": targets,
            "merged_parameters": scorer.tvs.names}


def report_targets(rows: Sequence[dict], multitask: float | None) -> dict:
    """The world's figures and targets from its rows (`method` seed / expert / average / task_arithmetic /
    ties, each with `dev_accuracy`): M0, the best expert, the best TA/TIES merge and the gains in points."""
    seed_acc = next(r["dev_accuracy"] for r in rows if r["method"] == "seed")
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
        "over_expert_points": 100 * (best_ta_ties["dev_accuracy"] - best_expert),
        "multitask": multitask,
        "headroom_points": 100 * (multitask - best_ta_ties["dev_accuracy"]) if multitask is not None else None,
    }
    # The targets of a world where merging matters (benchmarks/world_search.py
    # ranks recipes by them over master seeds): merging gains a lot over M0, beats picking one expert, and
    # leaves room below the multi-task model for a better algorithm.
    targets["target_gain_met"] = targets["gain_over_seed_points"] >= TARGET_GAIN
    targets["target_over_expert_met"] = targets["over_expert_points"] >= TARGET_OVER_EXPERT
    targets["target_headroom_met"] = (targets["headroom_points"] >= TARGET_HEADROOM if multitask is not None else None)
    targets["stretch_merge_beats_every_expert"] = max(r["dev_accuracy"] for r in merges) > best_expert
    return targets


def report_markdown(report: dict) -> str:
    t = report["targets"]
    lines = ["# World report", "",
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
              f"(target >= +{TARGET_GAIN:.0f}: {'met' if t['target_gain_met'] else 'NOT met'})",
              f"- best TA/TIES over the best single expert: {t['over_expert_points']:+.1f} points "
              f"(target >= +{TARGET_OVER_EXPERT:.0f}: {'met' if t['target_over_expert_met'] else 'NOT met'})",
              f"- spread of merges: {t['spread_points']:.1f} points (worst {100 * t['worst_merge']:.1f})",
              f"- stretch, some merge beats every single expert: {'yes' if t['stretch_merge_beats_every_expert'] else 'no'}"]
    if t.get("multitask") is not None:
        lines.append(f"- upper bound, the multi-task model (M0 fine-tuned on every expert's data): {100 * t['multitask']:.1f}"
                     f", {t['headroom_points']:+.1f} over the best TA/TIES (target >= +{TARGET_HEADROOM:.0f}: "
                     f"{'met' if t['target_headroom_met'] else 'NOT met'})")
    return "\n".join(lines) + "\n"


def write_world_report(*, config: dict, seed_dir, expert_dirs: Sequence, task_vectors: Sequence, dev, shots,
                       out_json, out_md, multitask_dir=None) -> dict:
    """Rule `world_report`: config holds `threads`, `eval` and `world.report`."""
    from selfdev.io import write_json, write_text

    experts = {Path(p).name: p for p in expert_dirs}
    report = world_report(config, seed_dir, experts, task_vectors, dev, shots, multitask_dir)
    write_json(report, out_json)
    write_text(report_markdown(report), out_md)
    print(report_markdown(report))
    return report
