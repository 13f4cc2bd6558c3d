"""The final study: held-out evaluation of the top programs, mergekit baselines, transfer, arms.

Pure builders over tables (lists of dicts) produce every number of the study; the files-in/files-out
steps the workflow scripts call are in `selfdev.study.steps`.
"""

from __future__ import annotations

import json
import statistics
from typing import Sequence

from selfdev.loop import tables as loop
from selfdev.study.baselines import MULTITASK_MODEL
from selfdev.study.stats import Interval, bits, bootstrap_mean, from_bits, paired_difference, unpaired_difference

FINAL_V = "selfdev.final_test.v1"
LEADERBOARD_V = "selfdev.leaderboard.v1"
BASELINES_V = "selfdev.baselines_table.v2"
TRANSFER_V = "selfdev.transfer.v1"
ARMS_V = "selfdev.arms.v1"
STUDY_V = "selfdev.study.v1"

FINAL_COLUMNS = ("arm", "seed", "rank", "candidate_id", "iteration", "code_hash", "dev_accuracy", "executable",
                 "category", "reason", "test_accuracy", "test_low", "test_high", "n_test", "test_correct", "body",
                 "code", "factory")
TRANSFER_COLUMNS = ("rank", "candidate_id", "code_hash", "discovery_dev", "executable", "category", "reason",
                    "dev_accuracy", "test_accuracy", "test_low", "test_high", "n_test", "test_correct", "body")
BASELINE_COLUMNS = ("family", "model", "method", "mode", "n_evaluations", "dev_problem_evaluations", "params",
                    "dev_accuracy",
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
                                 "n_evaluations": 0, "dev_problem_evaluations": 0, "params": "{}",
                                 "dev_accuracy": m["dev_accuracy"],
                                 "test_accuracy": m["test_accuracy"]}, from_bits(m["test_correct"]), n_boot, level))
    for r in records:
        rows.append(with_ci({"family": r["family"], "model": "merged", "method": r["method"], "mode": r["mode"],
                             "n_evaluations": r["n_evaluations"],
                             "dev_problem_evaluations": r["dev_problem_evaluations"], "params": json.dumps(r["best_params"]),
                             "dev_accuracy": r["dev_accuracy"], "test_accuracy": r["test_accuracy"]},
                            from_bits(r["test_correct"]), n_boot, level))
    return rows


def best_baseline(rows: Sequence[dict], family: str, mode: str, by: str = "dev_accuracy") -> dict | None:
    """The best merged baseline of a family and mode, chosen by dev (as the programs are) or, the
    conservative variant, by test."""
    cands = [r for r in rows if r["family"] == family and r["model"] == "merged" and r["mode"] == mode]
    return max(cands, key=lambda r: (r[by], r["test_accuracy"])) if cands else None


def iteration_dev_scores(score_tables: Sequence[Sequence[dict]]) -> list[list[float]]:
    """Per iteration, the dev scores of its distinct executable programs, one per behaviour (reused
    scores included)."""
    out = []
    for rows in score_tables:
        seen, accs = set(), []
        for r in rows:
            if r.get("executable") and r.get("dev_accuracy") is not None and loop.behaviour_of(r) not in seen:
                seen.add(loop.behaviour_of(r))
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


# Paired arm comparisons the study reports when both arms ran: (arm, against).
COMPARISONS = (("dpo", "nodpo"), ("evolve_dpo", "evolve"), ("evolve_dpo", "dpo"), ("evolve", "nodpo"))
ARM_LABELS = {"dpo": "DPO", "nodpo": "no-DPO", "evolve": "evolve", "evolve_dpo": "evolve+DPO"}


def arms_comparison(finals: Sequence[dict], runs: dict[str, dict[int, list[list[dict]]]], n_boot: int,
                    level: float) -> dict:
    """Per arm: best test accuracy (the top program by dev of each seed) with CI and per-iteration
    dev means; and for each pair of COMPARISONS that ran, whether the first beat the second, on test
    (paired over problems, seeds averaged) and on the last iteration's dev scores (unpaired over programs)."""
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
    comparisons = {f"{a}_vs_{b}": _compare(a, b, arms, tops_of, n_boot, level) for a, b in COMPARISONS}
    return {"schema_version": ARMS_V, "level": level, "arms": arms, "comparisons": comparisons,
            "dpo_vs_nodpo": comparisons["dpo_vs_nodpo"]}


def _compare(a: str, b: str, arms: dict, tops_of: dict, n_boot: int, level: float) -> dict:
    verdict: dict = {"available": a in arms and b in arms, "arm": a, "against": b}
    if not verdict["available"]:
        return {"available": False}
    # Paired over seeds too: the mean over the seeds both arms have.
    seeds = sorted({r["seed"] for r in tops_of[a]} & {r["seed"] for r in tops_of[b]})
    if seeds:
        ta = [r for r in tops_of[a] if r["seed"] in seeds]
        tb = [r for r in tops_of[b] if r["seed"] in seeds]
        diff = paired_difference(mean_correct(ta), mean_correct(tb), n_boot, level, 2)
        verdict["test_difference"] = diff.to_dict()
        verdict["test_statement"] = _statement("best program's test accuracy", diff, a, b)
    last_a = arms[a]["iterations"][-1]["dev_scores"]
    last_b = arms[b]["iterations"][-1]["dev_scores"]
    if last_a and last_b:
        diff = unpaired_difference(last_a, last_b, n_boot, level, 3)
        verdict["last_iteration_dev_difference"] = diff.to_dict()
        verdict["dev_statement"] = _statement("mean dev score of the last iteration's programs", diff, a, b)
    return verdict


