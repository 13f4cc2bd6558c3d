"""The final study: held-out evaluation of the top programs, mergekit baselines, transfer, arms.

Pure builders over tables (lists of dicts) produce every number of the study; the files-in/files-out
steps the workflow scripts call are in `selfdev.study.steps`.
"""

from __future__ import annotations

import json
import statistics
from typing import Sequence

from selfdev.loop import tables as loop
from selfdev.study.stats import Interval, bits, bootstrap_mean, from_bits, paired_difference, unpaired_difference

FINAL_V = "selfdev.final_test.v1"
LEADERBOARD_V = "selfdev.leaderboard.v1"
BASELINES_V = "selfdev.baselines_table.v1"
TRANSFER_V = "selfdev.transfer.v1"
ARMS_V = "selfdev.arms.v1"
STUDY_V = "selfdev.study.v1"

FINAL_COLUMNS = ("arm", "seed", "rank", "candidate_id", "iteration", "code_hash", "dev_accuracy", "executable",
                 "category", "reason", "test_accuracy", "test_low", "test_high", "n_test", "test_correct", "body",
                 "code", "factory")
TRANSFER_COLUMNS = ("rank", "candidate_id", "code_hash", "discovery_dev", "executable", "category", "reason",
                    "dev_accuracy", "test_accuracy", "test_low", "test_high", "n_test", "test_correct", "body")
BASELINE_COLUMNS = ("family", "model", "method", "mode", "n_evaluations", "params", "dev_accuracy",
                    "test_accuracy", "test_low", "test_high", "n_test", "test_correct")


# --- selection ----------------------------------------------------------------------------------
def top_programs(score_tables: Sequence[Sequence[dict]], k: int) -> list[dict]:
    """The k best distinct programs by dev score across all iterations (ties: by code hash)."""
    return loop.best_programs([r for rows in score_tables for r in rows], k)


def with_ci(row: dict, correct: Sequence[bool], n_boot: int, level: float, seed: int = 0) -> dict:
    """The row with its test interval; one resampling seed for every row, so equal results get
    equal intervals."""
    ci = bootstrap_mean([float(c) for c in correct], n_boot, level, seed)
    return {**row, "test_low": ci.low, "test_high": ci.high, "n_test": len(correct), "test_correct": bits(correct)}


# --- builders -----------------------------------------------------------------------------------
def baseline_rows(records: Sequence[dict], singles: Sequence[dict], n_boot: int, level: float) -> list[dict]:
    """One row per tuned baseline (grid / budget-matched) and per single model (M0, each expert)."""
    rows = []
    for s in singles:
        for m in s["rows"]:
            rows.append(with_ci({"family": s["family"], "model": m["model"], "method": "single", "mode": "-",
                                 "n_evaluations": 0, "params": "{}", "dev_accuracy": m["dev_accuracy"],
                                 "test_accuracy": m["test_accuracy"]}, from_bits(m["test_correct"]), n_boot, level))
    for r in records:
        rows.append(with_ci({"family": r["family"], "model": "merged", "method": r["method"], "mode": r["mode"],
                             "n_evaluations": r["n_evaluations"], "params": json.dumps(r["best_params"]),
                             "dev_accuracy": r["dev_accuracy"], "test_accuracy": r["test_accuracy"]},
                            from_bits(r["test_correct"]), n_boot, level))
    return rows


def best_baseline(rows: Sequence[dict], family: str, mode: str, by: str = "dev_accuracy") -> dict | None:
    """The best merged baseline of a family and mode, chosen by dev (as the programs are) or, the
    conservative variant, by test."""
    cands = [r for r in rows if r["family"] == family and r["model"] == "merged" and r["mode"] == mode]
    return max(cands, key=lambda r: (r[by], r["test_accuracy"])) if cands else None


def iteration_dev_scores(score_tables: Sequence[Sequence[dict]]) -> list[list[float]]:
    """Per iteration, the dev scores of its distinct executable programs (reused scores included)."""
    out = []
    for rows in score_tables:
        seen, accs = set(), []
        for r in rows:
            if r.get("executable") and r.get("dev_accuracy") is not None and r["code_hash"] not in seen:
                seen.add(r["code_hash"])
                accs.append(r["dev_accuracy"])
        out.append(accs)
    return out


