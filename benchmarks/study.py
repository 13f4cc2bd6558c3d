"""Benchmark: the full default study (world, both arms, final evaluation, baselines, transfer,
plots, report) and the study's targets.

    python benchmarks/study.py --run [--workdir /tmp/selfdev-study] [--configfile FILE]
        runs `snakemake --cores all` from scratch in WORKDIR and times it end to end;
    python benchmarks/study.py [--results results]
        only reads a finished run (wall time from Snakemake's newest log in the working directory).

Prints seconds per stage and per rule, the headline (best discovered program vs the best
budget-matched and grid-tuned mergekit baselines on test, with paired bootstrap intervals), the
transfer margin, the DPO vs no-DPO verdict, and the targets: best discovered >= best
budget-matched baseline on test, end to end <= 25 min on 2 cores. Prints figures, asserts nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import parse_args, rule_seconds, run_workflow, wall_from_log  # noqa: E402

STAGES = (("world", ("world_", "expert_data_", "task_vector_")), ("reference programs", ("check_", "score_mean", "score_task",
                                                                        "score_ties", "score_tsv", "score_iso",
                                                                        "algorithms_")),
          ("factory", ("factory_",)), ("loop dpo", ("sample_dpo", "filter_dpo", "score_dpo", "pairs_", "dpo_dpo")),
          ("loop nodpo", ("sample_nodpo", "filter_nodpo", "score_nodpo")),
          ("loop evolve", ("sample_evolve_s", "filter_evolve_s", "score_evolve_s")),
          ("loop evolve_dpo", ("sample_evolve_dpo", "filter_evolve_dpo", "score_evolve_dpo", "dpo_evolve_dpo")),
          ("baselines", ("baseline_", "singles_")),
          ("final + transfer", ("final_test_", "transfer")), ("study, plots, report", ("study", "plots", "report_html",
                                                                                     "summary_")))


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def report(results: Path, wall: float | None) -> None:
    secs = rule_seconds(results / "benchmarks")
    print("## Rule seconds by stage (sum of rule wall times; rules run two at a time)")
    for stage, prefixes in STAGES:
        rules = {k: v for k, v in secs.items() if k.startswith(prefixes)}
        print(f"  {stage:24s} {sum(rules.values()):8.1f}  ({len(rules)} rules)")
    print("\n## Slowest rules")
    for name, sec in sorted(secs.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {name:36s} {sec:8.1f}")
    summary = json.loads((results / "summary.json").read_text())
    print("\n" + (results / "final" / "baselines.md").read_text())
    print((results / "final" / "arms.md").read_text())
    h = summary["headline"]
    print("## Targets")
    if h.get("available"):
        b = h["best_discovered"]
        print(f"  best discovered ({b['arm']}, seed {b['seed']}, top by dev over arms): {b['candidate_id']} "
              f"dev {_pct(b['dev_accuracy'])}, "
              f"test {_pct(b['test_accuracy'])} [{_pct(b['test_low'])}, {_pct(b['test_high'])}]")
        for key in ("vs_best_budget", "vs_test_best_budget", "vs_best_grid", "vs_test_best_grid"):
            v = h.get(key)
            if v:
                m = v["margin"]
                print(f"  {key} = {v['method']} (dev {_pct(v['dev_accuracy'])}, test {_pct(v['test_accuracy'])}): "
                      f"{100 * m['estimate']:+.1f} points [{100 * m['low']:+.1f}, {100 * m['high']:+.1f}]"
                      + (f" -> target (>= 0) {'met' if v['target_met'] else 'NOT met'}"
                         if key == "vs_best_budget" else ""))
        ps = h.get("per_seed")
        if ps:
            print(f"  seeds whose best program beats {ps['baseline']['method']} ({ps['baseline']['mode']}) with the "
                  f"interval above 0: {ps['seeds_beating']} of {len(ps['seeds'])} (target >= 2 of 3)")
            for r in ps["seeds"]:
                m = r["margin"]
                print(f"    seed {r['seed']} {r['arm']} {r['candidate_id']}: {100 * m['estimate']:+.1f} "
                      f"[{100 * m['low']:+.1f}, {100 * m['high']:+.1f}]")
        ub = h.get("upper_bound") or {}
        if ub.get("available"):
            frac = ub["fraction_closed"]
            print(f"  multi-task upper bound {_pct(ub['multitask_test'])}, Task Arithmetic {_pct(ub['task_arithmetic_test'])}: "
                  + (f"gap closed {100 * frac:.0f}%" if frac is not None else "no gap"))
    t = summary.get("transfer", {})
    if t.get("available"):
        m = t["margin"]
        print(f"  transfer: top program {_pct(t['program_test'])} vs re-tuned {t['baseline']} "
              f"{_pct(t['baseline_test'])}: {100 * m['estimate']:+.1f} [{100 * m['low']:+.1f}, {100 * m['high']:+.1f}]")
    for name, v in summary.get("comparisons", {"dpo_vs_nodpo": summary["dpo_vs_nodpo"]}).items():
        for key in ("test_statement", "dev_statement"):
            if key in v:
                print(f"  {name}: {v[key]}")
    if wall is not None:
        print(f"  end to end: {wall / 60:.1f} min (target <= 25 on 2 cores)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__, "/tmp/selfdev-study", argv)
    if args.run:
        results, wall = run_workflow(args.workdir, args.configfile)
    else:
        results = Path(args.results)
        wall = wall_from_log(results.resolve().parent)
    report(results, wall)


if __name__ == "__main__":
    main()
