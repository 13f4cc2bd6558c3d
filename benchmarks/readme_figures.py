"""Every figure of a default run the docs quote, printed from one finished run: docs/results.md's
"Measured" section and the README's small table.

    python benchmarks/readme_figures.py --results results            # print the section (markdown)
    python benchmarks/readme_figures.py --results results --write docs/results.md --summary README.md
    python benchmarks/readme_figures.py --run --workdir /tmp/x --write docs/results.md --summary README.md

The section names the commit, the CPU and the numerics settings the run used, so a reader can tell
which machine a figure came from; `--write` replaces the text between the file's
`<!-- readme_figures:start -->` and `<!-- readme_figures:end -->` markers and nothing else (`--summary`:
the README's `run_summary` markers).
With `--study-results` (a run of `--configfile config/study.yaml`) the 3-seed comparison is added; with
`--world-seeds DIR ...` (worlds built with `snakemake results/world/report.json --config seed=N -d DIR`) the
spread of the toy world over master seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, rule_seconds, run_workflow, wall_from_log  # noqa: E402

STAGES = ("world_split", "expert_data", "world_seed", "world_expert", "task_vector", "world_report", "check",
          "score_algorithm", "factory_initial", "factory_warmup", "sample", "filter", "score", "pairs", "dpo",
          "final_test", "baseline", "singles", "transfer")


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


START, END = markers("readme_figures")


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _ci(d: dict) -> str:
    return f"{100 * d['estimate']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"


def _commit(results: Path) -> str:
    """The commit of the checkout that ran (the folder above `results`), else of this repository."""
    for where in (results.resolve().parent, REPO):
        out = subprocess.run(["git", "-C", str(where), "log", "-1", "--format=%h %cs"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True).stdout.strip()
            return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    return "unknown"


def _machine() -> str:
    import torch

    import selfdev

    with open("/proc/cpuinfo") as fh:
        info = fh.read()
    cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
               platform.machine())
    cpu += " (AVX-512)" if " avx512f" in info else " (AVX2)" if " avx2" in info else ""
    pinned = {k: os.environ.get(k) for k in selfdev.PINNED_CPU_ENV}
    return (f"{cpu}, {os.cpu_count()} cores; torch {torch.__version__} kernels "
            f"{torch.backends.cpu.get_cpu_capability()}; " + ", ".join(f"{k}={v}" for k, v in pinned.items()))


def world_section(results: Path) -> list[str]:
    rep = json.loads((results / "world" / "report.json").read_text())
    t = rep["targets"]
    rows = rep["rows"]
    experts = [r for r in rows if r["method"] == "expert"]
    ta = max((r for r in rows if r["method"] == "task_arithmetic"), key=lambda r: r["dev_accuracy"])
    ties = max((r for r in rows if r["method"] == "ties"), key=lambda r: r["dev_accuracy"])
    avg = next(r for r in rows if r["method"] == "average")
    return [
        f"- **World** (`{results.name}/world/report.md`, {rep['n_dev']} dev problems): M0 {_pct(t['seed'])}; experts "
        + ", ".join(f"{r['params']['name']} {_pct(r['dev_accuracy'])}" for r in experts)
        + f"; average {_pct(avg['dev_accuracy'])}; Task Arithmetic best {_pct(ta['dev_accuracy'])} "
        f"(lambda {ta['params']['lambda']}), TIES best {_pct(ties['dev_accuracy'])} "
        f"(density {ties['params']['density']}, lambda {ties['params']['lambda']}): "
        f"**{t['gain_over_seed_points']:+.1f} over M0** (target >= +8: {'met' if t['target_gain_met'] else 'NOT met'}), "
        f"**{t['over_expert_points']:+.1f} over the best expert** (target >= +3: "
        f"{'met' if t['target_over_expert_met'] else 'NOT met'}); merges spread over {t['spread_points']:.1f} points"
        + (f"; the multi-task model (upper bound) {_pct(t['multitask'])}, {t['headroom_points']:+.1f} over the best "
           f"TA/TIES (target >= +5: {'met' if t['target_headroom_met'] else 'NOT met'})."
           if t.get("multitask") is not None else "."),
    ]


def loop_section(results: Path) -> list[str]:
    """Per arm and iteration: executable rate and unique / behaviours / novel for every seed (s0 / s1 / ...),
    and the dev mean over every seed's programs with its interval."""
    arms = json.loads((results / "final" / "arms.json").read_text())
    names = list(arms["arms"])
    seeds = sorted({s for a in names for s in arms["arms"][a]["seeds"]})
    runs = {(a, s): json.loads((results / "loop" / a / f"seed{s}" / "summary.json").read_text())
            for a in names for s in seeds}
    label = "seed 0" if len(seeds) == 1 else "seeds " + " / ".join(str(s) for s in seeds)
    head = "| iteration | T | " + " | ".join(f"{a} executable % | {a} behaviours (novel / layer-aware) | {a} dev mean [95% CI]"
                                           for a in names) + " |"
    first = runs[(names[0], seeds[0])]
    lines = ["", f"- **Loop** (N = {first['iterations'][0]['stats']['candidates']} per iteration; executable % and "
             f"distinct behaviours (novel ones / ones whose merge depends on the layer or kind) per seed, {label}; "
             "dev mean over every seed's programs):",
             "", "  " + head, "  |" + "---|" * (2 + 3 * len(names))]
    for i, it in enumerate(first["iterations"]):
        cells = [str(it["iteration"]), f"{it['stats']['temperature']:.3f}"]
        for a in names:
            stats = [runs[(a, s)]["iterations"][i]["stats"] for s in seeds]
            d = arms["arms"][a]["iterations"][i]
            cells += [" / ".join(f"{100 * st['executable_rate']:.0f}" for st in stats),
                      " / ".join(f"{st.get('behaviours', '-')} ({st.get('novel_behaviours', '-')} / "
                                 f"{st.get('layer_aware_behaviours', '-')})" for st in stats),
                      f"{_pct(d['dev_mean'])} [{_pct(d['dev_low'])}, {_pct(d['dev_high'])}]"]
        lines.append("  | " + " | ".join(cells) + " |")
    lines += ["", "  Best dev (seed by seed): " + "; ".join(
        f"{a} " + ", ".join(f"{_pct(b['dev_accuracy'])} (`{b['body'].strip().splitlines()[-1].strip()}`)"
                            for b in (runs[(a, s)]["best"] for s in seeds) if b) for a in names) + "."]
    tuned = tuned_best(results, runs)
    if tuned:
        lines += ["", "  Scale tuned on dev after the last iteration (`loop.tune`; best scaled program vs the run's best "
                      "as written): " + "; ".join(tuned) + "."]
    aware, top = top_layer_aware(results)
    if top:
        lines += ["", f"  Layer-aware: {aware} of the {top} best programs by dev (every arm and seed) merge "
                      "differently by layer or kind."]
    return lines