def arm_iteration_stats(runs: dict[int, list[list[dict]]], n_boot: int, level: float) -> list[dict]:
    """Per iteration, pooled over seeds: mean dev with CI (over programs), max dev, best-so-far."""
    per_seed = [iteration_dev_scores(tables) for tables in runs.values()]
    stats = []
    for i in range(max(len(s) for s in per_seed)):
        pooled = [a for s in per_seed if i < len(s) for a in s[i]]
        best_so_far = [max(a for it in s[: i + 1] for a in it) for s in per_seed if any(s[: i + 1])]
        ci = bootstrap_mean(pooled, n_boot, level, i) if pooled else None
        stats.append({"iteration": i + 1, "programs": len(pooled),
                      "dev_mean": ci.estimate if ci else None, "dev_low": ci.low if ci else None,
                      "dev_high": ci.high if ci else None, "dev_max": max(pooled) if pooled else None,
                      "best_so_far_mean": statistics.fmean(best_so_far) if best_so_far else None,
                      "dev_scores": pooled})
    return stats


def mean_correct(rows: Sequence[dict]) -> list[float]:
    """Per-problem correctness averaged over runs (seeds): the paired unit across arms."""
    vecs = [from_bits(r["test_correct"]) for r in rows]
    return [sum(v[j] for v in vecs) / len(vecs) for j in range(len(vecs[0]))]


def arms_comparison(finals: Sequence[dict], runs: dict[str, dict[int, list[list[dict]]]], n_boot: int,
                    level: float) -> dict:
    """Per arm: best test accuracy (the top program by dev of each seed) with CI and per-iteration
    dev means; and whether DPO beat no-DPO, on test (paired over problems) and on the last
    iteration's dev scores (unpaired over programs)."""
    arms, tops_of = {}, {}
    for arm, arm_runs in runs.items():
        tops = sorted((r for r in finals if r["arm"] == arm and r["rank"] == 1 and r["test_correct"]),
                      key=lambda r: r["seed"])
        tops_of[arm] = tops
        entry = {"seeds": sorted(arm_runs), "iterations": arm_iteration_stats(arm_runs, n_boot, level),
                 "best_test_per_seed": {str(r["seed"]): r["test_accuracy"] for r in tops}}
        if tops:
            entry["best_test"] = bootstrap_mean(mean_correct(tops), n_boot, level, 1).to_dict()
        arms[arm] = entry
    verdict: dict = {"available": "dpo" in arms and "nodpo" in arms}
    if verdict["available"]:
        if tops_of["dpo"] and tops_of["nodpo"]:
            diff = paired_difference(mean_correct(tops_of["dpo"]), mean_correct(tops_of["nodpo"]), n_boot, level, 2)
            verdict["test_difference"] = diff.to_dict()
            verdict["test_statement"] = _statement("best program's test accuracy", diff)
        last_d = arms["dpo"]["iterations"][-1]["dev_scores"]
        last_n = arms["nodpo"]["iterations"][-1]["dev_scores"]
        if last_d and last_n:
            diff = unpaired_difference(last_d, last_n, n_boot, level, 3)
            verdict["last_iteration_dev_difference"] = diff.to_dict()
            verdict["dev_statement"] = _statement("mean dev score of the last iteration's programs", diff)
    return {"schema_version": ARMS_V, "level": level, "arms": arms, "dpo_vs_nodpo": verdict}


def _statement(what: str, diff: Interval) -> str:
    """Plain words: 'beat' only when the interval excludes 0."""
    numbers = f"{100 * diff.estimate:+.1f} points [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]"
    if diff.excludes_zero():
        verb = "beat" if diff.estimate > 0 else "did worse than"
        return f"DPO {verb} no-DPO on the {what}: {numbers}; the interval excludes 0."
    return f"DPO did not measurably beat no-DPO on the {what}: {numbers}; the interval includes 0."


