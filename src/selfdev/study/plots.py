"""The study's figures (PNG, matplotlib, no display needed)."""

from __future__ import annotations

from typing import Sequence

from selfdev import io
from selfdev.io import read_json


# One colour per arm (C2 and C7 are the baselines and single models).
ARM_COLOURS = {"dpo": "C0", "nodpo": "C1", "evolve": "C3", "evolve_dpo": "C4"}

def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only: CI and clusters have no display
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, ax, out: str, title: str, xlabel: str, ylabel: str, reference: dict[str, float] | None = None) -> None:
    """Reference lines (dashed), labels, legend, save, close."""
    plt = _plt()
    for k, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(100 * value, ls="--", color=f"C{k + 3}", lw=1, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def dev_distribution(arms: dict, out: str, reference: dict[str, float]) -> None:
    """Dev-score distribution of each iteration's programs per arm (the paper's figure)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(arms["arms"])
    width = 0.8 / max(1, len(names))
    for j, arm in enumerate(names):
        its = arms["arms"][arm]["iterations"]
        data = [[100 * a for a in s["dev_scores"]] or [float("nan")] for s in its]
        pos = [s["iteration"] + (j - (len(names) - 1) / 2) * width for s in its]
        bp = ax.boxplot(data, positions=pos, widths=width * 0.9, patch_artist=True, manage_ticks=False)
        for patch in bp["boxes"]:
            patch.set_facecolor(f"C{j}")
            patch.set_alpha(0.5)
        ax.plot([], [], color=f"C{j}", lw=6, alpha=0.5, label=arm)
    n_it = max((len(a["iterations"]) for a in arms["arms"].values()), default=1)
    ax.set_xticks(range(1, n_it + 1))
    _finish(fig, ax, out, "Dev score of each iteration's executable programs", "iteration", "dev accuracy (%)",
            reference)


def executable_rate(summaries: Sequence[dict], out: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, s in enumerate(summaries):
        its = [i["iteration"] for i in s["iterations"]]
        ax.plot(its, [100 * i["stats"]["executable_rate"] for i in s["iterations"]], marker="o",
                color=f"C{k}", label=s.get("run"))
    ax.set_ylim(0, 100)
    ax.set_xticks(sorted({i["iteration"] for s in summaries for i in s["iterations"]}))
    _finish(fig, ax, out, "Executable rate per iteration", "iteration", "executable candidates (%)")


def best_so_far(summaries: Sequence[dict], out: str, reference: dict[str, float]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, s in enumerate(summaries):
        its = [i["iteration"] for i in s["iterations"]]
        vals = [100 * i["best_so_far"] if i["best_so_far"] is not None else float("nan") for i in s["iterations"]]
        ax.plot(its, vals, marker="o", color=f"C{k}", label=s.get("run"))
    ax.set_xticks(sorted({i["iteration"] for s in summaries for i in s["iterations"]}))
    _finish(fig, ax, out, "Best program so far, per run", "iteration", "best dev accuracy so far (%)", reference)


def test_accuracy(leaderboard: Sequence[dict], baselines: Sequence[dict], out: str, top: int = 5) -> None:
    """Test accuracy with CI bars: each run's top programs beside the baselines and single models."""
    plt = _plt()
    rows = []
    for r in leaderboard:
        if r["rank"] <= top and r["executable"]:
            rows.append((f"{r['arm']} s{r['seed']} #{r['rank']}", r, ARM_COLOURS.get(r["arm"], "C1")))
    for r in baselines:
        if r["family"] == "main":
            label = r["model"] if r["model"] != "merged" else f"{r['method']} ({r['mode']})"
            rows.append((label, r, "C2" if r["model"] == "merged" else "C7"))
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.2))
    for y, (label, r, color) in enumerate(rows):
        acc = 100 * r["test_accuracy"]
        ax.errorbar(acc, y, xerr=[[acc - 100 * r["test_low"]], [100 * r["test_high"] - acc]], fmt="o", color=color,
                    capsize=3)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in rows], fontsize=7)
    ax.invert_yaxis()
    _finish(fig, ax, out, "Top discovered programs vs baselines (held-out test)",
            "test accuracy (%) with bootstrap CI", "")


def make_plots(leaderboard_path: str, baselines_path: str, arms_path: str, summary_paths: Sequence[str],
               out: dict[str, str]) -> None:
    from selfdev.study.tables import BASELINES_V, LEADERBOARD_V

    leaderboard = io.read_table(leaderboard_path, LEADERBOARD_V)
    baselines = io.read_table(baselines_path, BASELINES_V)
    arms = read_json(arms_path)
    summaries = [read_json(p) for p in summary_paths]
    ref = {}
    m0 = [r for r in baselines if r["family"] == "main" and r["model"] == "M0"]
    ta = [r for r in baselines if r["family"] == "main" and r["method"] == "task_arithmetic" and r["mode"] == "grid"]
    if m0:
        ref["M0 (dev)"] = m0[0]["dev_accuracy"]
    if ta:
        ref["Task Arithmetic, grid (dev)"] = ta[0]["dev_accuracy"]
    dev_distribution(arms, out["dev_distribution"], ref)
    executable_rate(summaries, out["executable_rate"])
    best_so_far(summaries, out["best_so_far"], ref)
    test_accuracy(leaderboard, baselines, out["test_accuracy"])