def tuned_best(results: Path, runs: dict) -> list[str]:
    """Per run with a tuned.parquet: its best scaled program's dev score and scale, against the run's
    best program as the factory wrote it (`runs`: the run summaries by (arm, seed))."""
    import pyarrow.parquet as pq

    from selfdev.loop.tables import TUNED_SUFFIX, best_program

    out = []
    for (a, s), summary in runs.items():
        path = results / "loop" / a / f"seed{s}" / "tuned.parquet"
        written = summary.get("best")
        if not path.is_file() or not written:
            continue
        tuned = best_program([[r for r in pq.read_table(path).to_pylist() if not r["partial"]]])
        if tuned:
            original, scale = tuned["candidate_id"].rsplit(TUNED_SUFFIX, 1)
            out.append(f"{a} seed {s} {_pct(tuned['dev_accuracy'])} ({scale} x {original}) "
                       f"vs {_pct(written['dev_accuracy'])}")
    return out


def top_layer_aware(results: Path, k: int = 5) -> tuple[int, int]:
    """How many of the k best scored programs by dev (over every run's iterations, distinct behaviours)
    have a signature whose layer sweep varies (selfdev.sandbox.probe.layer_aware)."""
    import pyarrow.parquet as pq

    from selfdev.loop.tables import best_programs
    from selfdev.sandbox.probe import layer_aware

    rows = [r for f in sorted((results / "loop").glob("*/seed*/iter*/scores.parquet"))
            for r in pq.read_table(f).to_pylist()]
    best = best_programs(rows, k)
    return sum(1 for r in best if r.get("signature") and layer_aware(json.loads(r["signature"]))), len(best)