def headline(leaderboard: Sequence[dict], baselines: Sequence[dict], n_boot: int, level: float) -> dict:
    """The target: best discovered program (dpo arm, seed 0, top by dev) vs the best budget-matched
    baseline on test, with a paired CI of the margin. The baseline is chosen by dev, like the
    program (and, as a conservative variant, by test); grid-tuned baselines likewise."""
    out: dict = {}
    best = next((r for r in leaderboard if r["arm"] == "dpo" and r["seed"] == 0 and r["rank"] == 1), None)
    if best is None or not best["test_correct"]:
        return {"available": False}
    out["best_discovered"] = {k: best[k] for k in ("candidate_id", "code_hash", "dev_accuracy", "test_accuracy",
                                                   "test_low", "test_high")}
    best_correct = [float(c) for c in from_bits(best["test_correct"])]
    for mode in ("budget", "grid"):
        for by, key in (("dev_accuracy", f"vs_best_{mode}"), ("test_accuracy", f"vs_test_best_{mode}")):
            b = best_baseline(baselines, "main", mode, by)
            if b is None:
                continue
            diff = paired_difference(best_correct, [float(c) for c in from_bits(b["test_correct"])], n_boot, level, 4)
            out[key] = {"method": b["method"], "params": b["params"], "dev_accuracy": b["dev_accuracy"],
                        "test_accuracy": b["test_accuracy"], "margin": diff.to_dict(), "target_met": diff.estimate >= 0}
    out["available"] = True
    return out


# --- markdown -----------------------------------------------------------------------------------
def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _ci(r: dict) -> str:
    return f"{_pct(r['test_accuracy'])} [{_pct(r['test_low'])}, {_pct(r['test_high'])}]"


