"""Human-readable summaries of scored programs."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from selfdev.io import read_json, write_json, write_text

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
    write_text(summary_markdown(summary), out_md)
    return summary


def markdown_to_html(text: str, title: str = "selfdev") -> str:
    """The study's markdown (headings, tables, lists, code) as one self-contained HTML page, rendered
    by Python-Markdown with its `tables` and `fenced_code` extensions."""
    import html

    import markdown

    md = markdown.Markdown(extensions=["tables", "fenced_code"], output_format="html")
    # Program text and reasons come from untrusted programs: raw HTML is shown as text, never rendered.
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    body = md.convert(text)
    style = ("body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:2px 6px;text-align:left}pre{background:#f4f4f4;padding:6px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + body + "\n</body></html>\n")


def build_html_report(snakefile: str, config: dict, config_out: str, html_out: str, target: str) -> None:
    """`snakemake --report` of the finished study, from inside the run that produced it.

    The effective config is written out and passed back, so the report describes exactly this
    run's DAG whatever --configfile/--config the outer call had; --nolock because the outer
    Snakemake holds the lock while this job runs."""
    import os
    import subprocess
    import sys

    import yaml

    Path(config_out).parent.mkdir(parents=True, exist_ok=True)
    Path(config_out).write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", snakefile, "--directory", os.getcwd(),
           "--configfile", str(Path(config_out).resolve()), "--nolock", "--report", str(Path(html_out).resolve()),
           target]
    print(" ".join(cmd), flush=True)
    run = subprocess.run(cmd, capture_output=True, text=True)
    print(run.stdout[-5000:], run.stderr[-5000:], sep="\n", flush=True)
    if run.returncode != 0 or not Path(html_out).is_file():
        raise RuntimeError(f"snakemake --report failed (exit {run.returncode}); see the log above")