def _statement(what: str, diff: Interval, a: str = "dpo", b: str = "nodpo") -> str:
    """Plain words: 'beat' only when the interval excludes 0."""
    la, lb = ARM_LABELS.get(a, a), ARM_LABELS.get(b, b)
    numbers = f"{100 * diff.estimate:+.1f} points [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]"
    if diff.excludes_zero():
        verb = "beat" if diff.estimate > 0 else "did worse than"
        return f"{la} {verb} {lb} on the {what}: {numbers}; the interval excludes 0."
    return f"{la} did not measurably beat {lb} on the {what}: {numbers}; the interval includes 0."


def best_per_seed(leaderboard: Sequence[dict]) -> dict[int, dict]:
    """Per seed, the discovered program with the best dev score over every arm (each arm's rank 1):
    chosen by dev only; ties go to the arm listed first."""
    out: dict[int, dict] = {}
    for r in leaderboard:
        if r["rank"] == 1 and r["test_correct"]:
            if r["seed"] not in out or r["dev_accuracy"] > out[r["seed"]]["dev_accuracy"]:
                out[r["seed"]] = r
    return out


def best_novel_per_seed(leaderboard: Sequence[dict], novel: dict[str, bool]) -> dict[int, dict]:
    """Per seed, the best scored program on the leaderboard (any arm and rank, by dev) whose behaviour
    the factory was not shown (`novel`: candidate id -> the filter's novelty; a scaled program takes its
    original's)."""
    out: dict[int, dict] = {}
    for r in leaderboard:
        if r["executable"] and r["test_correct"] and novel.get(loop.original_id(r["candidate_id"])):
            best = out.get(r["seed"])
            if best is None or (r["dev_accuracy"], best["candidate_id"]) > (best["dev_accuracy"], r["candidate_id"]):
                out[r["seed"]] = r
    return out


def headline(leaderboard: Sequence[dict], baselines: Sequence[dict], n_boot: int, level: float,
             novel: dict[str, bool] | None = None) -> dict:
    """The target: the best discovered program (any arm, top by dev, first seed) vs the best
    budget-matched baseline on test, with a paired CI of the margin. The baseline is chosen by dev,
    like the program (and, as a conservative variant, by test); grid-tuned baselines likewise. Then
    every seed's best program vs the budget-matched (else grid) baseline best on dev: how many seeds
    beat it with an interval above 0; and, given `novel` (candidate id -> novelty), the same for each
    seed's best program the factory was not shown (the best may be a prompt or warm-up example)."""
    out: dict = {}
    per_seed = best_per_seed(leaderboard)
    if not per_seed:
        return {"available": False}
    best = per_seed[min(per_seed)]
    out["best_discovered"] = {k: best[k] for k in ("arm", "seed", "candidate_id", "code_hash", "dev_accuracy",
                                                   "test_accuracy", "test_low", "test_high")}
    best_correct = [float(c) for c in from_bits(best["test_correct"])]
    for mode in ("budget", "grid"):
        for by, key in (("dev_accuracy", f"vs_best_{mode}"), ("test_accuracy", f"vs_test_best_{mode}")):
            b = best_baseline(baselines, "main", mode, by)
            if b is None:
                continue
            diff = paired_difference(best_correct, [float(c) for c in from_bits(b["test_correct"])], n_boot, level, 4)
            out[key] = {"method": b["method"], "params": b["params"], "dev_accuracy": b["dev_accuracy"],
                        "test_accuracy": b["test_accuracy"], "margin": diff.to_dict(), "target_met": diff.estimate >= 0}
    ref = best_baseline(baselines, "main", "budget") or best_baseline(baselines, "main", "grid")
    if ref is not None:
        def against_ref(best_by_seed: dict[int, dict]) -> dict:
            seeds = []
            for seed, r in sorted(best_by_seed.items()):
                diff = paired_difference([float(c) for c in from_bits(r["test_correct"])],
                                         [float(c) for c in from_bits(ref["test_correct"])], n_boot, level, 4)
                seeds.append({"seed": seed, "arm": r["arm"], "candidate_id": r["candidate_id"],
                              "dev_accuracy": r["dev_accuracy"], "test_accuracy": r["test_accuracy"],
                              "margin": diff.to_dict(), "beats": diff.low > 0})
            return {"baseline": {"method": ref["method"], "mode": ref["mode"], "params": ref["params"],
                                 "test_accuracy": ref["test_accuracy"]},
                    "seeds": seeds, "seeds_beating": sum(s["beats"] for s in seeds)}

        out["per_seed"] = against_ref(per_seed)
        if novel is not None:
            out["novel_per_seed"] = against_ref(best_novel_per_seed(leaderboard, novel))
    out["upper_bound"] = gap_closed(best["test_accuracy"], baselines)
    out["available"] = True
    return out