def leaderboard_markdown(rows: Sequence[dict], level: float) -> str:
    lines = ["# Leaderboard: top programs by dev, evaluated once on test", "",
             f"Test accuracy with a {int(100 * level)}% bootstrap interval over test problems.", "",
             "| arm | seed | rank | program | iteration | hash | dev | test [CI] |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        test = _ci(r) if r["executable"] else f"not executable ({r['category']})"
        lines.append(f"| {r['arm']} | {r['seed']} | {r['rank']} | {r['candidate_id']} | {r['iteration']} | "
                     f"{r['code_hash'][:12]} | {_pct(r['dev_accuracy'])} | {test} |")
    return "\n".join(lines) + "\n"


def baselines_markdown(rows: Sequence[dict], family: str, title: str) -> str:
    lines = [f"# {title}", "", "| model | method | mode | dev evals | params | dev | test [CI] |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["family"] == family:
            lines.append(f"| {r['model']} | {r['method']} | {r['mode']} | {r['n_evaluations']} | {r['params']} | "
                         f"{_pct(r['dev_accuracy'])} | {_ci(r)} |")
    return "\n".join(lines) + "\n"


def transfer_markdown(programs: Sequence[dict], baselines: Sequence[dict], summary: dict) -> str:
    lines = ["# Transfer: discovered programs applied unchanged to a new expert family", "",
             "Programs are the dpo arm's best by *discovery* dev score; baselines are re-tuned on the new "
             "family's dev split.", "", "| program | discovery dev | transfer dev | transfer test [CI] |",
             "|---|---|---|---|"]
    for r in programs:
        test = _ci(r) if r["executable"] else f"not executable ({r['category']})"
        lines.append(f"| {r['candidate_id']} ({r['code_hash'][:8]}) | {_pct(r['discovery_dev'])} | "
                     f"{_pct(r['dev_accuracy'])} | {test} |")
    lines += ["", baselines_markdown(baselines, "transfer", "Transfer family baselines (re-tuned on its dev)")]
    if summary.get("available"):
        m = summary["margin"]
        lines += ["## Margin", "", f"Top transferred program {_pct(summary['program_test'])} vs re-tuned "
                  f"{summary['baseline']} {_pct(summary['baseline_test'])}: {100 * m['estimate']:+.1f} points "
                  f"[{100 * m['low']:+.1f}, {100 * m['high']:+.1f}] (paired bootstrap over test problems)."]
    return "\n".join(lines) + "\n"


def arms_markdown(arms: dict) -> str:
    lines = ["# Arms: DPO vs no-DPO (same world, sampling schedule and budget)", "",
             "| arm | iteration | programs | dev mean [CI] | dev max | best so far (mean over seeds) |",
             "|---|---|---|---|---|---|"]
    for arm, a in arms["arms"].items():
        for s in a["iterations"]:
            lines.append(f"| {arm} | {s['iteration']} | {s['programs']} | {_pct(s['dev_mean'])} "
                         f"[{_pct(s['dev_low'])}, {_pct(s['dev_high'])}] | {_pct(s['dev_max'])} | "
                         f"{_pct(s['best_so_far_mean'])} |")
    lines += ["", "| arm | seeds | best program's test accuracy (mean over seeds) [CI] | per seed |", "|---|---|---|---|"]
    for arm, a in arms["arms"].items():
        bt = a.get("best_test")
        per = ", ".join(f"{k}: {_pct(v)}" for k, v in a["best_test_per_seed"].items())
        cell = f"{_pct(bt['estimate'])} [{_pct(bt['low'])}, {_pct(bt['high'])}]" if bt else "-"
        lines.append(f"| {arm} | {len(a['seeds'])} | {cell} | {per} |")
    v = arms["dpo_vs_nodpo"]
    lines += ["", "## Did DPO beat no-DPO?", ""]
    if not v["available"]:
        lines.append("Not measured: the config runs only one arm (study.arms).")
    else:
        lines += [f"- {v[k]}" for k in ("test_statement", "dev_statement") if k in v]
    return "\n".join(lines) + "\n"


def study_markdown(study: dict, sections: Sequence[str]) -> str:
    h = study["headline"]
    lines = ["# Self-Developing study", ""]
    if h.get("available"):
        b = h["best_discovered"]
        lines.append(f"Best discovered program (dpo arm, seed 0, top by dev): {b['candidate_id']} — dev "
                     f"{_pct(b['dev_accuracy'])}, test {_pct(b['test_accuracy'])} [{_pct(b['test_low'])}, "
                     f"{_pct(b['test_high'])}].")
        lines.append("")
        for key, label in (("vs_best_budget", "the budget-matched baseline best on dev"),
                           ("vs_test_best_budget", "the budget-matched baseline best on test (conservative)"),
                           ("vs_best_grid", "the grid-tuned baseline best on dev"),
                           ("vs_test_best_grid", "the grid-tuned baseline best on test")):
            v = h.get(key)
            if v:
                m = v["margin"]
                target = (f" — target (>= 0) {'met' if v['target_met'] else 'NOT met'}." if key == "vs_best_budget"
                          else ".")
                lines.append(f"- vs {label}, {v['method']} {v['params']} (dev {_pct(v['dev_accuracy'])}, test "
                             f"{_pct(v['test_accuracy'])}): {100 * m['estimate']:+.1f} points "
                             f"[{100 * m['low']:+.1f}, {100 * m['high']:+.1f}]{target}")
    lines.append("")
    return "\n".join(lines) + "\n" + "\n".join(sections)


def transfer_summary(programs: Sequence[dict], baselines: Sequence[dict], n_boot: int, level: float) -> dict:
    top = next((r for r in programs if r["executable"] and r["test_correct"]), None)
    ta = [r for r in baselines if r["family"] == "transfer" and r["method"] == "task_arithmetic"
          and r["mode"] == "grid"]
    if top is None or not ta:
        return {"available": False}
    diff = paired_difference([float(c) for c in from_bits(top["test_correct"])],
                             [float(c) for c in from_bits(ta[0]["test_correct"])], n_boot, level, 5)
    return {"available": True, "program": top["candidate_id"], "program_test": top["test_accuracy"],
            "baseline": "task_arithmetic (grid)", "baseline_test": ta[0]["test_accuracy"], "margin": diff.to_dict()}
