"""Human-readable summaries of scored programs."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .smk import read_json, write_json

SUMMARY_FORMAT = "selfdev.algorithms_summary.v1"


def summarize_scores(scores: Sequence[dict], world_report: dict) -> dict:
    t = world_report["targets"]
    rows = sorted(scores, key=lambda r: (r.get("accuracy") is None, -(r.get("accuracy") or 0)))
    return {"format": SUMMARY_FORMAT, "seed_dev_accuracy": t["seed"], "best_expert_dev_accuracy": t["best_expert"],
            "programs": [{k: r.get(k) for k in ("program", "executable", "category", "reason", "accuracy", "n",
                                                 "per_skill", "timings", "code_hash")} for r in rows]}


def summary_markdown(summary: dict) -> str:
    lines = ["# Scored merging programs (dev)", "",
             f"M0 {100 * summary['seed_dev_accuracy']:.1f}; best single expert "
             f"{100 * summary['best_expert_dev_accuracy']:.1f}.", "",
             "| program | executable | dev acc | vs M0 | per skill |", "|---|---|---|---|---|"]
    for r in summary["programs"]:
        name = Path(r["program"]).stem
        if r["accuracy"] is None:
            lines.append(f"| {name} | no ({r['category']}: {r['reason']}) | - | - | |")
            continue
        skills = " ".join(f"{k}:{100 * v:.0f}" for k, v in (r.get("per_skill") or {}).items())
        lines.append(f"| {name} | yes | {100 * r['accuracy']:.1f} | "
                     f"{100 * (r['accuracy'] - summary['seed_dev_accuracy']):+.1f} | {skills} |")
    return "\n".join(lines) + "\n"


def write_algorithms_summary(score_paths: Sequence[str], world_report_path: str, out_json: str, out_md: str) -> dict:
    summary = summarize_scores([read_json(p) for p in score_paths], read_json(world_report_path))
    write_json(summary, out_json)
    Path(out_md).write_text(summary_markdown(summary))
    return summary