def gap_closed(program_test: float, baselines: Sequence[dict]) -> dict:
    """How much of the gap between Task Arithmetic (grid-tuned, chosen by dev) and the multi-task model
    (the upper bound) a program's test accuracy closes: (program - TA) / (multitask - TA) on test.
    1 reaches the multi-task model; negative is below Task Arithmetic. Unavailable without the
    multi-task model, or when it does not beat Task Arithmetic (no gap to close)."""
    mt = next((r for r in baselines if r["family"] == "main" and r["model"] == MULTITASK_MODEL), None)
    ta = max((r for r in baselines if r["family"] == "main" and r["model"] == "merged"
              and r["method"] == "task_arithmetic" and r["mode"] == "grid"),
             key=lambda r: (r["dev_accuracy"], r["test_accuracy"]), default=None)
    if mt is None or ta is None:
        return {"available": False}
    out = {"available": True, "multitask_test": mt["test_accuracy"], "task_arithmetic_test": ta["test_accuracy"],
           "program_test": program_test, "gap_points": 100 * (mt["test_accuracy"] - ta["test_accuracy"])}
    gap = mt["test_accuracy"] - ta["test_accuracy"]
    out["fraction_closed"] = (program_test - ta["test_accuracy"]) / gap if gap > 0 else None
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
    lines = [f"# {title}", "", "Budget-matched searches draw configurations until they have spent the problem "
             "evaluations on dev of one discovery run (racing counts what a dropped program saw).", "",
             "| model | method | mode | configurations | dev problem evals | params | dev | test [CI] |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["family"] == family:
            lines.append(f"| {r['model']} | {r['method']} | {r['mode']} | {r['n_evaluations']} | "
                         f"{r['dev_problem_evaluations']} | {r['params']} | "
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
    lines = ["# Arms (same world, sampling schedule, budget and seeds)", "",
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
        lines.append("Not measured: the config does not run both arms (study.arms).")
    else:
        lines += [f"- {v[k]}" for k in ("test_statement", "dev_statement") if k in v]
    for key, v in arms.get("comparisons", {}).items():
        if key == "dpo_vs_nodpo" or not v["available"]:
            continue
        lines += ["", f"## {ARM_LABELS[v['arm']]} vs {ARM_LABELS[v['against']]}", ""]
        lines += [f"- {v[k]}" for k in ("test_statement", "dev_statement") if k in v]
    return "\n".join(lines) + "\n"


def study_markdown(study: dict, sections: Sequence[str]) -> str:
    h = study["headline"]
    lines = ["# Self-Developing study", ""]
    if h.get("available"):
        b = h["best_discovered"]
        lines.append(f"Best discovered program ({b['arm']} arm, seed {b['seed']}, top by dev over every arm): "
                     f"{b['candidate_id']} — dev "
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
        ub = h.get("upper_bound") or {}
        if ub.get("available"):
            frac = ub["fraction_closed"]
            lines += ["", f"Upper bound: the multi-task model scores {_pct(ub['multitask_test'])} on test, Task "
                      f"Arithmetic (grid) {_pct(ub['task_arithmetic_test'])}: "
                      + (f"the best discovered program closes {100 * frac:.0f}% of that gap." if frac is not None
                         else "no gap to close (the multi-task model does not beat Task Arithmetic).")]
        ps = h.get("per_seed")
        if ps:
            ref = ps["baseline"]
            lines += ["", f"Every seed's best program (any arm, by dev) vs {ref['method']} ({ref['mode']}, test "
                      f"{_pct(ref['test_accuracy'])}): beaten with the interval above 0 in {ps['seeds_beating']} of "
                      f"{len(ps['seeds'])} seeds."]
            lines += _seed_lines(ps["seeds"])
        nv = h.get("novel_per_seed")
        if nv:
            lines += ["", f"Every seed's best *novel* program (one whose behaviour the factory was not shown in its "
                      f"prompt or warm-up library; among the leaderboard's) vs the same baseline: beaten with the "
                      f"interval above 0 in {nv['seeds_beating']} of {len(nv['seeds'])} seeds."]
            lines += _seed_lines(nv["seeds"])
    lines.append("")
    return "\n".join(lines) + "\n" + "\n".join(sections)


def _seed_lines(seeds: Sequence[dict]) -> list[str]:
    return [f"- seed {r['seed']}: {r['arm']} {r['candidate_id']} test {_pct(r['test_accuracy'])}, "
            f"{100 * r['margin']['estimate']:+.1f} [{100 * r['margin']['low']:+.1f}, {100 * r['margin']['high']:+.1f}]"
            for r in seeds]


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