def study_section(results: Path) -> list[str]:
    s = json.loads((results / "summary.json").read_text())
    h, lines = s["headline"], [""]
    if h.get("available"):
        b = h["best_discovered"]
        lines.append(f"- **Held-out test** (`{results.name}/summary.md`): the best discovered program ({b.get('arm', 'dpo')}, "
                     f"top by dev over every arm) "
                     f"scores {_pct(b['test_accuracy'])} [{_pct(b['test_low'])}, {_pct(b['test_high'])}].")
        labels = {"vs_best_budget": "the budget-matched baseline best on dev",
                  "vs_test_best_budget": "the budget-matched baseline best on test",
                  "vs_best_grid": "the grid-tuned baseline best on dev",
                  "vs_test_best_grid": "the grid-tuned baseline best on test"}
        for key, label in labels.items():
            v = h.get(key)
            if v:
                target = f" (target >= 0: {'met' if v['target_met'] else 'NOT met'})" if key == "vs_best_budget" else ""
                lines.append(f"  - against {label} ({v['method']}, test {_pct(v['test_accuracy'])}): "
                             f"**{_ci(v['margin'])}** points{target}")
    if h.get("per_seed"):
        ps = h["per_seed"]
        lines.append(f"- **Seeds**: each seed's best program (any arm, by dev) beats {ps['baseline']['method']} "
                     f"({ps['baseline']['mode']}) with the interval above 0 in {ps['seeds_beating']} of {len(ps['seeds'])}: "
                     + "; ".join(f"seed {r['seed']} {r['arm']} **{_ci(r['margin'])}**" for r in ps["seeds"]) + ".")
    nv = h.get("novel_per_seed")
    if nv and nv["seeds"]:
        lines.append(f"- **Novel programs** (behaviours the factory was not shown): each seed's best beats "
                     f"{nv['baseline']['method']} ({nv['baseline']['mode']}) with the interval above 0 in "
                     f"{nv['seeds_beating']} of {len(nv['seeds'])}: "
                     + "; ".join(f"seed {r['seed']} {r['arm']} {r['candidate_id']} **{_ci(r['margin'])}**"
                                 for r in nv["seeds"]) + ".")
    ub = h.get("upper_bound") or {}
    if ub.get("available"):
        frac = ub["fraction_closed"]
        lines.append(f"- **Upper bound**: multi-task model {_pct(ub['multitask_test'])} on test, Task Arithmetic (grid) "
                     f"{_pct(ub['task_arithmetic_test'])}: " + (f"the best discovered program closes **{100 * frac:.0f}%** "
                                                               "of the gap." if frac is not None else "no gap to close."))
    for name, d in s.get("comparisons", {"dpo_vs_nodpo": s["dpo_vs_nodpo"]}).items():
        if d.get("available"):
            lines.append(f"- **{name.replace('_vs_', ' vs ')}**: {d.get('test_statement', '')} {d.get('dev_statement', '')}")
    t = s["transfer"]
    if t.get("available"):
        lines.append(f"- **Transfer**: the top discovered program applied unchanged scores {_pct(t['program_test'])} on "
                     f"the unseen family's test against {t['baseline']} re-tuned there, {_pct(t['baseline_test'])}: "
                     f"**{_ci(t['margin'])}** points.")
    return lines


