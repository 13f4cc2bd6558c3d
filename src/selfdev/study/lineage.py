"""Where a program came from: the factory checkpoint that wrote it, the pairs and parent that
checkpoint was trained from, and so on back to the initial factory.

Every candidate row records its factory folder; every factory folder's train_log.json records its
`parent` and (for DPO) its `pairs_file`. Paths in them are as the workflow wrote them (relative to
its working directory), so they are resolved against a few bases.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

from selfdev import io
from selfdev.loop import tables as loop


def find_program(results: str | Path, program: str) -> dict:
    """The scores (or else candidates) row of a candidate id, or of a unique code-hash prefix."""
    rows = []
    # A program whose scale was tuned after the loop (id `<original>-x<scale>`) is in its run's tuned.parquet.
    for patterns, version in (((("iter*", "scores.parquet"), ("tuned.parquet",)), loop.SCORES_V),
                              ((("iter*", "candidates.parquet"),), loop.CANDIDATES_V)):
        paths = [p for parts in patterns for p in sorted(glob.glob(str(Path(results, "loop", "*", "seed*", *parts))))]
        for path in paths:
            for r in io.read_table(path, version):
                if r["candidate_id"] == program or (len(program) >= 6 and (r.get("code_hash") or "").startswith(program)):
                    rows.append({**r, "table": path})
        if rows:
            break
    if not rows:
        raise KeyError(f"no program {program!r} under {results}/loop (expected a candidate id such as "
                       f"dpo-s0-it2-00013, or a code-hash prefix of at least 6 characters)")
    exact = [r for r in rows if r["candidate_id"] == program]
    if exact:
        return exact[0]
    hashes = {r["code_hash"] for r in rows}
    if len(hashes) > 1:
        raise KeyError(f"code-hash prefix {program!r} is ambiguous: {sorted(hashes)[:5]}")
    return min(rows, key=lambda r: r["candidate_id"])  # the first program with this code


def _resolve(path: str, bases: list[Path]) -> Path | None:
    p = Path(path)
    if p.is_absolute():
        return p if p.exists() else None
    for base in bases:
        if (base / p).exists():
            return base / p
    return None


def chain(results: str | Path, program: str, workdir: str | Path = ".") -> dict:
    """The program and its factory chain, newest first."""
    row = find_program(results, program)
    bases = [Path(workdir), Path(results).resolve().parent, Path.cwd()]
    steps = []
    factory, seen = row.get("factory"), set()
    while factory and factory not in seen:
        seen.add(factory)
        folder = _resolve(factory, bases)
        log_path = folder / "train_log.json" if folder else None
        if log_path is None or not log_path.is_file():
            steps.append({"factory": factory, "missing": True})
            break
        log = json.loads(log_path.read_text())
        step = {"factory": factory, "kind": log.get("kind"), "parent": log.get("parent")}
        for key in ("source", "examples", "pairs", "pairs_file", "loss_first", "loss_last", "skipped"):
            if key in log:
                step[key] = log[key]
        pairs_path = _resolve(log["pairs_file"], bases) if log.get("pairs_file") else None
        if pairs_path:
            pairs = loop.read_pairs(pairs_path)
            step["chosen"] = sorted({p["chosen_id"] for p in pairs})
            step["rejected"] = sorted({p["rejected_id"] for p in pairs})
        steps.append(step)
        factory = log.get("parent")
    prog = {k: row.get(k) for k in ("candidate_id", "iteration", "code_hash", "dev_accuracy", "status", "body")}
    prog["parents"] = _parents(results, row["candidate_id"])
    return {"program": prog, "table": row["table"], "chain": steps}


def _parents(results: str | Path, candidate_id: str) -> list[str]:
    """The programs an evolve prompt showed when this candidate was sampled (its candidates row)."""
    for path in sorted(glob.glob(str(Path(results, "loop", "*", "seed*", "iter*", "candidates.parquet")))):
        for r in io.read_table(path, loop.CANDIDATES_V):
            if r["candidate_id"] == candidate_id:
                return json.loads(r.get("parents") or "[]")
    return []


def format_chain(info: dict) -> str:
    p = info["program"]
    dev = "-" if p.get("dev_accuracy") is None else f"{100 * p['dev_accuracy']:.1f}"
    lines = [f"program {p['candidate_id']} (iteration {p['iteration']}, hash {p.get('code_hash')}, dev {dev})",
             f"  from {info['table']}"]
    if p.get("parents"):
        lines.append(f"  prompted with parent programs {', '.join(p['parents'])} (evolve; `selfdev lineage` each)")
    for i, s in enumerate(info["chain"]):
        head = "written by" if i == 0 else "trained from"
        if s.get("missing"):
            lines.append(f"  {head} {s['factory']} (train_log.json not found)")
            continue
        if s["kind"] == "dpo":
            what = (f"DPO on {s.get('pairs_file')}: {s.get('pairs')} pairs"
                    + (" (skipped: too few pairs)" if s.get("skipped") else
                       f", loss {s.get('loss_first', 0):.3f} -> {s.get('loss_last', 0):.3f}"))
            if s.get("chosen"):
                what += f"; chosen {', '.join(s['chosen'][:4])}{' ...' if len(s['chosen']) > 4 else ''}"
        elif s["kind"] == "warmup_sft":
            what = f"warm-up SFT on {s.get('examples')} example programs"
        elif s["kind"] == "initial":
            what = f"initial factory converted from {s.get('source')}"
        else:
            what = str(s["kind"])
        lines.append(f"  {head} {s['factory']}: {what}")
    return "\n".join(lines)