def world_seeds_section(results: Path, others: list[Path]) -> list[str]:
    """The toy world over master seeds: M0, the best expert and the best TA/TIES gain, seed by seed."""
    cells = []
    for folder in [results.resolve().parent, *others]:
        cfg_seed = _master_seed(folder)
        t = json.loads((folder / "results" / "world" / "report.json").read_text())["targets"]
        cells.append((cfg_seed, {**t, "m0_test": _m0_test(folder)}))
    cells.sort(key=lambda c: c[0])
    gains = [t["gain_over_seed_points"] for _, t in cells]
    over = [t["over_expert_points"] for _, t in cells]
    m0 = [100 * t["seed"] for _, t in cells]
    m0_test = [100 * t["m0_test"] for _, t in cells if t.get("m0_test") is not None]
    on_test = (f", on the 2,000 test problems {min(m0_test):.1f}-{max(m0_test):.1f} (range {max(m0_test) - min(m0_test):.1f})"
               if len(m0_test) == len(cells) else "")
    return ["", f"- **The world over master seeds** ({len(cells)} worlds, `seed` {', '.join(str(s) for s, _ in cells)}; dev): "
            + "; ".join(f"seed {s}: M0 {_pct(t['seed'])}, best expert {_pct(t['best_expert'])}, best TA/TIES "
                        f"{_pct(t['best_ta_ties'])} ({t['gain_over_seed_points']:+.1f})" for s, t in cells)
            + f". The gain of merging over M0 ranges {min(gains):+.1f} to {max(gains):+.1f} points, over the best "
            f"expert {min(over):+.1f} to {max(over):+.1f}; M0 ranges {min(m0):.1f}-{max(m0):.1f} on dev{on_test}."]


def _m0_test(folder: Path) -> float | None:
    """M0's test accuracy: from a finished study's singles, or from world_search's cache (m0_test.json)."""
    singles = folder / "results" / "final" / "baselines" / "main" / "singles.json"
    if singles.is_file():
        return next((r["test_accuracy"] for r in json.loads(singles.read_text())["rows"] if r["model"] == "M0"), None)
    cached = folder / "m0_test.json"
    return json.loads(cached.read_text())["accuracy"] if cached.is_file() else None


def _master_seed(folder: Path) -> int:
    """The master seed a world was built with, from its M0 rule's recorded params (Snakemake metadata)."""
    import base64

    meta = folder / ".snakemake" / "metadata"
    target = "results/world/seed/model.safetensors"
    path = meta / base64.urlsafe_b64encode(target.encode()).decode()
    if path.is_file():
        params = json.loads(path.read_text()).get("params", [])
        for p in params:
            m = re.search(r"'seed': (\d+)", p)
            if m:
                return int(m.group(1))
    written = folder / "config.yaml"  # a world of benchmarks/world_search.py
    if written.is_file():
        import yaml

        return int(yaml.safe_load(written.read_text()).get("seed", 0))
    return 0


def seeds_section(results: Path) -> list[str]:
    arms = json.loads((results / "final" / "arms.json").read_text())
    d = arms["dpo_vs_nodpo"]
    lines = ["", f"- **{max(len(a['seeds']) for a in arms['arms'].values())} seeds per arm** "
             f"(`--configfile config/study.yaml`): " + d.get("test_statement", "") + " " + d.get("dev_statement", "")]
    for a, v in arms["arms"].items():
        per = ", ".join(f"{_pct(x)}" for x in v["best_test_per_seed"].values())
        lines.append(f"  - {a}: best program's test accuracy per seed {per}")
    return lines


def time_section(results: Path) -> list[str]:
    secs = rule_seconds(results / "benchmarks")
    wall = wall_from_log(results.resolve().parent)
    top = sorted(secs.items(), key=lambda kv: -kv[1])[:6]
    stages: dict[str, list[float]] = {}
    for name, sec in secs.items():
        stage = next((st for st in sorted(STAGES, key=len, reverse=True) if name.startswith(st)), "other")
        stages.setdefault(stage, []).append(sec)
    per_stage = ", ".join(f"{st} {sum(v):.0f} s ({len(v)} job{'s' if len(v) > 1 else ''})"
                          for st, v in sorted(stages.items(), key=lambda kv: -sum(kv[1])))
    return ["", (f"- **Time**: end to end {wall / 60:.1f} min" if wall else "- **Time**: end to end not recorded")
            + f"; sum of rule wall times {sum(secs.values()) / 60:.1f} min over {len(secs)} jobs; slowest: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in top) + f". By stage: {per_stage}."]


def section(results: Path, study_results: Path | None, world_seeds: list[Path] | None = None,
            marker: str = "readme_figures", configfile: str | None = None) -> str:
    start, end = markers(marker)
    how = f"`snakemake --cores all --configfile {configfile}`" if configfile else "`snakemake --cores all`"
    lines = [start, "",
             f"Printed by `python benchmarks/readme_figures.py` from one run of {how} at commit "
             f"{_commit(results)}, on {_machine()}.", ""]
    lines += world_section(results)
    if world_seeds:
        lines += world_seeds_section(results, world_seeds)
    lines += loop_section(results) + study_section(results)
    if study_results is not None:
        lines += seeds_section(study_results)
    lines += time_section(results) + ["", end]
    return "\n".join(lines)


def summary_table(results: Path) -> str:
    """The README's small table of one default run (the full figures are in docs/results.md)."""
    start, end = markers("run_summary")
    t = json.loads((results / "world" / "report.json").read_text())["targets"]
    h = json.loads((results / "summary.json").read_text())["headline"]
    wall = wall_from_log(results.resolve().parent)
    rows = [("M0, the seed model (dev)", _pct(t["seed"])),
            ("best single expert (dev)", _pct(t["best_expert"])),
            ("best Task Arithmetic / TIES merge (dev)", f"{_pct(t['best_ta_ties'])} ({t['gain_over_seed_points']:+.1f} over M0)")]
    if t.get("multitask") is not None:
        rows.append(("multi-task model, the upper bound (dev)", _pct(t["multitask"])))
    if h.get("available"):
        b = h["best_discovered"]
        rows.append(("best discovered program (test, 95% CI)",
                     f"{_pct(b['test_accuracy'])} [{_pct(b['test_low'])}, {_pct(b['test_high'])}]"))
        v = h.get("vs_best_budget")
        if v:
            rows.append((f"its margin over the budget-matched baseline ({v['method']}, test {_pct(v['test_accuracy'])})",
                         _ci(v["margin"])))
    if wall:
        rows.append(("end to end", f"{wall / 60:.1f} min"))
    body = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (f"{start}\n\n| default run | |\n|---|---|\n{body}\n\nCommit {_commit(results)}, {_machine()}.\n\n{end}")


def write(readme: Path, text: str, marker: str = "readme_figures") -> None:
    start, end = markers(marker)
    old = readme.read_text()
    if start not in old or end not in old:
        raise SystemExit(f"{readme}: no {start} ... {end} markers to replace")
    head, rest = old.split(start, 1)
    readme.write_text(head + text + rest.split(end, 1)[1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="a finished run's results folder")
    p.add_argument("--study-results", default=None, help="a finished run of config/study.yaml (3 seeds)")
    p.add_argument("--world-seeds", nargs="*", default=[], help="folders of worlds built with other master seeds")
    p.add_argument("--run", action="store_true", help="run the default workflow from scratch in --workdir first")
    p.add_argument("--workdir", default="/tmp/selfdev-readme")
    p.add_argument("--write", default=None, help="README file whose marked section to replace")
    p.add_argument("--marker", default="readme_figures",
                   help="the README's section markers (smollm_figures: the config/smollm.yaml run)")
    p.add_argument("--configfile", default=None, help="the config the run used (named in the text)")
    p.add_argument("--summary", default=None, help="README file whose run_summary table to replace (default run)")
    args = p.parse_args(argv)
    results = run_workflow(args.workdir, args.configfile)[0] if args.run else Path(args.results)
    text = section(results, Path(args.study_results) if args.study_results else None,
                   [Path(w) for w in args.world_seeds], args.marker, args.configfile)
    print(text)
    if args.write:
        write(Path(args.write), text, args.marker)
    table = summary_table(results)
    print(table)
    if args.summary:
        write(Path(args.summary), table, "run_summary")


if __name__ == "__main__":
    main()
